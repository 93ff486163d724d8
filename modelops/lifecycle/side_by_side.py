"""The side-by-side of an evaluation: the candidate and the champion it was compared
with, each on its own base, on the same test rows, with their training and inference cost
(``modelops.domain.side_by_side``). Built by ``evaluate_adapter`` for every candidate;
what matters on a base change (``base_changed``), shown by the evaluation asset and kept
in the registry's metrics, so the audit entry of the gate decision carries it."""

from __future__ import annotations

from modelops.domain.side_by_side import model_side, side_by_side, verdict_sentence
from modelops.lifecycle.platform import Platform


def _cost(metrics: dict, latency: float | None) -> dict:
    cost = {k.removeprefix("cost_"): v for k, v in metrics.items() if k.startswith("cost_")}
    if latency is not None:
        cost["latency_seconds_per_32"] = float(latency)
    return cost


def base_side_by_side(platform: Platform, version, outcome, rows: int, latency, comparison):
    """The side-by-side document of ``outcome`` (an ``EvaluationOutcome``) for adapter
    ``version``, scored on ``rows`` test rows; ``comparison`` is the champion's
    (``ChampionComparison``), whose ``latency`` was measured on the same rows."""
    candidate = model_side(
        version.id, version.base_model, outcome.candidate, _cost(version.metrics, latency), rows
    )
    champion = None
    if outcome.champion is not None and outcome.champion_id is not None:
        held = platform.registry.get(outcome.champion_id)
        compared = rows if comparison.rows is None else int(comparison.rows.sum())
        champion = model_side(
            held.id,
            held.base_model,
            outcome.champion,
            _cost(held.metrics, comparison.latency),
            compared,
        )
    doc = side_by_side(candidate, champion, note=outcome.champion_note)
    failed = [c.name for c in outcome.decision.checks if c.state == "failed"]
    doc["verdict"] = verdict_sentence(doc, outcome.decision.passed, failed)
    return doc
