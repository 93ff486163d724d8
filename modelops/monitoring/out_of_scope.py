"""Out of scope: how unlike a text is to what the adapter was trained on, and a flag
calibrated to a stated false-flag rate, on every prediction.

**Score.** The adapter's own features of a text (the pooled, normalised representation its
head consumes, computed in the same forward pass as the probabilities: see
``modelops.ml.model.predict_with_features``) are compared with the features of its training
rows (``reference``; a seeded sample of ``max_reference_rows`` past that size): the score is
``1 - s_k``, where ``s_k`` is the cosine similarity to the ``k``-th most similar training
row. Higher is more out of scope. The default method, ``knn_msp``, adds to it the
model's own doubt, ``1 -`` its top probability (the maximum softmax probability, MSP), each
standardised by its mean and spread on held-out in-scope rows: on Banking77 with 10 intents
held out, the sum separated unknown intents from known ones better (AUROC 0.938) than the
kNN score alone (0.909) or the confidence alone (0.924; benchmarks/RESULTS.md, issue 24).
``knn_cosine`` is the kNN score alone. The method is looked up by name in :data:`SCORES`
(stored as ``method``), so another one can be added and chosen without touching the
callers.

The standardisation statistics come from the held-out rows the rate is *measured* on (the
test split), not from the calibration rows the threshold is set on, so the score function
does not depend on the calibration rows and the conformal guarantee below holds as stated;
with no rows apart from the calibration rows, the calibration rows give them (the
guarantee is then approximate).

**Threshold.** Fitted on held-out in-scope rows (the adapter's validation split, never its
training rows): with ``n`` calibration scores and the stated rate ``a``, the threshold is the
``ceil((n + 1)(1 - a))``-th smallest of them, and a text is flagged when its score is above
it. Split-conformal guarantee: for a new in-scope text exchangeable with the calibration
rows (drawn from the same distribution), ``P(flagged) <= a``, over the draw of both
the calibration rows and the text; without ties it is also ``>= a - 1/(n + 1)``. When
``ceil((n + 1)(1 - a)) > n`` (fewer than ``1/a - 1`` calibration rows) no finite threshold
keeps the rate: the threshold is infinite and nothing is flagged.

**Measured.** ``held_out_flag_rate`` is the flagged share of held-out rows not used for the
threshold (the test split; the calibration rows themselves when there is none), and
``flagged_accuracy`` the adapter's accuracy on those of them that were flagged (None when
none was), what the label-free estimate (``modelops.monitoring.impact.assess``) credits the
in-scope flagged rows with. ``in_scope_flag_rate`` (:func:`in_scope_rate`) combines the
conformal distribution of the rate with that measurement: the rate the drift check expects
by chance on clean traffic (:attr:`OutOfScopeModel.null_rate`).

Stored in the adapter's ``monitoring/`` folder as ``out_of_scope.json`` and
``out_of_scope.safetensors`` (no pickle); adapters trained before have neither, and their
predictions carry no score.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modelops.monitoring import novelty_ranks
from modelops.monitoring.bounds import (
    clopper_pearson_high,
    conformal_threshold,
    in_scope_rate,
    rate_posterior,
)
from modelops.monitoring.out_of_scope_scores import (  # noqa: F401 (re-exported)
    BLOCK_VALUES,
    DEFAULT_METHOD,
    NEEDS_CONFIDENCE,
    SCORES,
    knn_cosine,
    knn_msp,
    kth_similarity,
    unit,
)

MONITORING_FOLDER = "monitoring"
"""An adapter's monitoring folder (``modelops.monitoring.reference.FOLDER``), named here so
that serving finds the model without importing torch at module level."""
FORMAT = "modelops.out_of_scope/1"
JSON_FILE = "out_of_scope.json"
TENSORS_FILE = "out_of_scope.safetensors"
BAND_RATE = 0.1
"""The label-free estimate's second, wider threshold (conformal at this rate): rows past it
but not past the flag threshold form the *band*, whose in-scope share and accuracy are
measured on held-out rows, so unknown rows the flag misses are counted too
(``impact._flagged_estimate``; benchmarks/RESULTS.md, issue 24)."""


@dataclass
class OutOfScopeModel:
    """The reference, the calibrated threshold and what was measured with it."""

    reference: np.ndarray
    """Unit-norm float32 features of the adapter's training rows (a seeded sample)."""
    threshold: float
    false_flag_rate: float
    """The stated rate (``monitoring.out_of_scope.false_flag_rate``)."""
    k: int
    held_out_flag_rate: float
    flagged_accuracy: float | None
    n_calibration: int
    method: str = DEFAULT_METHOD
    n_measured: int = 0
    """Held-out rows ``held_out_flag_rate`` was measured on."""
    n_flagged_measured: int = 0
    """Of those, the flagged ones ``flagged_accuracy`` was measured on."""
    in_scope_flag_rate: float | None = None
    """The estimated share of in-scope texts this threshold flags: what the drift check
    expects by chance (:func:`in_scope_rate`); None in models stored without it (then
    ``held_out_flag_rate``)."""
    scale: dict | None = None
    """``knn_msp``: the means and spreads its two parts are standardised by."""
    rate_measured: tuple[int, int] | None = None
    """(flagged, rows) of the held-out rows apart from the calibration rows that updated
    ``in_scope_flag_rate`` (None when there were none)."""
    rank_edges: np.ndarray | None = None
    """The drift check's novelty test on ranks (``novelty_ranks.rank_reference``): score
    bin edges from the measured rows, and the calibration rows' count per bin (None in
    models stored without them, or fitted without rows apart from the calibration rows:
    the test then counts flags)."""
    rank_counts: np.ndarray | None = None
    band: dict | None = None
    """The estimate's band (:data:`BAND_RATE`): ``threshold``, ``rate`` (the in-scope share
    past it, as ``in_scope_flag_rate``) and ``accuracy`` (the adapter's on measured rows
    inside the band, None when none was); None without rows apart from the calibration."""

    @property
    def rank_fingerprint(self) -> str | None:
        if self.rank_edges is None or self.rank_counts is None:
            return None
        return novelty_ranks.fingerprint(self.rank_edges, self.rank_counts)

    @property
    def null_rate(self) -> float:
        """The flag rate of clean traffic the drift check assumes."""
        if self.in_scope_flag_rate is None:
            return self.held_out_flag_rate
        return self.in_scope_flag_rate

    def null_rate_upper(self, alpha: float) -> float:
        """An upper bound, holding with probability ``1 - alpha``, of the share of in-scope
        texts this threshold flags: the ``1 - alpha`` quantile of the Beta distribution
        :func:`in_scope_rate` takes the mean of (the conformal prior updated with the
        measured rows); 0 for an infinite threshold."""
        from scipy.special import betaincinv

        posterior = rate_posterior(self.n_calibration, self.false_flag_rate, self.rate_measured)
        if posterior is None:
            return 0.0
        return float(betaincinv(*posterior, 1 - alpha))

    def flagged_accuracy_upper(self, alpha: float) -> float:
        """One-sided Clopper-Pearson upper bound of ``flagged_accuracy`` (1 when none was
        measured)."""
        n = self.n_flagged_measured
        if self.flagged_accuracy is None or n <= 0:
            return 1.0
        return clopper_pearson_high(round(self.flagged_accuracy * n), n, alpha)

    def scores(self, features: np.ndarray, confidence: np.ndarray | None = None) -> np.ndarray:
        """Out-of-scope scores of ``features`` (n, dim), higher is more out of scope;
        ``confidence``: the adapter's top probability of each row (as served), which
        ``knn_msp`` needs."""
        features = np.asarray(features)
        if features.ndim != 2:
            raise ValueError(f"out_of_scope: features must be a 2-d array, got {features.shape}")
        if self.method in NEEDS_CONFIDENCE:
            if confidence is None:
                raise ValueError(f"out_of_scope: method {self.method} needs each row's confidence")
            confidence = np.asarray(confidence, dtype=np.float64)
            if confidence.shape != (len(features),):
                raise ValueError(
                    f"out_of_scope: confidence has shape {confidence.shape}, "
                    f"features {len(features)} rows"
                )
        if len(features) == 0:
            return np.zeros(0, dtype=np.float64)
        return SCORES[self.method](features, self.reference, self.k, confidence, self.scale)

    def flags(self, scores: np.ndarray) -> np.ndarray:
        """Whether each score is past the threshold."""
        return np.asarray(scores, dtype=np.float64) > self.threshold

    @classmethod
    def fit(
        cls,
        reference_features: np.ndarray,
        calibration_features: np.ndarray,
        *,
        false_flag_rate: float,
        k: int = 1,
        max_reference_rows: int = 20_000,
        seed: int = 0,
        measure_features: np.ndarray | None = None,
        measure_correct: np.ndarray | None = None,
        method: str = DEFAULT_METHOD,
        calibration_confidence: np.ndarray | None = None,
        measure_confidence: np.ndarray | None = None,
    ) -> OutOfScopeModel:
        """Fit on the training rows' features (``reference_features``) and held-out
        in-scope rows' (``calibration_features``); measure the flag rate, and the accuracy
        of the flagged rows (``measure_correct``: whether the adapter got each right), on
        ``measure_features`` (default: the calibration rows). ``knn_msp`` also needs the
        adapter's top probability of those rows (``*_confidence``)."""
        if method not in SCORES:
            raise ValueError(f"out_of_scope: unknown method {method!r} (known: {sorted(SCORES)})")
        if k < 1:
            raise ValueError(f"out_of_scope: k must be at least 1, got {k}")
        if len(reference_features) == 0 or len(calibration_features) == 0:
            raise ValueError("out_of_scope: needs training rows and held-out calibration rows")
        reference = unit(reference_features)
        if len(reference) > max_reference_rows:
            rng = np.random.default_rng(seed)
            reference = reference[np.sort(rng.choice(len(reference), max_reference_rows, False))]
        model = cls(
            reference=np.ascontiguousarray(reference),
            threshold=math.inf,
            false_flag_rate=float(false_flag_rate),
            k=int(k),
            held_out_flag_rate=0.0,
            flagged_accuracy=None,
            n_calibration=len(calibration_features),
            method=method,
        )
        apart = measure_features is not None
        if measure_features is None:
            measure_features, measure_confidence = calibration_features, calibration_confidence
        if method in NEEDS_CONFIDENCE:
            if calibration_confidence is None or measure_confidence is None:
                raise ValueError(f"out_of_scope: method {method} needs the rows' confidence")
            model.scale = _scale(model, measure_features, measure_confidence)
        calibration_scores = model.scores(calibration_features, calibration_confidence)
        model.threshold = conformal_threshold(calibration_scores, false_flag_rate)
        measured = model.scores(measure_features, measure_confidence)
        if apart:
            edges, counts = novelty_ranks.rank_reference(measured, calibration_scores)
            model.rank_edges, model.rank_counts = edges, counts
            model.band = _band(model, calibration_scores, measured, measure_correct)
        flagged = model.flags(measured)
        model.n_measured = len(flagged)
        model.held_out_flag_rate = float(flagged.mean())
        model.n_flagged_measured = int(flagged.sum())
        model.rate_measured = (model.n_flagged_measured, model.n_measured) if apart else None
        model.in_scope_flag_rate = in_scope_rate(
            len(calibration_features), false_flag_rate, model.rate_measured
        )
        if measure_correct is not None and flagged.any():
            correct = np.asarray(measure_correct, dtype=bool)
            if correct.shape != flagged.shape:
                raise ValueError("out_of_scope: measure_correct must match measure_features")
            model.flagged_accuracy = float(correct[flagged].mean())
        return model

    def to_dict(self) -> dict:
        """Everything but the reference, JSON-ready (an infinite threshold as null)."""
        return {
            "format": FORMAT,
            "method": self.method,
            "threshold": self.threshold if math.isfinite(self.threshold) else None,
            "false_flag_rate": self.false_flag_rate,
            "k": self.k,
            "held_out_flag_rate": self.held_out_flag_rate,
            "flagged_accuracy": self.flagged_accuracy,
            "n_calibration": self.n_calibration,
            "n_measured": self.n_measured,
            "n_flagged_measured": self.n_flagged_measured,
            "reference_rows": len(self.reference),
            "in_scope_flag_rate": self.in_scope_flag_rate,
            "scale": self.scale,
            "rate_measured": None if self.rate_measured is None else list(self.rate_measured),
            "rank_reference": self.rank_fingerprint,
            "band": self.band,
        }

    def save(self, folder: Path) -> None:
        """``folder/out_of_scope.safetensors`` (the reference) and ``out_of_scope.json``,
        each written to a temporary name and moved into place."""
        import torch
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = folder / (TENSORS_FILE + ".tmp")
        arrays = {"reference": self.reference}
        if self.rank_edges is not None and self.rank_counts is not None:
            arrays.update(rank_edges=self.rank_edges, rank_counts=self.rank_counts)
        save_file(
            {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}, str(tensors)
        )
        os.replace(tensors, folder / TENSORS_FILE)
        doc = folder / (JSON_FILE + ".tmp")
        doc.write_text(json.dumps(self.to_dict()) + "\n", encoding="utf-8")
        os.replace(doc, folder / JSON_FILE)

    @classmethod
    def load(cls, folder: Path) -> OutOfScopeModel | None:
        """The model stored in ``folder``; None when there is none (older adapters)."""
        folder = Path(folder)
        if not (folder / JSON_FILE).is_file():
            return None
        from safetensors.numpy import load_file

        doc = json.loads((folder / JSON_FILE).read_text(encoding="utf-8"))
        if doc.get("format") != FORMAT:
            raise ValueError(f"{folder / JSON_FILE}: format {doc.get('format')!r}, not {FORMAT!r}")
        if doc["method"] not in SCORES:
            raise ValueError(f"{folder / JSON_FILE}: unknown method {doc['method']!r}")
        tensors = load_file(str(folder / TENSORS_FILE))
        reference = tensors["reference"].astype(np.float32)
        threshold = doc["threshold"]
        return cls(
            reference=reference,
            threshold=math.inf if threshold is None else float(threshold),
            false_flag_rate=float(doc["false_flag_rate"]),
            k=int(doc["k"]),
            held_out_flag_rate=float(doc["held_out_flag_rate"]),
            flagged_accuracy=doc["flagged_accuracy"],
            n_calibration=int(doc["n_calibration"]),
            method=doc["method"],
            n_measured=int(doc.get("n_measured", 0)),
            n_flagged_measured=int(doc.get("n_flagged_measured", 0)),
            in_scope_flag_rate=doc.get("in_scope_flag_rate"),
            scale=_checked_scale(doc, folder) if doc["method"] in NEEDS_CONFIDENCE else None,
            rate_measured=_measured(doc.get("rate_measured")),
            **_checked_ranks(tensors, doc, folder),
        )


def _scale(model: OutOfScopeModel, features: np.ndarray, confidence: np.ndarray) -> dict:
    """Means and spreads of the kNN score and of ``1 - confidence`` over held-out rows."""
    knn = knn_cosine(features, model.reference, model.k)
    msp = 1.0 - np.asarray(confidence, dtype=np.float64)
    return {
        "knn_mean": float(knn.mean()),
        "knn_std": float(max(knn.std(), 1e-6)),  # a constant part only shifts the sum
        "msp_mean": float(msp.mean()),
        "msp_std": float(max(msp.std(), 1e-6)),
        "rows": len(knn),
    }


def _band(model, calibration_scores, measured, measure_correct) -> dict | None:
    """The estimate's band, from the calibration rows (threshold) and the measured ones."""
    threshold = conformal_threshold(calibration_scores, BAND_RATE)
    if not math.isfinite(threshold) or threshold >= model.threshold:
        return None
    past = np.asarray(measured) > threshold
    inside = past & ~model.flags(measured)
    accuracy = None
    if measure_correct is not None and inside.any():
        accuracy = float(np.asarray(measure_correct, dtype=bool)[inside].mean())
    rate = in_scope_rate(len(calibration_scores), BAND_RATE, (int(past.sum()), past.size))
    return {"threshold": float(threshold), "rate": rate, "accuracy": accuracy}


def _checked_ranks(tensors: dict, doc: dict, folder: Path) -> dict:
    """The stored rank reference and band, checked: bins that fit the edges, a band with a
    finite threshold and rate."""
    edges, counts, band = tensors.get("rank_edges"), tensors.get("rank_counts"), doc.get("band")
    if (edges is None) != (counts is None) or (
        edges is not None
        and (counts.size != edges.size + 1 or (counts < 0).any() or (np.diff(edges) <= 0).any())
    ):
        raise ValueError(f"{folder / TENSORS_FILE}: rank_edges and rank_counts do not fit")
    if band is not None and not (
        isinstance(band, dict)
        and all(
            isinstance(band.get(k), float) and math.isfinite(band[k]) for k in ("threshold", "rate")
        )
        and (band.get("accuracy") is None or isinstance(band["accuracy"], float))
    ):
        raise ValueError(f"{folder / JSON_FILE}: band needs a threshold, a rate and an accuracy")
    return {"rank_edges": edges, "rank_counts": counts, "band": band}


def _measured(value) -> tuple[int, int] | None:
    return None if value is None else (int(value[0]), int(value[1]))


def _checked_scale(doc: dict, folder: Path) -> dict:
    scale = doc.get("scale")
    keys = ("knn_mean", "knn_std", "msp_mean", "msp_std")
    if not isinstance(scale, dict) or not all(isinstance(scale.get(k), float) for k in keys):
        raise ValueError(f"{folder / JSON_FILE}: method {doc['method']} needs scale {keys}")
    return scale


def load(folder: Path) -> OutOfScopeModel | None:
    """:meth:`OutOfScopeModel.load`."""
    return OutOfScopeModel.load(folder)
