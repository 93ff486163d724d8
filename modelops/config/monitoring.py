"""The ``monitoring:`` and ``retraining:`` sections of a recipe, and the drift signal names."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from modelops.config.yaml_files import StrictSection

# Every drift signal ``modelops.monitoring`` can compute, in report order.
SIGNALS = (
    "text_domain_auc",
    "text_length",
    "oov_rate",
    "embedding",
    "prediction",
    "confidence",
    "label",
)


class LandingLimits(StrictSection):
    """What one batch file in the landing folder may be; a file over a cap is rejected
    with a note naming the file and the cap, before it is loaded (docs/recipes.md)."""

    max_bytes: int = Field(
        default=100_000_000,
        gt=0,
        description="largest file, in bytes: its size, and for Parquet also its data "
        "uncompressed and decoded",
    )
    max_rows: int = Field(default=1_000_000, gt=0, description="most data rows in one file")
    max_failures: int = Field(
        default=3,
        ge=1,
        le=100,
        description="scoring attempts that crash on one file before it is quarantined",
    )


class OutOfScopeSettings(StrictSection):
    """The out-of-scope score every prediction carries (``modelops.monitoring.out_of_scope``):
    fitted when an adapter is trained, stored in its ``monitoring/`` folder."""

    false_flag_rate: float = Field(
        default=0.05,
        gt=0,
        lt=0.5,
        description="the share of in-scope texts allowed to be flagged; the threshold is a "
        "conformal quantile of held-out in-scope rows' scores, so the expected share is at "
        "most this",
    )
    method: Literal["knn_msp", "knn_cosine"] = Field(
        default="knn_msp",
        description="knn_msp: the kNN score plus 1 - the top probability, each standardised "
        "on held-out rows; knn_cosine: the kNN score alone",
    )
    k: int = Field(
        default=1,
        ge=1,
        le=100,
        description="the kNN score is 1 - cosine similarity to the k-th nearest training row",
    )
    max_reference_rows: int = Field(
        default=20_000,
        ge=10,
        le=1_000_000,
        description="training rows kept as the reference (a seeded sample past this)",
    )


class MonitoringSettings(StrictSection):
    """Drift checks on production windows against the champion's reference data."""

    window_size: int = Field(default=200, ge=20, le=100_000)
    false_alarm_rate: float = Field(
        default=0.002,
        gt=0,
        lt=0.5,
        description="of the whole verdict (all chosen signals together) on clean windows; "
        "thresholds are calibrated per adapter at this rate",
    )
    confidence: float = Field(
        default=0.9,
        ge=0.5,
        lt=1,
        description="probability that the calibrated thresholds hold false_alarm_rate",
    )
    n_bootstrap: int | None = Field(
        default=None,
        ge=10,
        le=20_000,
        description="null windows to calibrate on (default: as many as false_alarm_rate "
        "needs at confidence, 1151 at 0.002 and 0.9)",
    )
    signals: tuple[Literal[SIGNALS], ...] = (  # type: ignore[valid-type]
        "text_domain_auc",
        "oov_rate",
        "embedding",
        "prediction",
        "confidence",
        "label",
    )
    min_estimated_accuracy: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="label-free trigger: retrain when the estimated accuracy falls below",
    )
    evidence_alpha: float = Field(
        default=0.01,
        gt=0,
        lt=0.5,
        description="drift decisions on accumulated evidence: the probability that a "
        "champion whose traffic is clean ever raises an alarm (warn or retrain) over its "
        "whole time in service, split across the sequential tests",
    )
    evidence_drift_signals: bool = Field(
        default=True,
        description="also accumulate the drift signals' evidence (p-values among the "
        "calibration's null windows) across disjoint windows",
    )
    redact_text: bool = False
    landing: str | None = Field(
        default=None,
        description="folder or s3://bucket/prefix for batch files "
        "(default <MODELOPS_HOME>/landing)",
    )
    landing_limits: LandingLimits = LandingLimits()
    out_of_scope: OutOfScopeSettings = OutOfScopeSettings()


class RetrainingSettings(StrictSection):
    """How and when to retrain. ``trigger`` is the severity policy of drift reports:
    ``impact`` (default) launches a run only when the model is hurt, ``drift`` on any drift."""

    mode: Literal["incremental", "full"] = "incremental"
    replay_fraction: float = Field(default=0.2, gt=0, le=1)
    epochs: int | None = Field(default=None, gt=0, le=100, description="default: training.epochs")
    cooldown_minutes: float = Field(default=30, ge=0)
    on_drift: bool = Field(
        default=True,
        description="false: drift reports launch no retraining of this recipe (the reports "
        "still come out; the schedule, backfills and base moves still train)",
    )
    on_teacher_change: bool = Field(
        default=True,
        description="false: a new champion of the recipe's distillation teacher launches no "
        "distillation of this recipe (the teacher_champions sensor)",
    )
    schedule: str | None = Field(default=None, description="cron for periodic retraining")
    trigger: Literal["impact", "drift"] = Field(
        default="impact",
        description="impact: retrain on drift with an estimated drop, a measured drop or new "
        "labels in feedback (movement alone only warns); drift: retrain on any drift",
    )
    min_estimated_drop: float = Field(
        default=0.02,
        ge=0,
        le=1,
        description="impact: drift and an estimated accuracy drop of at least this retrain",
    )
    min_measured_drop: float | None = Field(
        default=0.02,
        ge=0,
        le=1,
        description="impact: a measured accuracy drop (feedback labels) of at least this, "
        "with its interval above 0, retrains; null: off",
    )
    min_labelled_rows: int = Field(
        default=30, ge=1, description="labelled rows a window needs for its measured drop"
    )
    on_new_labels: bool = Field(
        default=True,
        description="impact: feedback with a label the adapter's reference never had retrains",
    )
