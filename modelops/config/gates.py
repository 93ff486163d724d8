"""The ``gates:`` section of a recipe: what a candidate must reach to be promoted."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class CostPolicy(BaseModel):
    """The ``gates.cost:`` section: what a point of quality is worth against inference
    cost (the ``gain_worth_cost`` check, ``modelops.domain.cost_gate``).

    A candidate that costs more to serve than the champion (seconds per 32 texts, both
    timed in the same run) must show a gain over the champion above the noise of
    the test rows and of at least ``min_gain_per_cost_doubling`` per doubling of that
    cost; one that costs no more is judged by the other gates alone."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: Literal["macro_f1", "accuracy"] = Field(
        default="macro_f1", description="the metric whose gain over the champion is weighed"
    )
    min_gain_per_cost_doubling: float = Field(
        default=0.005,
        ge=0.0,
        le=1.0,
        description="least gain (a fraction: 0.01 is one point) each doubling of the "
        "inference cost must buy; required gain = this x log2(cost ratio)",
    )
    confidence: float = Field(
        default=0.95,
        ge=0.5,
        lt=1.0,
        description="one-sided confidence of the gain's lower bound (paired bootstrap over "
        "the test rows), which must be above 0, and of the cost ratio's lower bound",
    )
    same_cost_ratio: float = Field(
        default=1.10,
        ge=1.0,
        le=100.0,
        description="a candidate counts as costlier only when the lower confidence bound "
        "of its inference-cost ratio to the champion exceeds this (timing noise)",
    )


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
    weigh_cost: bool = Field(
        default=True,
        description="a candidate costlier to serve than the champion must earn it under "
        "``cost`` (the gain_worth_cost check); off: no such check",
    )
    cost: CostPolicy = CostPolicy()
