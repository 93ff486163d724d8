"""The evaluation step: the candidate and the champion on the same test rows, and the gates."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import numpy as np

from modelops.config.fingerprint import sha256_json
from modelops.config.progress import Emit
from modelops.config.recipe import LoadedRecipe, Recipe
from modelops.domain.dataset import encode_labels
from modelops.domain.evaluation import Evaluation, confusion_matrix_png, evaluate
from modelops.domain.gates import GateDecision, apply_gates
from modelops.domain.taxonomy_mapping import load_chain
from modelops.lifecycle.candidate_scores import StoredScores, find_champion, read_scores
from modelops.lifecycle.cost import timed_predict
from modelops.lifecycle.dataset import load_dataset
from modelops.lifecycle.fetch import FetchedAdapter
from modelops.lifecycle.platform import Platform
from modelops.lifecycle.side_by_side import base_side_by_side
from modelops.ml.training import BASELINE_FILE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TestRows:
    """The candidate's test split as the evaluation scores it."""

    texts: list[str]
    y: np.ndarray
    """Label index per row, in ``labels``."""
    labels: list[str]
    max_length: int


@dataclass(frozen=True)
class ChampionComparison:
    """The champion on the candidate's test rows, or why it was not compared."""

    evaluation: Evaluation | None
    champion_id: int | None
    note: str
    rows: np.ndarray | None = None
    """The mask of the rows it was scored on; None: the whole split."""
    unavailable: bool = False
    """A champion exists but could not be compared: the regression gates fail."""
    latency: float | None = None
    """Its scoring seconds per 32 of the test rows (``modelops.lifecycle.cost``)."""


def _not_compared(note: str, champion_id: int | None = None) -> ChampionComparison:
    """Nothing to compare by design (no champion, or a mapping that rules it out)."""
    return ChampionComparison(None, champion_id, note)


def _unavailable(note: str, champion_id: int) -> ChampionComparison:
    """A champion exists and should have been compared, but could not be."""
    return ChampionComparison(None, champion_id, note, unavailable=True)


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
) -> EvaluationOutcome:
    """Score the candidate and the champion on the candidate's test split; decide gates.

    The champion is the one of the candidate's taxonomy version. When that version has
    none yet, the serving champion of an earlier version is compared instead, its
    predictions mapped onto the new labels through the taxonomy mapping (``loaded``
    gives the taxonomy files); predictions the mapping cannot carry over (splits no rule
    decides, retired labels) count as errors.

    Scores the training step stored with the adapter are read instead of loading the
    models again (``modelops.lifecycle.candidate_scores``).
    """
    version = platform.registry.get(adapter_id)
    scored = _score_candidate(platform, version)
    y, labels = scored.rows.y, scored.rows.labels
    candidate = evaluate(y, scored.probs, labels)
    emit(
        f"adapter {adapter_id}: accuracy {candidate.accuracy:.4f}, "
        f"macro-F1 {candidate.macro_f1:.4f}"
    )
    comparison = _champion_evaluation(platform, version, scored.rows, loaded, emit, scored.stored)
    mask = comparison.rows
    decision = apply_gates(
        candidate,
        settings=scored.recipe.gates,
        champion=comparison.evaluation,
        baseline=scored.baseline,
        compared=None if mask is None else evaluate(y[mask], scored.probs[mask], labels),
        champion_skipped=None if comparison.unavailable else comparison.note,
        champion_unavailable=comparison.note if comparison.unavailable else None,
        baseline_rows=scored.baseline_rows,
    )
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
    )
    outcome.side_by_side = base_side_by_side(
        platform, version, outcome, len(y), scored.latency, comparison
    )
    _record(platform, version, outcome, scored.latency, emit)
    return outcome


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


def _champion_evaluation(
    platform: Platform,
    version,
    test: TestRows,
    loaded: LoadedRecipe | None,
    emit: Emit,
    stored: StoredScores | None = None,
) -> ChampionComparison:
    """The champion of the candidate's version (else the serving one, mapped onto the
    candidate's labels) scored on the candidate's test rows."""
    champion, mapped = find_champion(platform.registry, version.recipe, version.taxonomy_version)
    if champion is None:
        return _not_compared("no champion yet")
    if champion.id == version.id:
        return _not_compared(f"adapter {version.id} is itself the champion", champion.id)
    if mapped and loaded is None:
        note = (
            f"champion {champion.id} is of {champion.taxonomy_version} and no taxonomy "
            f"mapping was given to carry its predictions onto {version.taxonomy_version}"
        )
        return _unavailable(note, champion.id)
    try:
        c_probs, c_labels, c_latency = _champion_scores(platform, champion, test, stored)
    except Exception as exc:  # any failure to load or score it: the gates must say so
        note = f"champion {champion.id} could not be scored: {type(exc).__name__}: {exc}"
        emit(note)
        return _unavailable(note, champion.id)
    if mapped:
        return _mapped_comparison(
            champion, version, test, loaded, (c_probs, c_labels), c_latency, emit
        )
    if c_labels != test.labels:
        note = (
            f"champion {champion.id} has another label set ({len(c_labels)} labels "
            f"against the candidate's {len(test.labels)})"
        )
        return _unavailable(note, champion.id)
    result = evaluate(test.y, c_probs, test.labels)
    emit(f"champion {champion.id} on the same test split: macro-F1 {result.macro_f1:.4f}")
    return ChampionComparison(
        result,
        champion.id,
        f"champion {champion.id} ({champion.taxonomy_version})",
        latency=c_latency,
    )


def _champion_scores(platform: Platform, champion, test: TestRows, stored: StoredScores | None):
    """``(probabilities, labels, latency)`` of the champion on the test rows: those the
    training step stored if they are of this very champion, else scored now."""
    if stored is not None and stored.champion is not None and stored.champion.are_of(champion):
        scored = stored.champion.scored
        return scored.probs, scored.labels, scored.latency
    with FetchedAdapter(platform, champion) as fetched:
        return timed_predict(platform, fetched, test.texts, test.max_length)


def _mapped_comparison(
    champion,
    version,
    test: TestRows,
    loaded: LoadedRecipe,
    champion_scores: tuple,
    latency: float,
    emit: Emit,
) -> ChampionComparison:
    """A champion of another taxonomy version: its predictions carried onto the
    candidate's labels through the taxonomy mapping."""
    c_probs, c_labels = champion_scores
    y, labels = test.y, test.labels
    mapping = load_chain(
        loaded.taxonomies_root,
        loaded.taxonomy.name,
        champion.taxonomy_version,
        version.taxonomy_version,
    )
    # Rows of labels a split rule derives are left out: their labels may come from the
    # same rules the champion's predictions are carried through (docs/taxonomies.md).
    derived = mapping.rule_derived_labels()
    rows = np.array([labels[i] not in derived for i in y], dtype=bool)
    head = f"champion {champion.id} of {champion.taxonomy_version}"
    if not rows.any():
        note = (
            f"{head} not compared: every test label of {version.taxonomy_version} comes from "
            "a split rule, which would also decide the mapped champion's predictions"
        )
        emit(note)
        return _not_compared(note, champion.id)
    mapped = _mapped_probs(mapping, c_probs, c_labels, test)
    result = evaluate(y[rows], mapped[rows], labels)
    note = f"{head}, predictions mapped onto {version.taxonomy_version} labels"
    if not rows.all():
        note += (
            f", on the {int(rows.sum())} of {len(rows)} test rows whose labels no split rule "
            f"derives ({len(derived)} labels left out)"
        )
    emit(f"{note}: macro-F1 {result.macro_f1:.4f}")
    return ChampionComparison(
        result, champion.id, note, None if rows.all() else rows, latency=latency
    )


def _mapped_probs(mapping, probs, old_labels, test: TestRows):
    """One-hot probabilities of the old model's predictions carried through ``mapping``;
    a prediction with no single new label becomes a (deliberately) wrong one."""
    labels = test.labels
    index = {name: i for i, name in enumerate(labels)}
    out = np.zeros((len(test.texts), len(labels)))
    rows = zip(probs.argmax(1), test.texts, test.y, strict=True)
    for row, (pred, text, truth) in enumerate(rows):
        new = mapping.map_label(old_labels[pred], text)
        out[row, index[new] if new in index else (truth + 1) % len(labels)] = 1.0
    return out


def _paired_rows(probs: np.ndarray, baseline_predictions, y: np.ndarray):
    """Per test row: is the candidate right, is the probe right (None when the probe's
    predictions were not recorded or do not cover these rows)."""
    if baseline_predictions is None or len(baseline_predictions) != len(y):
        return None
    return probs.argmax(1) == y, np.asarray(baseline_predictions) == y


def candidate_digest(outcome: EvaluationOutcome) -> str:
    # the side by side holds timings, which differ run to run: not part of the digest
    body = {k: v for k, v in outcome.to_dict().items() if k not in ("report_uri", "side_by_side")}
    return sha256_json(body)[:16]
