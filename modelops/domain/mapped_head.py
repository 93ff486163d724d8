"""An old model's probabilities carried onto a new taxonomy version through its mapping.

When a taxonomy version only renames, merges, retires or keeps labels (or splits them by
rules that decide every row), the champion of the previous version already answers the
new question: the probability of a new label is the sum of the old model's probabilities
over the old labels that become it. :class:`MappedHead` is that sum, and nothing else:

- keep, rename, merge: an old label's probability goes to its one successor;
- retire: it goes nowhere, and the rest is renormalized (the answer given that the text
  is not of a retired label);
- a split: it goes to the label the first matching rule decides for the text; for a text
  no rule decides, it is shared evenly among the split's ``into`` labels.

:func:`mapped_blockers` says why a mapping does not allow such a candidate (a new label
nothing old reaches, a split that left rows to review); :func:`mapping_from_canonical`
rebuilds a ``LabelMapping`` from the ``canonical()`` stored in a mapped artifact, with the
same fingerprint, so serving needs no taxonomy files.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from modelops.config.errors import InputError
from modelops.domain.label_mapping import RETIRED, LabelMapping, Rule, Split, Step

MAPPED_FILE = "label_mapping.json"
"""The file of a mapped adapter's artifact that holds its :meth:`MappedHead.to_dict`."""
MAPPED_FORMAT = "modelops.mapped_head/1"

__all__ = [
    "MAPPED_FILE",
    "MAPPED_FORMAT",
    "MappedHead",
    "mapped_blockers",
    "mapping_from_canonical",
]


class MappedHead:
    """Probabilities over ``source_labels`` (a model's outputs, in order) onto the
    ``mapping.target_labels``."""

    def __init__(self, mapping: LabelMapping, source_labels: Sequence[str]):
        self.mapping = mapping
        self.source_labels = list(source_labels)
        missing = sorted(set(self.source_labels) - set(mapping.source_labels))
        if missing:
            raise InputError(
                None, "labels", f"model labels {missing} are not labels of {mapping.source}"
            )
        self.target_labels = list(mapping.target_labels)
        index = {name: i for i, name in enumerate(self.target_labels)}
        self.matrix = np.zeros((len(self.source_labels), len(self.target_labels)))
        self.by_text: dict[int, str] = {}  # source column -> old label decided per text
        for i, label in enumerate(self.source_labels):
            found = mapping.outcomes(label)
            if len(found) > 1:
                self.by_text[i] = label
            elif RETIRED not in found:
                self.matrix[i, index[next(iter(found))]] = 1.0

    def apply(self, probs: np.ndarray, texts: Sequence[str]) -> np.ndarray:
        """``(n, old)`` probabilities of ``texts`` -> ``(n, new)``, rows summing to 1."""
        probs = np.asarray(probs, dtype=np.float64)
        if probs.shape[1:] != (len(self.source_labels),) or len(probs) != len(texts):
            raise InputError(
                None,
                "probs",
                f"shape {probs.shape} does not fit {len(texts)} texts and "
                f"{len(self.source_labels)} source labels",
            )
        out = probs @ self.matrix
        index = {name: i for i, name in enumerate(self.target_labels)}
        for column, label in self.by_text.items():
            for row, text in enumerate(texts):
                found = self.mapping.outcomes(label, text)
                share = probs[row, column] / len(found)
                for outcome in found - {RETIRED}:
                    out[row, index[outcome]] += share
        total = out.sum(axis=1, keepdims=True)
        uniform = np.full_like(out, 1.0 / max(len(self.target_labels), 1))
        return np.where(total > 0, out / np.where(total > 0, total, 1.0), uniform)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": MAPPED_FORMAT,
            "source_labels": self.source_labels,
            "target_labels": self.target_labels,
            "mapping_source_labels": list(self.mapping.source_labels),
            "mapping": self.mapping.canonical(),
            "mapping_fingerprint": self.mapping.fingerprint(),
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any], where: str | None = None) -> MappedHead:
        """Inverse of :meth:`to_dict`; InputError when the stored fingerprint differs."""
        if doc.get("format") != MAPPED_FORMAT:
            raise InputError(
                where, "format", f"expected {MAPPED_FORMAT!r}, got {doc.get('format')!r}"
            )
        mapping = mapping_from_canonical(
            doc["mapping"], doc["mapping_source_labels"], doc["target_labels"]
        )
        if mapping.fingerprint() != doc["mapping_fingerprint"]:
            raise InputError(where, "mapping_fingerprint", "does not match the stored mapping")
        return cls(mapping, doc["source_labels"])


def mapping_from_canonical(
    doc: dict[str, Any], source_labels: Sequence[str], target_labels: Sequence[str]
) -> LabelMapping:
    """A ``LabelMapping`` from its ``canonical()``; the label orders are given apart
    (the canonical form sorts them)."""
    steps = []
    for step in doc["steps"]:
        splits = {
            old: Split(
                tuple(s["into"]),
                tuple(Rule.build(r["label"], r["keywords"], r["patterns"]) for r in s["rules"]),
            )
            for old, s in step["split"].items()
        }
        steps.append(
            Step(
                source=step["source"],
                target=step["target"],
                source_labels=tuple(step["source_labels"]),
                target_labels=tuple(step["target_labels"]),
                direct=dict(step["map"]),
                splits=splits,
                retired=frozenset(step["retire"]),
            )
        )
    return LabelMapping(doc["source"], doc["target"], source_labels, target_labels, steps)


def mapped_blockers(mapping: LabelMapping, review_rows: int = 0) -> list[str]:
    """Why the old model through ``mapping`` cannot be a candidate; empty when it can.

    A new label no old label reaches can never be predicted; a split is allowed only
    when its rules decided every row of the new version's data (``review_rows`` is how
    many they left to review).
    """
    reasons = []
    reached: set[str] = set()
    split: list[str] = []
    for label in mapping.source_labels:
        found = mapping.outcomes(label)
        reached |= found
        if len(found - {RETIRED}) > 1:
            split.append(label)
    added = [label for label in mapping.target_labels if label not in reached]
    if added:
        reasons.append(
            f"{mapping.target} adds {', '.join(added)}, which no label of {mapping.source} "
            "becomes: the old model never predicts it"
        )
    if split and review_rows:
        reasons.append(
            f"the split of {', '.join(split)} left {review_rows} rows to review: its rules "
            "do not decide every row"
        )
    return reasons
