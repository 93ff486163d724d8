"""The ``gates:`` section of a recipe: what a candidate must reach to be promoted."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class GateSettings(BaseModel):
    """The ``gates:`` section of a recipe."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_macro_f1: float = Field(default=0.0, ge=0.0, le=1.0, description="absolute floor")
    max_macro_f1_drop: float = Field(
        default=0.02, ge=0.0, le=1.0, description="largest allowed macro-F1 drop vs the champion"
    )
    max_label_f1_drop: float = Field(
        default=0.10, ge=0.0, le=1.0, description="largest allowed drop of any label's F1"
    )
    min_label_support: int = Field(
        default=5, ge=0, description="labels with fewer test examples are not compared one by one"
    )
    beat_baseline: bool = Field(
        default=True,
        description="test accuracy must beat the linear-probe baseline's by baseline_margin "
        "with baseline_confidence (paired bootstrap over the test rows)",
    )
    baseline_margin: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="accuracy (fraction) the lower confidence bound of the margin over the "
        "probe must exceed",
    )
    baseline_confidence: float = Field(
        default=0.95, ge=0.5, lt=1.0, description="one-sided confidence of that lower bound"
    )
