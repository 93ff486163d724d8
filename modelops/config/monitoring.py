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


class MonitoringSettings(StrictSection):
    """Drift checks on production windows against the champion's reference data."""

    window_size: int = Field(default=200, ge=20, le=100_000)
    false_alarm_rate: float = Field(
        default=0.002,
        gt=0,
        lt=0.5,
        description="per signal; thresholds are calibrated per adapter at this rate",
    )
    n_bootstrap: int = Field(default=50, ge=10, le=2000)
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
    redact_text: bool = False
    landing: str | None = Field(
        default=None,
        description="folder or s3://bucket/prefix for batch files "
        "(default <MODELOPS_HOME>/landing)",
    )


class RetrainingSettings(StrictSection):
    mode: Literal["incremental", "full"] = "incremental"
    replay_fraction: float = Field(default=0.2, gt=0, le=1)
    epochs: int | None = Field(default=None, gt=0, le=100, description="default: training.epochs")
    cooldown_minutes: float = Field(default=30, ge=0)
    schedule: str | None = Field(default=None, description="cron for periodic retraining")
