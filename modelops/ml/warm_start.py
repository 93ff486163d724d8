"""Where an incremental training run starts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class WarmStart:
    """Where an incremental run starts: an adapter with the same label list."""

    path: Path
    seen_labels: frozenset[str]
    """Labels in the warm adapter's training split: their head rows are kept."""
    sample_weight: np.ndarray | None = None
    """Per train row of the dataset, for fitting the rows of unseen labels (None: all 1)."""
