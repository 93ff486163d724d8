"""Which weights a training keeps: the starting point (probe head with LoRA at zero, or the
warm start) or one of its epochs, judged on the validation split.

Two rules (``training.selection``):

* ``bootstrap`` (default): the last epoch, the end of the learning-rate schedule, is kept
  unless an earlier candidate beats it on validation accuracy with the recipe's confidence
  in a paired bootstrap over the validation rows (``modelops.domain.bootstrap``). A few
  hundred validation rows cannot tell epochs apart (Banking77: 521 rows, epochs 0.4 points
  apart); a difference the bootstrap cannot separate from zero does not move the choice.
* ``best``: the highest validation macro-F1, ties to the earlier (the rule before 0.x; it
  follows the noise of small validation splits, benchmarks/RESULTS.md).

The report (``Selector.report``) says what was kept and why, with every candidate's scores.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score

from modelops.domain.bootstrap import paired_bootstrap

SELECTION_SEED = 0


class Selector:
    """Collects each candidate's validation predictions and trainable weights."""

    def __init__(self, y_val: np.ndarray, rule: str, confidence: float):
        self.y = np.asarray(y_val)
        self.rule = rule
        self.confidence = confidence
        self.predictions: dict[int, np.ndarray] = {}
        self.weights: dict[int, dict[str, torch.Tensor]] = {}

    def add(self, epoch: int, predictions: np.ndarray, weights: dict[str, torch.Tensor]) -> None:
        self.predictions[epoch] = np.asarray(predictions, dtype=np.int64)
        self.weights[epoch] = weights

    def scores(self, epoch: int) -> tuple[float, float]:
        pred = self.predictions[epoch]
        return (
            float(accuracy_score(self.y, pred)),
            float(f1_score(self.y, pred, average="macro", zero_division=0)),
        )

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Everything needed to resume: per epoch, predictions and weights."""
        out = {}
        for epoch, pred in self.predictions.items():
            out[f"selection/{epoch}/predictions"] = torch.from_numpy(pred)
            out.update({f"selection/{epoch}/w/{k}": v for k, v in self.weights[epoch].items()})
        return out

    def restore(self, tensors: dict[str, torch.Tensor], names: list[str]) -> None:
        epochs = sorted({int(k.split("/")[1]) for k in tensors if k.startswith("selection/")})
        for epoch in epochs:
            self.add(
                epoch,
                tensors[f"selection/{epoch}/predictions"].numpy(),
                {n: tensors[f"selection/{epoch}/w/{n}"] for n in names},
            )

    def choose(self) -> tuple[int, dict]:
        """The kept epoch and the report of the choice."""
        epochs = sorted(self.predictions)
        candidates = {
            e: dict(
                zip(("validation_accuracy", "validation_macro_f1"), self.scores(e), strict=True)
            )
            for e in epochs
        }
        last = epochs[-1]
        if self.rule == "best":
            kept = max(epochs, key=lambda e: (candidates[e]["validation_macro_f1"], -e))
            reason = (
                f"highest validation macro-F1 ({candidates[kept]['validation_macro_f1']:.4f})"
                f" of {len(epochs)} candidates"
            )
        else:
            last_correct = self.predictions[last] == self.y
            kept, gain = last, 0.0
            for e in epochs[:-1]:
                boot = paired_bootstrap(
                    self.predictions[e] == self.y,
                    last_correct,
                    confidence=self.confidence,
                    seed=SELECTION_SEED,
                )
                candidates[e].update(
                    gain_over_last=boot.observed, gain_lower_bound=boot.lower_bound
                )
                if boot.lower_bound > 0 and boot.observed > gain:
                    kept, gain = e, boot.observed
            if kept == last:
                reason = (
                    f"the last epoch ({last}): no earlier candidate beat it on validation "
                    f"accuracy with {self.confidence:.0%} confidence "
                    f"({len(self.y)} validation rows, paired bootstrap)"
                )
            else:
                reason = (
                    f"epoch {kept} beat the last epoch ({last}) on validation accuracy by "
                    f"{gain:+.4f} with {self.confidence:.0%} confidence "
                    f"(lower bound {candidates[kept]['gain_lower_bound']:+.4f})"
                )
        report = {
            "rule": self.rule,
            "confidence": self.confidence,
            "kept_epoch": kept,
            "reason": reason,
            "validation_rows": len(self.y),
            "candidates": {str(e): v for e, v in candidates.items()},
        }
        return kept, report
