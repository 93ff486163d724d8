"""Per-signal drift thresholds calibrated to the window size and the false-alarm rate asked.

Evidently's default thresholds are not calibrated to window size, so :func:`calibrate`
bootstraps windows from held-out reference-like data, records each signal's null
distribution and sets per-signal thresholds at the false-alarm rate asked
(:func:`threshold_from_null`); ``modelops.monitoring.verdict`` compares scores with them.
With ``s`` signals each at rate ``a``, the chance that a clean window fires at least one is at
most ``s * a``.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from modelops.config.errors import InputError
from modelops.monitoring.evidently_scores import signal_scores
from modelops.monitoring.signals import Projection, Window, fit_projection

_SOURCE = "drift"
_THRESHOLD_RULE = "max(empirical quantile (numpy 'higher'), normal fit, log-normal fit)"


def threshold_from_null(null: Sequence[float], false_alarm_rate: float) -> float:
    """The conservative ``(1 - false_alarm_rate)`` quantile of a null distribution.

    The largest of three estimates: the empirical quantile (numpy's ``higher`` method, so with
    fewer than ``1 / false_alarm_rate`` samples it is the maximum), the quantile of a normal
    fitted to the samples, and, when every sample is positive, that of a log-normal (distances
    are skewed to the right, where a normal fit falls short). The fits extrapolate past the
    largest sample when few bootstraps were drawn. Each estimate grows as the rate falls, so
    the threshold does too.
    """
    values = np.asarray(null, dtype=float)
    if values.size == 0 or not np.isfinite(values).all():
        raise InputError(_SOURCE, "null_scores", "must be a non-empty list of finite numbers")
    q = 1.0 - false_alarm_rate
    z = statistics.NormalDist().inv_cdf(q)
    estimates = [float(np.quantile(values, q, method="higher"))]
    if values.size > 1:
        estimates.append(float(values.mean() + z * values.std(ddof=1)))
        if (values > 0).all():
            logs = np.log(values)
            estimates.append(float(np.exp(logs.mean() + z * logs.std(ddof=1))))
    return max(estimates)


@dataclass
class Calibration:
    """Per-signal thresholds for windows of ``window_size`` rows against one reference."""

    window_size: int
    false_alarm_rate: float
    n_bootstrap: int
    thresholds: dict[str, float]
    null_scores: dict[str, list[float]]
    reference_rows: int = 0
    rule: str = _THRESHOLD_RULE

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return {
            "window_size": int(self.window_size),
            "false_alarm_rate": float(self.false_alarm_rate),
            "n_bootstrap": int(self.n_bootstrap),
            "thresholds": {k: float(v) for k, v in self.thresholds.items()},
            "null_scores": {k: [float(x) for x in v] for k, v in self.null_scores.items()},
            "reference_rows": int(self.reference_rows),
            "rule": self.rule,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Calibration:
        """Inverse of :meth:`to_dict`."""
        try:
            return cls(
                window_size=int(d["window_size"]),
                false_alarm_rate=float(d["false_alarm_rate"]),
                n_bootstrap=int(d["n_bootstrap"]),
                thresholds={str(k): float(v) for k, v in d["thresholds"].items()},
                null_scores={str(k): [float(x) for x in v] for k, v in d["null_scores"].items()},
                reference_rows=int(d.get("reference_rows", 0)),
                rule=str(d.get("rule", _THRESHOLD_RULE)),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InputError(_SOURCE, "calibration", f"is not a stored calibration: {exc}") from exc

    def at_rate(self, false_alarm_rate: float) -> Calibration:
        """The same null scores with thresholds at another false-alarm rate."""
        _check_rate(false_alarm_rate)
        thresholds = {
            signal: threshold_from_null(null, false_alarm_rate)
            for signal, null in self.null_scores.items()
        }
        return replace(self, false_alarm_rate=false_alarm_rate, thresholds=thresholds)


def _check_rate(false_alarm_rate: float) -> None:
    if not 0.0 < false_alarm_rate < 0.5:
        raise InputError(
            _SOURCE, "false_alarm_rate", f"must be in (0, 0.5), got {false_alarm_rate!r}"
        )


def calibrate(
    reference: Window,
    holdout: Window,
    *,
    window_size: int,
    false_alarm_rate: float = 0.01,
    n_bootstrap: int = 50,
    seed: int = 0,
    label_rows: int | None = None,
    vocabulary: set[str] | frozenset[str] | None = None,
    pca: Projection | None = None,
    engine: str = "stattest",
) -> Calibration:
    """Per-signal thresholds from bootstrapped no-drift windows.

    Draws ``n_bootstrap`` windows of ``window_size`` rows from ``holdout`` (reference-like
    data the model did not train on and that is not in ``reference``; several times the window
    size), with replacement as a bootstrap does: drawing without replacement from a holdout not
    much larger than the window makes windows too alike and the null too narrow. Scores each
    window against ``reference`` with :func:`signal_scores` and sets each threshold with
    :func:`threshold_from_null`. ``label_rows`` keeps labels on only that many rows of each
    window, to match how much feedback production windows carry (default: all rows).
    Without ``pca`` one projection is fitted on ``reference`` (the one ``signal_scores``
    would fit); pass the same ``vocabulary`` and ``pca`` when scoring production windows.
    Cost: ``n_bootstrap`` Evidently reports against the whole reference.
    """
    _check_rate(false_alarm_rate)
    if n_bootstrap < 2:
        raise InputError(_SOURCE, "n_bootstrap", f"must be >= 2, got {n_bootstrap}")
    if not 1 <= window_size <= len(holdout):
        raise InputError(
            _SOURCE, "window_size",
            f"must be between 1 and the holdout's {len(holdout)} rows, got {window_size}",
        )  # fmt: skip
    if label_rows is not None and not 0 <= label_rows <= window_size:
        raise InputError(_SOURCE, "label_rows", f"must be in [0, {window_size}], got {label_rows}")
    if pca is None and reference.embeddings is not None and holdout.embeddings is not None:
        pca = fit_projection(reference.embeddings)
    rng = np.random.default_rng(seed)
    null: dict[str, list[float]] = {}
    for _ in range(n_bootstrap):
        window = holdout.take(rng.choice(len(holdout), size=window_size, replace=True))
        if label_rows is not None and window.labels is not None:
            keep = set(rng.choice(window_size, size=label_rows, replace=False).tolist())
            labels = [label if i in keep else None for i, label in enumerate(window.labels)]
            window = replace(window, labels=labels)
        scores = signal_scores(reference, window, vocabulary=vocabulary, pca=pca, engine=engine)
        for signal, score in scores.items():
            null.setdefault(signal, []).append(score)
    thresholds = {
        signal: threshold_from_null(values, false_alarm_rate)
        for signal, values in null.items()
        if len(values) == n_bootstrap
    }
    return Calibration(
        window_size=window_size,
        false_alarm_rate=false_alarm_rate,
        n_bootstrap=n_bootstrap,
        thresholds=thresholds,
        null_scores={signal: null[signal] for signal in thresholds},
        reference_rows=len(reference),
    )
