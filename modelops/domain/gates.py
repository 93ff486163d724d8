"""Promotion gates: may a candidate adapter replace the champion?

Five checks, each a plain verdict with a sentence and the numbers behind it, so
the Dagster wiring (``modelops.defs``) can turn each one into a blocking asset check:

* ``min_macro_f1``: the candidate reaches an absolute floor;
* ``no_regression``: its macro-F1 is not much below the champion's;
* ``no_label_regression``: no single label's F1 collapses against the champion
  (a macro average can hide one label going to zero);
* ``beats_baseline``: it beats the linear probe on frozen embeddings, on test accuracy,
  by the recipe's ``baseline_margin`` with ``baseline_confidence``: the one-sided lower
  bound of a paired bootstrap over the test rows (``modelops.domain.bootstrap``) must
  exceed the margin, so a tie or a gain within the noise of the test rows fails (only
  when the recipe's ``beat_baseline`` is on: a gate switched off is not a check);
* ``gain_worth_cost``: a candidate costlier to serve than the champion shows a gain above
  the noise and worth the extra cost under the recipe's ``gates.cost``
  (``modelops.domain.cost_gate``; only with ``weigh_cost``, on by default).

The champion must be evaluated on the candidate's test split, so that the numbers
compare like with like.

A check has three states: passed, failed, and *skipped* (it had nothing to compare:
no champion yet, or a comparison the taxonomy mapping rules out, with the exact reason).
A skipped check is never reported as passed (``passed`` is false, ``skipped`` true) and
does not block. A champion that exists but cannot be compared (its adapter or base
cannot be loaded, its labels differ) fails the regression checks, naming why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelops.config.gates import GateSettings
from modelops.domain import cost_gate
from modelops.domain.bootstrap import paired_bootstrap
from modelops.domain.cost_gate import CostEvidence
from modelops.domain.evaluation import Evaluation

# Differences are computed in floating point: 0.80 - 0.78 is 0.0200000000000000018.
_EPS = 1e-9
_WORST_SHOWN = 5


@dataclass(frozen=True)
class GateCheck:
    """One gate's verdict; ``metadata`` holds the numbers (JSON-serialisable)."""

    name: str
    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)
    skipped: bool = False
    """Nothing was compared (``passed`` is then false): it neither passes nor blocks."""

    @property
    def state(self) -> str:
        """``passed``, ``failed`` or ``skipped``."""
        return "skipped" if self.skipped else ("passed" if self.passed else "failed")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "skipped": self.skipped,
            "description": self.description,
            "metadata": self.metadata,
        }


@dataclass(frozen=True)
class GateDecision:
    """All checks; ``passed`` only when every check that was not skipped passed."""

    passed: bool
    checks: list[GateCheck]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict."""
        return {"passed": self.passed, "checks": [c.to_dict() for c in self.checks]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GateDecision:
        """Inverse of :meth:`to_dict`."""
        try:
            checks = [
                GateCheck(
                    name=str(c["name"]),
                    passed=bool(c["passed"]),
                    description=str(c["description"]),
                    metadata=dict(c.get("metadata", {})),
                    skipped=bool(c.get("skipped", False)),
                )
                for c in d["checks"]
            ]
            return cls(passed=bool(d["passed"]), checks=checks)
        except KeyError as exc:
            raise ValueError(f"gate decision: missing field {exc.args[0]!r}") from None

    def failed(self) -> list[GateCheck]:
        """The checks that failed (not the skipped ones), in order."""
        return [c for c in self.checks if not c.passed and not c.skipped]

    def skipped(self) -> list[GateCheck]:
        """The checks that compared nothing, in order."""
        return [c for c in self.checks if c.skipped]


def active_gates(settings: GateSettings) -> list[str]:
    """The names of the checks ``apply_gates`` runs under ``settings``, in order."""
    names = ["min_macro_f1", "no_regression", "no_label_regression"]
    names += ["beats_baseline"] if settings.beat_baseline else []
    return [*names, cost_gate.NAME] if settings.weigh_cost else names


def _skipped(name: str, reason: str, metadata: dict[str, Any]) -> GateCheck:
    return GateCheck(name, False, f"skipped: {reason}", {**metadata, "skipped": reason}, True)


def _unavailable(name: str, reason: str, metadata: dict[str, Any]) -> GateCheck:
    return GateCheck(
        name, False, f"champion not compared: {reason}", {**metadata, "unavailable": reason}
    )


def _check_same_test_set(candidate: Evaluation, champion: Evaluation) -> None:
    if candidate.labels == champion.labels and candidate.n == champion.n:
        supports = [
            (c["support"], champion.per_label[label]["support"])
            for label, c in candidate.per_label.items()
        ]
        if all(int(a) == int(b) for a, b in supports):
            return
        raise ValueError(
            "candidate and champion were evaluated on different test sets: same labels and "
            f"n={candidate.n}, but per-label supports differ; evaluate the champion on the "
            "candidate's test split"
        )

    def describe(e: Evaluation) -> str:
        shown = ", ".join(e.labels[:8]) + (", …" if len(e.labels) > 8 else "")
        return f"n={e.n}, {len(e.labels)} labels [{shown}]"

    details = f"candidate {describe(candidate)}; champion {describe(champion)}"
    if candidate.n == champion.n and sorted(candidate.labels) == sorted(champion.labels):
        details += " (same labels in a different order)"
    raise ValueError(
        f"candidate and champion were evaluated on different test sets: {details}; "
        "evaluate the champion on the candidate's test split"
    )


def _min_macro_f1(candidate: Evaluation, settings: GateSettings) -> GateCheck:
    value, threshold = candidate.macro_f1, settings.min_macro_f1
    passed = value >= threshold - _EPS
    sign = ">=" if passed else "<"
    return GateCheck(
        name="min_macro_f1",
        passed=passed,
        description=f"macro-F1 {value:.3f} {sign} minimum {threshold:.3f}",
        metadata={"value": value, "threshold": threshold},
    )


def _no_regression(
    candidate: Evaluation, champion: Evaluation | None, settings: GateSettings, why: _Why
) -> GateCheck:
    threshold = settings.max_macro_f1_drop
    if champion is None:
        return why.check("no_regression", {"value": candidate.macro_f1, "threshold": threshold})
    drop = champion.macro_f1 - candidate.macro_f1
    passed = drop <= threshold + _EPS
    sign = "<=" if passed else ">"
    return GateCheck(
        name="no_regression",
        passed=passed,
        description=(
            f"macro-F1 {candidate.macro_f1:.3f} vs champion {champion.macro_f1:.3f}: "
            f"drop {drop:+.3f} {sign} allowed {threshold:.3f}"
        ),
        metadata={
            "value": candidate.macro_f1,
            "champion": champion.macro_f1,
            "drop": drop,
            "threshold": threshold,
        },
    )


def _no_label_regression(
    candidate: Evaluation, champion: Evaluation | None, settings: GateSettings, why: _Why
) -> GateCheck:
    threshold, min_support = settings.max_label_f1_drop, settings.min_label_support
    base = {"threshold": threshold, "min_label_support": min_support}
    if champion is None:
        return why.check("no_label_regression", base)
    compared = [
        label
        for label in candidate.labels
        if label in champion.per_label and candidate.per_label[label]["support"] >= min_support
    ]
    drops = sorted(
        (
            {
                "label": label,
                "value": candidate.per_label[label]["f1"],
                "champion": champion.per_label[label]["f1"],
                "drop": champion.per_label[label]["f1"] - candidate.per_label[label]["f1"],
            }
            for label in compared
        ),
        key=lambda d: -d["drop"],
    )
    worst = [d for d in drops if d["drop"] > _EPS][:_WORST_SHOWN]
    failing = [d["label"] for d in drops if d["drop"] > threshold + _EPS]
    metadata = {**base, "compared": len(compared), "failing": failing, "worst": worst}
    if not compared:
        description = f"no label has support >= {min_support}: nothing compared"
    elif failing:
        w = drops[0]
        description = (
            f"{len(failing)} of {len(compared)} labels dropped F1 by more than {threshold:.3f} "
            f"against the champion; worst '{w['label']}' {w['champion']:.3f} -> "
            f"{w['value']:.3f} (drop {w['drop']:.3f})"
        )
    elif worst:
        w = worst[0]
        description = (
            f"no label's F1 dropped by more than {threshold:.3f} against the champion "
            f"({len(compared)} compared); largest drop '{w['label']}' {w['drop']:.3f}"
        )
    else:
        description = (
            f"no label's F1 dropped against the champion ({len(compared)} compared, "
            f"allowed drop {threshold:.3f})"
        )
    return GateCheck("no_label_regression", not failing, description, metadata)


def _beats_baseline(
    candidate: Evaluation,
    baseline: Evaluation | None,
    rows: tuple[np.ndarray, np.ndarray] | None,
    settings: GateSettings,
) -> GateCheck:
    if baseline is None:
        return GateCheck(
            "beats_baseline", False, "beat_baseline is on but no baseline was recorded", {}
        )
    margin, confidence = settings.baseline_margin, settings.baseline_confidence
    metadata: dict[str, Any] = {
        "value": candidate.macro_f1,
        "baseline": baseline.macro_f1,
        "baseline_n": baseline.n,
        "accuracy": candidate.accuracy,
        "baseline_accuracy": baseline.accuracy,
        "required_margin": margin,
        "confidence": confidence,
    }
    if rows is None:
        return GateCheck(
            "beats_baseline",
            False,
            "the baseline's per-row test predictions were not recorded (an adapter trained "
            "before modelops recorded them): the margin cannot be bounded; retrain",
            metadata,
        )
    boot = paired_bootstrap(rows[0], rows[1], confidence=confidence)
    passed = boot.lower_bound > margin + _EPS
    metadata.update(
        margin=boot.observed,
        margin_lower_bound=boot.lower_bound,
        rows=boot.n,
        adapter_only_right=boot.a_only,
        probe_only_right=boot.b_only,
        resamples=boot.resamples,
        bootstrap_seed=boot.seed,
    )
    sign = ">" if passed else "<="
    return GateCheck(
        name="beats_baseline",
        passed=passed,
        description=(
            f"accuracy {candidate.accuracy:.4f} vs linear probe {baseline.accuracy:.4f}: "
            f"margin {boot.observed:+.4f}, {confidence:.0%} lower bound "
            f"{boot.lower_bound:+.4f} {sign} required margin {margin:+.4f} (paired bootstrap "
            f"over {boot.n} test rows: adapter alone right on {boot.a_only}, probe alone on "
            f"{boot.b_only})"
        ),
        metadata=metadata,
    )


def _gain_worth_cost(
    champion: Evaluation | None,
    cost: CostEvidence | None,
    unmeasured: str | None,
    settings: GateSettings,
    why: _Why,
) -> GateCheck:
    policy = settings.cost
    base = {
        "metric": policy.metric,
        "min_gain_per_cost_doubling": policy.min_gain_per_cost_doubling,
        "same_cost_ratio": policy.same_cost_ratio,
    }
    if champion is None:
        return why.check(cost_gate.NAME, base)
    if cost is None:
        reason = unmeasured or "no measurement was given"
        return GateCheck(
            cost_gate.NAME,
            False,
            f"inference cost not measured: {reason}",
            {**base, "unmeasured": reason},
        )
    passed, description, metadata = cost_gate.gain_worth_cost(cost, policy)
    return GateCheck(cost_gate.NAME, passed, description, metadata)


@dataclass(frozen=True)
class _Why:
    """Why the regression checks have no champion evaluation: skipped or unavailable."""

    skipped: str | None
    unavailable: str | None

    def check(self, name: str, metadata: dict[str, Any]) -> GateCheck:
        if self.unavailable:
            return _unavailable(name, self.unavailable, metadata)
        return _skipped(name, self.skipped or "no champion to compare against", metadata)


def apply_gates(
    candidate: Evaluation,
    *,
    settings: GateSettings,
    champion: Evaluation | None = None,
    baseline: Evaluation | None = None,
    compared: Evaluation | None = None,
    champion_skipped: str | None = None,
    champion_unavailable: str | None = None,
    baseline_rows: tuple[np.ndarray, np.ndarray] | None = None,
    cost: CostEvidence | None = None,
    cost_unmeasured: str | None = None,
) -> GateDecision:
    """Run every active gate on ``candidate``; raise ``ValueError`` if the champion's test
    set differs.

    ``compared`` is the candidate on the rows the champion was scored on, when those are
    only part of the test split (default: ``candidate``); the regression checks use it.
    Without a champion evaluation the regression checks are skipped, saying why
    (``champion_skipped``, default "no champion to compare against"), or, when a
    champion exists but could not be compared (``champion_unavailable``: the reason),
    they fail. ``beats_baseline`` runs only with ``beat_baseline: true`` and fails
    without a baseline; ``baseline_rows`` is, per test row, whether the candidate and
    whether the baseline got it right (the paired bootstrap's input; without it the gate
    fails, saying why). ``gain_worth_cost`` runs only with ``weigh_cost``: ``cost`` is the
    measured inference cost of both models and their predictions on the compared rows;
    with a champion but no ``cost`` it fails (``cost_unmeasured``: why), without a champion
    it is skipped or fails as the regression checks do.
    """
    compared = compared or candidate
    if champion is not None:
        _check_same_test_set(compared, champion)
    why = _Why(champion_skipped, champion_unavailable)
    checks = [
        _min_macro_f1(candidate, settings),
        _no_regression(compared, champion, settings, why),
        _no_label_regression(compared, champion, settings, why),
    ]
    if settings.beat_baseline:
        checks.append(_beats_baseline(candidate, baseline, baseline_rows, settings))
    if settings.weigh_cost:
        checks.append(_gain_worth_cost(champion, cost, cost_unmeasured, settings, why))
    passed = all(c.passed for c in checks if not c.skipped)
    return GateDecision(passed=passed, checks=checks)
