"""The ``gain_worth_cost`` gate: a candidate that costs more to serve than the champion must
earn it (the recipe's ``gates.cost``, ``modelops.config.gates.CostPolicy``).

The cost is inference seconds per 32 texts, the candidate and the champion timed in the
same run, in interleaved rounds on the same texts (``modelops.lifecycle.
inference_cost``): the cost ratio is the median of the per-round ratios, and the candidate
counts as *costlier* only when the ratio's lower confidence bound (an order statistic of
the rounds, as a sign test gives it) exceeds ``same_cost_ratio``, so timing noise does not
make a same-sized model costlier. Memory (the loaded models' weights) is shown beside it,
not weighed.

A costlier candidate passes only when its gain over the champion on the compared test rows
(``metric``) is above the noise of those rows (the one-sided lower bound of a paired
bootstrap is above 0) **and** the gain reaches ``min_gain_per_cost_doubling`` x
log2(cost ratio). A candidate that is not costlier passes: the other gates judge it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import median
from typing import Any

import numpy as np

from modelops.config.gates import CostPolicy
from modelops.domain.bootstrap import PairedBootstrap, paired_bootstrap, paired_bootstrap_macro_f1

NAME = "gain_worth_cost"
_EPS = 1e-9

GateCheckParts = tuple[bool, str, dict[str, Any]]
"""A verdict as ``(passed, description, metadata)``; ``modelops.domain.gates`` makes the
``GateCheck``."""
"""A verdict as ``(passed, description, metadata)``; ``modelops.domain.gates`` makes the
``GateCheck``."""


@dataclass(frozen=True)
class InferenceCost:
    """One model's measured inference cost."""

    seconds_per_32: tuple[float, ...]
    """Seconds per 32 texts, one per timing round (rounds interleaved with the other
    model's, in the same order for both)."""
    memory_bytes: int | None = None
    """The loaded model's weights and buffers in memory (base, adapter and head)."""

    @property
    def seconds(self) -> float:
        """The median of the rounds."""
        return float(median(self.seconds_per_32))


@dataclass(frozen=True)
class CostEvidence:
    """What the check weighs: both models' inference cost, and per compared test row the
    true label and each model's prediction (label indices)."""

    candidate: InferenceCost
    champion: InferenceCost
    y: np.ndarray
    candidate_pred: np.ndarray
    champion_pred: np.ndarray
    n_labels: int
    how: str = ""
    """How the cost was measured, in words (shown in the check's metadata)."""


@dataclass(frozen=True)
class CostRatio:
    """Candidate over champion: the median of the per-round ratios and its lower bound."""

    ratio: float
    lower_bound: float
    rounds: int
    memory: float | None


def cost_ratio(candidate: InferenceCost, champion: InferenceCost, confidence: float) -> CostRatio:
    """The per-round ratios' median and its one-sided lower bound at ``confidence``: the
    k-th smallest ratio, k the largest with P(Binomial(rounds, 1/2) < k) <= 1 - confidence
    (the smallest ratio when there are too few rounds for that confidence)."""
    pairs = list(zip(candidate.seconds_per_32, champion.seconds_per_32, strict=True))
    if not pairs or any(b <= 0 or a <= 0 for a, b in pairs):
        raise ValueError(f"inference cost: need positive seconds per round (got {pairs})")
    ratios = sorted(a / b for a, b in pairs)
    n, k, tail = len(ratios), 0, 0.0
    while k < n:
        tail += math.comb(n, k) / 2**n  # P(X <= k)
        if tail > 1 - confidence:
            break
        k += 1
    memory = None
    if candidate.memory_bytes and champion.memory_bytes:
        memory = candidate.memory_bytes / champion.memory_bytes
    return CostRatio(float(median(ratios)), ratios[max(k - 1, 0)], n, memory)


def gain_bootstrap(evidence: CostEvidence, policy: CostPolicy) -> PairedBootstrap:
    """The candidate's gain over the champion on the compared rows, bootstrapped."""
    if policy.metric == "accuracy":
        return paired_bootstrap(
            evidence.candidate_pred == evidence.y,
            evidence.champion_pred == evidence.y,
            confidence=policy.confidence,
        )
    return paired_bootstrap_macro_f1(
        evidence.y,
        evidence.candidate_pred,
        evidence.champion_pred,
        evidence.n_labels,
        confidence=policy.confidence,
    )


def _cost_words(evidence: CostEvidence, ratio: CostRatio, policy: CostPolicy) -> str:
    cand, champ = evidence.candidate, evidence.champion
    memory = f", memory {ratio.memory:.2f}x" if ratio.memory is not None else ""
    return (
        f"inference cost {ratio.ratio:.2f}x the champion's ({cand.seconds:.4g} vs "
        f"{champ.seconds:.4g} s per 32 texts, {policy.confidence:.0%} lower bound "
        f"{ratio.lower_bound:.2f}x over {ratio.rounds} rounds{memory})"
    )


def gain_worth_cost(evidence: CostEvidence, policy: CostPolicy) -> GateCheckParts:
    """The verdict on measured ``evidence``: ``(passed, description, metadata)``."""
    ratio = cost_ratio(evidence.candidate, evidence.champion, policy.confidence)
    cost = _cost_words(evidence, ratio, policy)
    metadata: dict[str, Any] = {
        "metric": policy.metric,
        "cost_ratio": ratio.ratio,
        "cost_ratio_lower_bound": ratio.lower_bound,
        "memory_ratio": ratio.memory,
        "timing_rounds": ratio.rounds,
        "candidate_seconds_per_32": evidence.candidate.seconds,
        "champion_seconds_per_32": evidence.champion.seconds,
        "candidate_memory_bytes": evidence.candidate.memory_bytes,
        "champion_memory_bytes": evidence.champion.memory_bytes,
        "same_cost_ratio": policy.same_cost_ratio,
        "min_gain_per_cost_doubling": policy.min_gain_per_cost_doubling,
        "confidence": policy.confidence,
        "measured": evidence.how,
    }
    costlier = ratio.lower_bound > policy.same_cost_ratio + _EPS
    metadata["costlier"] = costlier
    if not costlier:
        return (
            True,
            f"{cost}: not costlier than the champion (bound <= {policy.same_cost_ratio:.2f}x), "
            "judged by the other gates",
            metadata,
        )
    boot = gain_bootstrap(evidence, policy)
    doublings = math.log2(ratio.ratio)
    required = policy.min_gain_per_cost_doubling * doublings
    above_noise = boot.lower_bound > _EPS
    worth = boot.observed >= required - _EPS
    metadata.update(
        gain=boot.observed,
        gain_lower_bound=boot.lower_bound,
        gain_interval=[boot.low, boot.high],
        rows=boot.n,
        cost_doublings=doublings,
        required_gain=required,
        above_noise=above_noise,
    )
    gain = (
        f"{policy.metric} gain {boot.observed:+.4f} over {boot.n} test rows "
        f"({policy.confidence:.0%} lower bound {boot.lower_bound:+.4f}, interval "
        f"[{boot.low:+.4f}, {boot.high:+.4f}])"
    )
    asked = (
        f"a costlier candidate needs a gain above the noise (lower bound > 0) and >= "
        f"{required:.4f} ({policy.min_gain_per_cost_doubling:g} per doubling x "
        f"{doublings:.2f} doublings)"
    )
    if above_noise and worth:
        return True, f"{cost}, {gain}: worth it; {asked}", metadata
    short = [] if above_noise else ["inside the noise"]
    short += [] if worth else [f"below the {required:.4f} the cost asks"]
    return False, f"{cost}, {gain}: {' and '.join(short)}; {asked}", metadata
