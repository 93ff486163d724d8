"""The evaluation step: the candidate and the champion on the same test rows
(``modelops.lifecycle.champion_comparison``), their inference cost
(``modelops.lifecycle.inference_cost``), and the gates."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import numpy as np

from modelops.config.fingerprint import sha256_json
from modelops.config.progress import Emit
from modelops.config.recipe import LoadedRecipe, Recipe
from modelops.domain.cost_gate import NAME as COST_GATE
from modelops.domain.cost_gate import CostEvidence
from modelops.domain.dataset import encode_labels
from modelops.domain.evaluation import Evaluation, confusion_matrix_png, evaluate
from modelops.domain.gates import GateDecision, apply_gates
from modelops.lifecycle.candidate_scores import StoredScores, read_scores
from modelops.lifecycle.champion_comparison import ChampionComparison, TestRows, compare_champion
from modelops.lifecycle.cost import timed_predict
from modelops.lifecycle.dataset import load_dataset
from modelops.lifecycle.fetch import FetchedAdapter
from modelops.lifecycle.inference_cost import ComparedRows, InferenceMeter, measure_pair
from modelops.lifecycle.platform import Platform
from modelops.lifecycle.side_by_side import add_teacher, base_side_by_side
from modelops.ml.training import BASELINE_FILE

log = logging.getLogger(__name__)


@dataclass
class EvaluationOutcome:
    adapter_id: int
    candidate: Evaluation
    champion: Evaluation | None
    champion_id: int | None
    baseline: Evaluation | None
    champion_note: str
    decision: GateDecision
    confusion_png: bytes
    report_uri: str
    side_by_side: dict | None = None
    """The candidate beside the champion with their cost (``domain.side_by_side``)."""
    cost: CostEvidence | None = None
    """Both models' inference cost, measured by the evaluation for ``gain_worth_cost``."""

    def to_dict(self) -> dict:
        return {
            "adapter_id": self.adapter_id,
            "candidate": self.candidate.to_dict(),
            "champion": self.champion.to_dict() if self.champion else None,
            "champion_id": self.champion_id,
            "champion_note": self.champion_note,
            "baseline": self.baseline.to_dict() if self.baseline else None,
            "decision": self.decision.to_dict(),
            "report_uri": self.report_uri,
            "side_by_side": self.side_by_side,
        }


@dataclass(frozen=True)
class _Scored:
    """The candidate on its test rows: its probabilities and scoring latency (from the
    training step when it stored them, ``modelops.lifecycle.candidate_scores``), the probe
    baseline, and the scores the training step stored (None: none, or of other rows)."""

    recipe: Recipe
    rows: TestRows
    probs: np.ndarray
    latency: float
    baseline: Evaluation
    baseline_rows: tuple | None
    stored: StoredScores | None


def evaluate_adapter(
    platform: Platform,
    adapter_id: int,
    emit: Emit = log.info,
    loaded: LoadedRecipe | None = None,
    meter: InferenceMeter | None = None,
) -> EvaluationOutcome:
    """Score the candidate and the champion on the candidate's test split; decide gates.

    The champion is the one of the candidate's taxonomy version. When that version has
    none yet, the serving champion of an earlier version is compared instead, its
    predictions mapped onto the new labels through the taxonomy mapping (``loaded``
    gives the taxonomy files); predictions the mapping cannot carry over (splits no rule
    decides, retired labels) count as errors.

    Scores the training step stored with the adapter are read instead of loading the
    models again (``modelops.lifecycle.candidate_scores``). With the recipe's
    ``gates.weigh_cost`` and a champion compared, both are loaded and their inference cost
    measured here by ``meter`` (default ``inference_cost.measure_inference``).
    """
    version = platform.registry.get(adapter_id)
    scored = _score_candidate(platform, version)
    y, labels = scored.rows.y, scored.rows.labels
    candidate = evaluate(y, scored.probs, labels)
    emit(
        f"adapter {adapter_id}: accuracy {candidate.accuracy:.4f}, "
        f"macro-F1 {candidate.macro_f1:.4f}"
    )
    comparison = compare_champion(platform, version, scored.rows, loaded, emit, scored.stored)
    cost, unmeasured = _weigh_cost(platform, version, scored, comparison, meter, emit)
    decision = _decide(scored, candidate, comparison, cost, unmeasured)
    outcome = EvaluationOutcome(
        adapter_id=adapter_id,
        candidate=candidate,
        champion=comparison.evaluation,
        champion_id=comparison.champion_id,
        baseline=scored.baseline,
        champion_note=comparison.note,
        decision=decision,
        confusion_png=confusion_matrix_png(
            candidate, title=f"{version.recipe} adapter {adapter_id}"
        ),
        report_uri="",
        cost=cost,
    )
    outcome.side_by_side = base_side_by_side(
        platform, version, outcome, len(y), scored.latency, comparison
    )
    add_teacher(outcome.side_by_side, platform, version, scored.rows, meter, emit)
    _record(platform, version, outcome, scored.latency, emit)
    return outcome


def _decide(
    scored: _Scored,
    candidate: Evaluation,
    comparison: ChampionComparison,
    cost: CostEvidence | None,
    unmeasured: str | None,
) -> GateDecision:
    """The recipe's gates on the candidate, the champion comparison and the cost."""
    y, labels, mask = scored.rows.y, scored.rows.labels, comparison.rows
    return apply_gates(
        candidate,
        settings=scored.recipe.gates,
        champion=comparison.evaluation,
        baseline=scored.baseline,
        compared=None if mask is None else evaluate(y[mask], scored.probs[mask], labels),
        champion_skipped=None if comparison.unavailable else comparison.note,
        champion_unavailable=comparison.note if comparison.unavailable else None,
        baseline_rows=scored.baseline_rows,
        cost=cost,
        cost_unmeasured=unmeasured,
    )


def _weigh_cost(
    platform: Platform,
    version,
    scored: _Scored,
    comparison: ChampionComparison,
    meter: InferenceMeter | None,
    emit: Emit,
) -> tuple[CostEvidence | None, str | None]:
    """Both models' inference cost and their predictions on the compared rows, for
    ``gain_worth_cost``; ``(None, why)`` when it could not be measured, ``(None, None)``
    when there is nothing to weigh (the check off, no champion compared)."""
    if not scored.recipe.gates.weigh_cost or comparison.evaluation is None:
        return None, None
    if comparison.predictions is None:  # pragma: no cover - every comparison records them
        return None, f"champion {comparison.champion_id}'s predictions were not kept"
    test, mask = scored.rows, comparison.rows
    keep = np.ones(len(test.y), dtype=bool) if mask is None else mask
    rows = ComparedRows(
        y=test.y[keep],
        candidate_pred=scored.probs.argmax(1)[keep],
        champion_pred=comparison.predictions[keep],
        n_labels=len(test.labels),
    )
    champion = platform.registry.get(comparison.champion_id)
    try:
        cost = _stored_cost(scored.stored, champion, rows) or measure_pair(
            platform, version, champion, test.texts, test.max_length, rows, meter=meter
        )
    except Exception as exc:  # any failure to load or time them: the gate must say so
        what = f"{type(exc).__name__}: {exc}"
        note = f"could not measure adapters {version.id} and {champion.id}: {what}"
        emit(note)
        return None, note
    emit(
        f"inference seconds per 32 texts: candidate {cost.candidate.seconds:.4g}, "
        f"champion {champion.id} {cost.champion.seconds:.4g} ({cost.how})"
    )
    return cost, None


def _stored_cost(stored: StoredScores | None, champion, rows: ComparedRows) -> CostEvidence | None:
    """The cost the training step measured, the champion beside the candidate on the base
    in memory, when it is of this very champion."""
    held = stored.champion if stored is not None else None
    if held is None or held.costs is None or not held.are_of(champion):
        return None
    rounds = len(held.costs["candidate"].seconds_per_32)
    how = (
        f"timed by the training step, both adapters on the one base in memory, in {rounds} "
        "interleaved rounds on the same batches of test texts"
    )
    return CostEvidence(
        held.costs["candidate"],
        held.costs["champion"],
        rows.y,
        rows.candidate_pred,
        rows.champion_pred,
        rows.n_labels,
        how,
    )


def _score_candidate(platform: Platform, version) -> _Scored:
    """The candidate's scores of its test split (stored by the training step, else scored
    now on its base) and the probe baseline it recorded."""
    with FetchedAdapter(platform, version) as fetched:
        manifest = fetched.manifest
        recipe = Recipe.model_validate(manifest["recipe_snapshot"]["recipe"])
        dataset = load_dataset(platform, manifest["dataset"])
        test = dataset.split("test")
        texts = test["text"].tolist()
        y = encode_labels(test, dataset.labels)
        max_length = recipe.training.max_length
        stored = read_scores(fetched.path, texts, max_length)
        if stored is not None:
            own = stored.candidate
            probs, labels, latency = own.probs, own.labels, own.latency
        else:
            probs, labels, latency = timed_predict(platform, fetched, texts, max_length)
        baseline_doc = json.loads((fetched.path / BASELINE_FILE).read_text(encoding="utf-8"))
    return _Scored(
        recipe=recipe,
        rows=TestRows(texts, y, labels, max_length),
        probs=probs,
        latency=latency,
        baseline=Evaluation.from_dict(baseline_doc["test"]),
        baseline_rows=_paired_rows(probs, baseline_doc["test"].get("predictions"), y),
        stored=stored,
    )


def _record(
    platform: Platform, version, outcome: EvaluationOutcome, latency: float, emit: Emit
) -> None:
    """The report and confusion matrix stored, the evaluation recorded in the registry."""
    candidate, champion = outcome.candidate, outcome.champion
    prefix = f"evaluations/{version.recipe}/adapter-{version.id}/{candidate_digest(outcome)}"
    platform.store.put_bytes(f"{prefix}/confusion_matrix.png", outcome.confusion_png)
    outcome.report_uri = platform.store.put_bytes(
        f"{prefix}/evaluation.json", json.dumps(outcome.to_dict(), indent=2).encode()
    ).uri
    metrics = {
        "test_accuracy": candidate.accuracy,
        "test_macro_f1": candidate.macro_f1,
        "test_ece": candidate.ece,
        "champion_test_macro_f1": champion.macro_f1 if champion else None,
        "evaluation_uri": outcome.report_uri,
        "latency_seconds_per_32": latency,
        "side_by_side": outcome.side_by_side,
    }
    platform.registry.record_evaluation(
        version.id, metrics=metrics, gate=outcome.decision.to_dict(), who=platform.settings.user
    )
    for check in outcome.decision.checks:
        state = {"passed": "pass", "failed": "FAIL", "skipped": "SKIPPED"}[check.state]
        emit(f"gate {check.name}: {state}: {check.description}")


def _paired_rows(probs: np.ndarray, baseline_predictions, y: np.ndarray):
    """Per test row: is the candidate right, is the probe right (None when the probe's
    predictions were not recorded or do not cover these rows)."""
    if baseline_predictions is None or len(baseline_predictions) != len(y):
        return None
    return probs.argmax(1) == y, np.asarray(baseline_predictions) == y


def candidate_digest(outcome: EvaluationOutcome) -> str:
    # the side by side and the cost gate's numbers hold timings, which differ run to run:
    # not part of the digest (the cost gate's verdict is)
    body = {k: v for k, v in outcome.to_dict().items() if k not in ("report_uri", "side_by_side")}
    body["decision"]["checks"] = [
        {"name": c["name"], "passed": c["passed"], "skipped": c["skipped"]}
        if c["name"] == COST_GATE
        else c
        for c in body["decision"]["checks"]
    ]
    return sha256_json(body)[:16]
