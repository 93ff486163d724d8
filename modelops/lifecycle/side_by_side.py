"""The side-by-side of an evaluation: the candidate and the champion it was compared
with, each on its own base, on the same test rows, with their training and inference cost
(``modelops.domain.side_by_side``). Built by ``evaluate_adapter`` for every candidate;
what matters on a base change (``base_changed``), shown by the evaluation asset and kept
in the registry's metrics, so the audit entry of the gate decision carries it. With the
``gain_worth_cost`` gate it holds both models' measured inference cost (the columns'
``inference_*``), their ratio (``cost_ratio``), that check (``cost_gate``) and its words in
the ``verdict``. For a distilled candidate :func:`add_teacher` puts its teacher beside
them, scored on the same rows and timed beside the candidate (``teacher``,
``teacher_cost_ratio``); the gates never read it."""

from __future__ import annotations

from modelops.config.progress import Emit
from modelops.domain.cost_gate import NAME as COST_GATE
from modelops.domain.cost_gate import InferenceCost
from modelops.domain.evaluation import evaluate
from modelops.domain.side_by_side import model_side, side_by_side, verdict_sentence
from modelops.lifecycle.fetch import loaded_adapters
from modelops.lifecycle.inference_cost import InferenceMeter, measure_inference
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


def add_teacher(
    doc: dict, platform: Platform, version, rows, meter: InferenceMeter | None, emit: Emit
) -> None:
    """The teacher of a distilled candidate ``version`` as a third column of ``doc``: its
    accuracy on the candidate's test ``rows`` (a ``TestRows``), its training cost, and
    both models' inference cost timed here in interleaved rounds (``meter``). Nothing
    for an adapter trained without a teacher; a teacher that cannot be scored leaves a
    note instead (the side by side informs, the gates do not depend on it)."""
    record = (version.lineage or {}).get("distillation")
    if not record:
        return
    try:
        teacher = platform.registry.get(record["teacher_adapter_id"])
        probs, measured = _teacher_scores(platform, version, teacher, record, rows, meter)
    except Exception as exc:  # any failure to fetch, load or time the teacher
        doc["teacher_note"] = f"teacher adapter {record['teacher_adapter_id']} not compared: {exc}"
        emit(doc["teacher_note"])
        return
    column = model_side(
        teacher.id,
        teacher.base_model,
        evaluate(rows.y, probs, rows.labels),
        _cost(teacher.metrics, None, measured["teacher"]),
        len(rows.y),
    )
    doc["teacher"] = {**column, "recipe": teacher.recipe}
    student, taught = measured["candidate"], measured["teacher"]
    doc["teacher_cost_ratio"] = {
        "seconds": taught.seconds / student.seconds if student.seconds else None,
        "memory": taught.memory_bytes / student.memory_bytes
        if taught.memory_bytes and student.memory_bytes
        else None,
        "candidate_seconds_per_32": student.seconds,
    }
    emit(
        f"teacher adapter {teacher.id}: accuracy {column['accuracy']:.4f}; inference "
        f"seconds per 32 texts {taught.seconds:.4g} (candidate {student.seconds:.4g})"
    )


def _teacher_scores(platform: Platform, version, teacher, record: dict, rows, meter):
    """The teacher's probabilities of the test rows (columns in ``rows.labels``' order)
    and both models' inference cost (``{"candidate": ..., "teacher": ...}``)."""
    with loaded_adapters(platform, {"candidate": version, "teacher": teacher}) as models:
        length = int(record["soft_labels"]["teacher_max_length"])
        probs = models["teacher"].predict_proba(rows.texts, length)
        measured = (meter or measure_inference)(models, rows.texts, rows.max_length)
    order = [models["teacher"].labels.index(label) for label in rows.labels]
    return probs[:, order], measured
