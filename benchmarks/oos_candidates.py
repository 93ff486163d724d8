"""Out-of-scope scores compared by ``drift_banking77.py --evidence`` (issue 24): AUROC of
held-out-intent test rows against in-scope test rows, higher score = more out of scope.

Candidates (every one from the champion's single forward pass, or the frozen base):
- ``msp``: 1 - max softmax probability (the confidence baseline);
- ``max_logit``: - max logit; ``energy``: - logsumexp(logits);
- ``base_nn``: 1 - cosine similarity of the frozen base's embedding to the nearest row of
  the monitoring reference (today's novelty score, ``modelops.monitoring.novelty``);
- ``knn{k}``: 1 - cosine similarity to the k-th nearest training row, adapter features;
- ``mahalanobis``: minimum over classes of the Mahalanobis distance of the adapter features
  to the class means of the training rows, shared (Ledoit-Wolf shrunk) covariance;
- ``z(a)+z(b)``: the sum of two (or three) scores, each standardised by its mean and standard
  deviation on the champion's held-out in-scope rows (never test.csv).

For the best candidates, the true-positive rate at false-flag rates 0.01 / 0.02 / 0.05 two
ways: at the test ROC's own thresholds (in-scope test rows set the rate), and with the
threshold set on the held-out (validation) rows, as a deployed model would (the conformal
quantile ``modelops.monitoring.out_of_scope`` uses), with the false-flag rate it then has
on the in-scope test rows.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import logsumexp
from sklearn.covariance import LedoitWolf
from sklearn.metrics import roc_auc_score, roc_curve

RATES = (0.01, 0.02, 0.05)


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def kth_similarity(rows: np.ndarray, reference: np.ndarray, ks: list[int]) -> dict[int, np.ndarray]:
    """Cosine similarity of each row to its k-th most similar reference row, per k."""
    rows, reference = unit(rows), unit(reference)
    out = {k: np.empty(len(rows)) for k in ks}
    for start in range(0, len(rows), 1024):
        sims = rows[start : start + 1024] @ reference.T
        # the max(ks) largest similarities, most similar first
        top = -np.sort(np.partition(-sims, max(ks) - 1, axis=1)[:, : max(ks)], axis=1)
        for k in ks:
            out[k][start : start + 1024] = top[:, k - 1]
    return out


class Mahalanobis:
    """Class means of the training features, one shared shrunk covariance."""

    def __init__(self, features: np.ndarray, classes: np.ndarray) -> None:
        features = np.asarray(features, dtype=np.float64)
        self.classes = np.unique(classes)
        self.means = np.stack([features[classes == c].mean(0) for c in self.classes])
        centred = features - self.means[np.searchsorted(self.classes, classes)]
        self.precision = LedoitWolf().fit(centred).precision_

    def scores(self, features: np.ndarray) -> np.ndarray:
        """Squared distance to the nearest class mean, in the whitened space (one matrix
        product: |x - m|^2 = |x|^2 - 2 x.m + |m|^2 after x -> x L, P = L L^T)."""
        whiten = np.linalg.cholesky(self.precision)
        x = np.asarray(features, dtype=np.float64) @ whiten
        m = self.means @ whiten
        d = (x * x).sum(1, keepdims=True) - 2 * x @ m.T + (m * m).sum(1)[None, :]
        return d.min(1)


def candidate_scores(scored, train, reference_base: np.ndarray, ks=(1, 5, 10)) -> dict:
    """Every candidate's scores of the rows of ``scored`` (``banking77_features.Scored``);
    ``train``: the training rows scored the same way, with ``train_labels``."""
    logits = scored.logits.astype(np.float64)
    probs = np.exp(logits - logsumexp(logits, axis=1, keepdims=True))
    out = {
        "msp": 1.0 - probs.max(1),
        "max_logit": -logits.max(1),
        "energy": -logsumexp(logits, axis=1),
    }
    out["base_nn"] = 1.0 - kth_similarity(scored.base, reference_base, [1])[1]
    for k, sims in kth_similarity(scored.features, train.scored.features, list(ks)).items():
        out[f"knn{k}"] = 1.0 - sims
    out["mahalanobis"] = train.mahalanobis.scores(scored.features)
    return out


def standardised_sums(scores: dict, calibration: dict, groups: list[tuple[str, ...]]) -> dict:
    """``z(a)+z(b)+...`` for each group, z by the mean and std of the calibration rows'
    scores."""

    def z(name: str, values: np.ndarray) -> np.ndarray:
        ref = calibration[name]
        return (values - ref.mean()) / max(ref.std(), 1e-12)

    return {
        "+".join(f"z({n})" for n in group): sum(z(n, scores[n]) for n in group) for group in groups
    }


def conformal(calibration: np.ndarray, rate: float) -> float:
    """The ``ceil((n + 1)(1 - rate))``-th smallest calibration score (inf past n)."""
    s = np.sort(calibration)
    rank = math.ceil((len(s) + 1) * (1 - rate))
    return math.inf if rank > len(s) else float(s[rank - 1])


def auroc_table(test_scores: dict, is_new: np.ndarray, calibration: dict) -> list[dict]:
    """One row per candidate: AUROC, and TPR at each rate (ROC and held-out threshold)."""
    rows = []
    for name, values in test_scores.items():
        fpr, tpr, _ = roc_curve(is_new, values)
        row = {"score": name, "auroc": float(roc_auc_score(is_new, values))}
        for rate in RATES:
            row[f"tpr_at_{rate:g}"] = float(np.interp(rate, fpr, tpr))
            if name in calibration:
                t = conformal(calibration[name], rate)
                row[f"heldout_threshold_{rate:g}"] = {
                    "tpr": float((values[is_new] > t).mean()),
                    "false_flag_rate_test": float((values[~is_new] > t).mean()),
                }
        rows.append(row)
    return sorted(rows, key=lambda r: -r["auroc"])


def markdown(rows: list[dict], header: str) -> str:
    """The table for /work/notes/oos-auroc.md."""
    lines = [
        header,
        "",
        "| score | AUROC | TPR @ FPR 0.01 / 0.02 / 0.05 (test ROC) | TPR (test false-flag rate) "
        "with the threshold set on held-out validation rows at 0.01 / 0.02 / 0.05 |",
        "| --- | --- | --- | --- |",
    ]
    for r in rows:
        roc = " / ".join(f"{r[f'tpr_at_{x:g}']:.3f}" for x in RATES)
        held = " / ".join(
            f"{r[f'heldout_threshold_{x:g}']['tpr']:.3f} "
            f"({r[f'heldout_threshold_{x:g}']['false_flag_rate_test']:.3f})"
            for x in RATES
            if f"heldout_threshold_{x:g}" in r
        )
        lines.append(f"| {r['score']} | {r['auroc']:.4f} | {roc} | {held or '-'} |")
    return "\n".join(lines) + "\n"
