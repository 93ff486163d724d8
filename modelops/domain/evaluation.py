"""Classification metrics on a test set: accuracy, F1, calibration, confusion matrix.

Everything is computed from the predicted class probabilities with numpy, so the
numbers are plain, JSON-ready floats and ints. Conventions follow scikit-learn:

* per-label precision, recall and F1 use ``zero_division=0`` (a label never
  predicted has precision 0, not an error);
* macro-F1 averages over the labels that occur in the test set or in the
  predictions (scikit-learn's default label set), so a label with no test
  examples that is never predicted does not drag the average down, while one that
  is wrongly predicted still does (its F1 is 0).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# Row sums of softmax outputs in float32 are 1 only up to rounding.
_ROW_SUM_TOLERANCE = 1e-3
_MAX_ANNOTATED_LABELS = 30
_METRICS = ("precision", "recall", "f1")


@dataclass(frozen=True)
class Evaluation:
    """Metrics of one model on one test set; ``confusion`` rows are true labels."""

    labels: list[str]
    n: int
    accuracy: float
    macro_f1: float
    per_label: dict[str, dict[str, float]]
    ece: float
    confusion: list[list[int]]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (floats, ints, strings, lists, dicts)."""
        return {
            "labels": [str(label) for label in self.labels],
            "n": int(self.n),
            "accuracy": float(self.accuracy),
            "macro_f1": float(self.macro_f1),
            "per_label": {
                str(label): {
                    **{m: float(values[m]) for m in _METRICS},
                    "support": int(values["support"]),
                }
                for label, values in self.per_label.items()
            },
            "ece": float(self.ece),
            "confusion": [[int(c) for c in row] for row in self.confusion],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Evaluation:
        """Inverse of :meth:`to_dict`; raises ``ValueError`` naming a missing field."""
        missing = [f for f in cls.__dataclass_fields__ if f not in d]
        if missing:
            raise ValueError(f"evaluation: missing field(s) {', '.join(missing)}")
        labels = [str(label) for label in d["labels"]]
        per_label = {
            str(label): {
                **{m: float(values[m]) for m in _METRICS},
                "support": int(values["support"]),
            }
            for label, values in d["per_label"].items()
        }
        if list(per_label) != labels:
            raise ValueError("evaluation: per_label keys do not match labels")
        confusion = [[int(c) for c in row] for row in d["confusion"]]
        if len(confusion) != len(labels) or any(len(row) != len(labels) for row in confusion):
            raise ValueError(f"evaluation: confusion must be {len(labels)}x{len(labels)}")
        return cls(
            labels=labels,
            n=int(d["n"]),
            accuracy=float(d["accuracy"]),
            macro_f1=float(d["macro_f1"]),
            per_label=per_label,
            ece=float(d["ece"]),
            confusion=confusion,
        )


def _checked(
    y_true: Sequence[int] | np.ndarray, probs: np.ndarray, k: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert ``y_true`` (n,) and ``probs`` (n, k); ValueError on bad input."""
    y = np.asarray(y_true)
    p = np.asarray(probs, dtype=np.float64)
    if y.ndim != 1:
        raise ValueError(f"y_true must be one-dimensional, got shape {y.shape}")
    if len(y) == 0:
        raise ValueError("y_true is empty: nothing to evaluate")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y_true must hold integer label indices, got dtype {y.dtype}")
    if p.ndim != 2:
        raise ValueError(f"probs must be two-dimensional (n, k), got shape {p.shape}")
    if p.shape[0] != len(y):
        raise ValueError(f"probs has {p.shape[0]} rows but y_true has {len(y)} entries")
    if k is not None and p.shape[1] != k:
        raise ValueError(f"probs has {p.shape[1]} columns but there are {k} labels")
    if not np.all(np.isfinite(p)):
        raise ValueError("probs holds NaN or infinite values")
    if np.any(p < 0):
        raise ValueError(f"probs holds negative values (row {int(np.argwhere(p < 0)[0, 0])})")
    sums = p.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > _ROW_SUM_TOLERANCE)
    if len(bad):
        raise ValueError(f"probs row {int(bad[0])} sums to {sums[bad[0]]:.6f}, not 1")
    out_of_range = np.flatnonzero((y < 0) | (y >= p.shape[1]))
    if len(out_of_range):
        i = int(out_of_range[0])
        raise ValueError(f"y_true[{i}] = {int(y[i])} is not a label index in [0, {p.shape[1]})")
    return y.astype(np.int64), p


def _ece(y: np.ndarray, p: np.ndarray, n_bins: int) -> float:
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    # Bins are (lo, hi]; a confidence of exactly 0 (impossible for a max prob) joins bin 0.
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    total = 0.0
    for b in np.unique(bins):
        in_bin = bins == b
        gap = abs(correct[in_bin].mean() - confidence[in_bin].mean())
        total += in_bin.sum() / len(y) * gap
    return float(total)


def expected_calibration_error(
    y_true: Sequence[int] | np.ndarray, probs: np.ndarray, n_bins: int = 15
) -> float:
    """Expected calibration error of the top prediction.

    The max probability of each row is its confidence; rows are grouped into
    ``n_bins`` equal-width bins (lo, hi] over [0, 1] and the result is the
    sample-weighted mean of ``|accuracy - mean confidence|`` over the bins.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    y, p = _checked(y_true, probs)
    return _ece(y, p, n_bins)


def evaluate(
    y_true: Sequence[int] | np.ndarray, probs: np.ndarray, labels: list[str]
) -> Evaluation:
    """Metrics of predictions ``probs`` (n, k), rows summing to 1, against ``y_true``.

    ``y_true`` holds indices into ``labels``; the prediction is each row's argmax.
    """
    labels = [str(label) for label in labels]
    if not labels:
        raise ValueError("labels is empty")
    if len(set(labels)) != len(labels):
        duplicates = sorted({label for label in labels if labels.count(label) > 1})
        raise ValueError(f"labels are not unique: {', '.join(duplicates)}")
    y, p = _checked(y_true, probs, k=len(labels))
    k = len(labels)
    predicted = p.argmax(axis=1)

    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (y, predicted), 1)
    tp = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1)
    predicted_count = confusion.sum(axis=0)

    def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        return np.divide(num, den, out=np.zeros_like(num), where=den > 0)

    precision = ratio(tp, predicted_count.astype(np.float64))
    recall = ratio(tp, support.astype(np.float64))
    # 2tp / (2tp + fp + fn) is the harmonic mean of precision and recall, 0 where undefined.
    f1 = ratio(2 * tp, (support + predicted_count).astype(np.float64))
    present = (support > 0) | (predicted_count > 0)

    per_label = {
        label: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, label in enumerate(labels)
    }
    return Evaluation(
        labels=labels,
        n=len(y),
        accuracy=float(tp.sum() / len(y)),
        macro_f1=float(f1[present].mean()),
        per_label=per_label,
        ece=_ece(y, p, 15),
        confusion=confusion.tolist(),
    )


def _short(label: str, width: int = 28) -> str:
    """Shorten a long label in the middle: names often differ only at their end."""
    if len(label) <= width:
        return label
    head = (width - 1) // 2
    return label[:head] + "…" + label[-(width - 1 - head) :]


def confusion_matrix_png(evaluation: Evaluation, *, title: str = "") -> bytes:
    """PNG of the confusion matrix: colours row-normalised (recall per true label).

    Counts are written in the cells when there are at most 30 labels; the figure
    grows with the number of labels so that names stay legible.
    """
    # Imported here: matplotlib costs a noticeable import time that most callers never need.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels = evaluation.labels
    k = len(labels)
    counts = np.asarray(evaluation.confusion, dtype=np.int64).reshape(k, k)
    row_sums = counts.sum(axis=1, keepdims=True)
    normalised = counts / np.maximum(row_sums, 1)

    side = min(3.0 + 0.45 * k, 48.0)
    font = 10.0 if k <= 10 else 8.0  # a cell is about 0.45 in (32 pt) high
    fig = Figure(figsize=(side + 1.5, side), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    try:
        ax = fig.add_subplot()
        image = ax.imshow(normalised, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
        fig.colorbar(image, ax=ax, shrink=0.8, label="share of the true label's examples")
        names = [_short(label) for label in labels]
        if k > 8:
            ax.set_xticks(range(k), names, rotation=90, fontsize=font)
        else:
            ax.set_xticks(
                range(k), names, rotation=45, ha="right", rotation_mode="anchor", fontsize=font
            )
        ax.set_yticks(range(k), names, fontsize=font)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        summary = (
            f"n={evaluation.n}  accuracy {evaluation.accuracy:.3f}  "
            f"macro-F1 {evaluation.macro_f1:.3f}"
        )
        ax.set_title(f"{title}\n{summary}" if title else summary, fontsize=10)
        if k <= _MAX_ANNOTATED_LABELS:
            for i in range(k):
                for j in range(k):
                    if counts[i, j] == 0 and k > 10:
                        continue  # blank zeros keep large matrices readable
                    colour = "white" if normalised[i, j] > 0.5 else "black"
                    ax.text(
                        j,
                        i,
                        str(counts[i, j]),
                        ha="center",
                        va="center",
                        fontsize=font,
                        color=colour,
                    )
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        return buffer.getvalue()
    finally:
        fig.clear()


def _cell(value: float | int | None) -> str:
    if value is None:
        return "–"
    return str(value) if isinstance(value, int) else f"{value:.3f}"


def _escape(label: str) -> str:
    return label.replace("|", "\\|")


def markdown_table(
    evaluation: Evaluation,
    other: Evaluation | None = None,
    *,
    names: tuple[str, str] = ("candidate", "champion"),
) -> str:
    """Per-label precision/recall/F1/support as a markdown table.

    With ``other`` each metric gets a column per model (``names`` heads them), then
    a ``Δ f1`` column (first minus second) and the support ("a / b" where the two
    differ). Labels only one side knows show "–" on the other. The last row holds
    macro-F1 and the sample count.
    """
    if other is None:
        rows = [
            "| label | precision | recall | f1 | support |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for label in evaluation.labels:
            m = evaluation.per_label[label]
            cells = [_cell(m[metric]) for metric in _METRICS] + [_cell(int(m["support"]))]
            rows.append(f"| {_escape(label)} | " + " | ".join(cells) + " |")
        rows.append(f"| **macro** | | | {_cell(evaluation.macro_f1)} | {_cell(evaluation.n)} |")
        return "\n".join(rows) + "\n"

    first, second = names
    header = ["label"]
    for metric in _METRICS:
        header += [f"{metric} ({first})", f"{metric} ({second})"]
    header += ["Δ f1", "support"]
    rows = ["| " + " | ".join(header) + " |", "| --- |" + " ---: |" * (len(header) - 1)]
    all_labels = evaluation.labels + [x for x in other.labels if x not in evaluation.per_label]

    def support(a: int | None, b: int | None) -> str:
        # One number when both sides saw the same test set, "a / b" otherwise.
        return _cell(a) if a == b else f"{_cell(a)} / {_cell(b)}"

    for label in all_labels:
        a, b = evaluation.per_label.get(label), other.per_label.get(label)
        cells = []
        for metric in _METRICS:
            cells += [_cell(a[metric] if a else None), _cell(b[metric] if b else None)]
        cells.append(f"{a['f1'] - b['f1']:+.3f}" if a and b else "–")
        cells.append(support(int(a["support"]) if a else None, int(b["support"]) if b else None))
        rows.append(f"| {_escape(label)} | " + " | ".join(cells) + " |")
    macro = [""] * 4 + [
        _cell(evaluation.macro_f1),
        _cell(other.macro_f1),
        f"{evaluation.macro_f1 - other.macro_f1:+.3f}",
        support(evaluation.n, other.n),
    ]
    rows.append("| **macro** | " + " | ".join(macro) + " |")
    return "\n".join(rows) + "\n"
