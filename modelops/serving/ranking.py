"""Top-k ranking of class probabilities: the one ranking behind the predictor, batch
scoring and the HTTP answers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def ranked(probs: np.ndarray, labels: Sequence[str], k: int) -> list[list[dict[str, Any]]]:
    """For each row of ``probs`` (shape (n, len(labels))), its ``k`` most probable labels
    as ``[{"label": ..., "p": ...}]``, most probable first (ties: in label order); at
    most as many as there are labels."""
    k = min(k, len(labels))
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return [
        [{"label": labels[i], "p": float(row[i])} for i in best]
        for row, best in zip(probs, order, strict=True)
    ]
