"""What the accumulated drift tests hold against (``modelops.monitoring.evidence``): the
tests, how the lifetime ``alpha`` is split among them, and the settings whose change
restarts the evidence."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from modelops.config.errors import InputError
from modelops.monitoring.bounds import clopper_pearson_low

_SOURCE = "evidence"
TESTS = ("novelty", "policy_drop", "any_drop", "drift")
SHARES = {
    "reference": 0.1,
    "flag_rate": 0.1,
    "novelty": 0.4,
    "policy_drop": 0.2,
    "any_drop": 0.1,
    "drift": 0.1,
}
"""How ``alpha`` is split: the reference accuracy's lower bound, the out-of-scope model's
in-scope flag rate and flagged rows' accuracy (upper bounds, ``monitoring.check``), then
each test."""
WHAT = {
    "novelty": "out-of-scope scores above the calibration rows' (or flags above the null rate)",
    "policy_drop": "estimated accuracy below the reference by more than the policy",
    "any_drop": "estimated accuracy below the reference",
    "drift": "drift signals above their calibration's null windows",
}


@dataclass(frozen=True)
class EvidenceSettings:
    """What the tests hold against; a change resets the evidence (its nulls moved)."""

    alpha: float = 0.01
    null_flag_rate: float | None = None
    reference_accuracy: float | None = None
    reference_rows: int = 0
    policy_drop: float = 0.02
    min_accuracy: float | None = None
    drift: bool = True
    novelty_reference: str | None = None
    """The fingerprint of the out-of-scope model's rank reference: the novelty test bets on
    the ranks of the rows' scores (``novelty_ranks``); None: on flags against
    ``null_flag_rate``."""

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 0.5:
            raise InputError(_SOURCE, "alpha", f"must be in (0, 0.5), got {self.alpha!r}")
        for name in ("null_flag_rate", "reference_accuracy", "min_accuracy"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise InputError(_SOURCE, name, f"must be in [0, 1] or null, got {value!r}")
        if not 0.0 <= self.policy_drop <= 1.0:
            raise InputError(_SOURCE, "policy_drop", f"must be in [0, 1], got {self.policy_drop}")
        if self.reference_rows < 0:
            raise InputError(_SOURCE, "reference_rows", f"must be >= 0, got {self.reference_rows}")

    def alpha_of(self, part: str) -> float:
        """The share of ``alpha`` of one test (or of the ``reference`` bound)."""
        return self.alpha * SHARES[part]

    @property
    def reference_low(self) -> float | None:
        """One-sided Clopper-Pearson lower bound of the reference accuracy at its share."""
        acc, n = self.reference_accuracy, self.reference_rows
        if acc is None or n <= 0:
            return None
        return clopper_pearson_low(round(acc * n), n, self.alpha_of("reference"))

    def nulls(self) -> dict[str, float | None]:
        """Each test's null bound (None: the test is off or cannot be run)."""
        low = self.reference_low
        policy = None if low is None else low - self.policy_drop
        if self.min_accuracy is not None:
            policy = self.min_accuracy if policy is None else max(policy, self.min_accuracy)
        rate = self.null_flag_rate
        if self.novelty_reference:  # p-values: uniform, mean 0.5, under the null
            rate = 0.5
        return {
            "novelty": rate if rate is not None and 0.0 < rate < 1.0 else None,
            "policy_drop": policy if policy is not None and 0.0 < policy < 1.0 else None,
            "any_drop": low if low is not None and 0.0 < low < 1.0 else None,
            "drift": 1.0 if self.drift else None,
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
