"""The side-by-side of an evaluation: the candidate and the champion it was compared
with, each on its own base, on the same test rows, with their training and inference cost
(``modelops.domain.side_by_side``). Built by ``evaluate_adapter`` for every candidate;
what matters on a base change (``base_changed``), shown by the evaluation asset and kept
in the registry's metrics, so the audit entry of the gate decision carries it. With the
``gain_worth_cost`` gate it holds both models' measured inference cost (the columns'
``inference_*``), their ratio (``cost_ratio``), that check (``cost_gate``) and its words in
the ``verdict``."""

from __future__ import annotations

from modelops.domain.cost_gate import NAME as COST_GATE
from modelops.domain.cost_gate import InferenceCost
from modelops.domain.side_by_side import model_side, side_by_side, verdict_sentence
from modelops.lifecycle.platform import Platform


def _cost(metrics: dict, latency: float | None, inference: InferenceCost | None = None) -> dict:
    cost = {k.removeprefix("cost_"): v for k, v in metrics.items() if k.startswith("cost_")}
    if latency is not None:
        cost["latency_seconds_per_32"] = float(latency)
    if inference is not None:
        cost["inference_seconds_per_32"] = inference.seconds
        cost["inference_memory_bytes"] = inference.memory_bytes
    return cost


def _ratio(check) -> dict | None:
    """The cost ratio the ``gain_worth_cost`` check measured (its metadata), else None."""
    meta = check.metadata if check is not None else {}
    if "cost_ratio" not in meta:
        return None
    return {
        "seconds": meta["cost_ratio"],
        "seconds_lower_bound": meta["cost_ratio_lower_bound"],
        "memory": meta["memory_ratio"],
        "rounds": meta["timing_rounds"],
        "confidence": meta["confidence"],
        "measured": meta["measured"],
    }


def base_side_by_side(platform: Platform, version, outcome, rows: int, latency, comparison):
    """The side-by-side document of ``outcome`` (an ``EvaluationOutcome``) for adapter
    ``version``, scored on ``rows`` test rows; ``comparison`` is the champion's
    (``ChampionComparison``), whose ``latency`` was measured on the same rows."""
    evidence = outcome.cost
    candidate = model_side(
        version.id,
        version.base_model,
        outcome.candidate,
        _cost(version.metrics, latency, evidence.candidate if evidence else None),
        rows,
    )
    champion = None
    if outcome.champion is not None and outcome.champion_id is not None:
        held = platform.registry.get(outcome.champion_id)
        compared = rows if comparison.rows is None else int(comparison.rows.sum())
        champion = model_side(
            held.id,
            held.base_model,
            outcome.champion,
            _cost(held.metrics, comparison.latency, evidence.champion if evidence else None),
            compared,
        )
    doc = side_by_side(candidate, champion, note=outcome.champion_note)
    failed = [c.name for c in outcome.decision.checks if c.state == "failed"]
    gate = next((c for c in outcome.decision.checks if c.name == COST_GATE), None)
    doc["cost_ratio"] = _ratio(gate)
    doc["cost_gate"] = gate.to_dict() if gate is not None else None
    words = gate.description if gate is not None and not gate.skipped else ""
    doc["verdict"] = verdict_sentence(doc, outcome.decision.passed, failed, words)
    return doc
