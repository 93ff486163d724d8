"""A new taxonomy version under the recipe's ``taxonomy_changes.policy``.

:func:`offer_mapped_candidate` runs first (the ``mapped_candidate`` asset): it builds the
mapped candidate (``modelops.lifecycle.mapped``), evaluates it with the recipe's gates on
the new version's test rows and, under ``mapped_first`` and ``mapped_only``, makes it the
version's champion at once when it passes and the version has none yet.
:func:`should_train` tells the adapter asset whether to train (not under ``mapped_only``
when a mapped candidate exists). :func:`compare_candidates` then puts the trained adapter
beside the mapped one on the same test rows: the better on ``taxonomy_changes.metric``
wins, a tie goes to the cheaper; the comparison (winner, margin, seconds each cost) is
stored with both adapters in the registry and in the promotion's audit evidence.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from modelops.config.progress import Emit
from modelops.config.recipe import LoadedRecipe
from modelops.domain.dataset import encode_labels
from modelops.domain.evaluation import evaluate
from modelops.lifecycle.dataset import DatasetRecord, load_dataset
from modelops.lifecycle.evaluate import EvaluationOutcome, evaluate_adapter
from modelops.lifecycle.fetch import FetchedAdapter, predict_with
from modelops.lifecycle.mapped import build_mapped_candidate, is_mapped
from modelops.lifecycle.platform import Platform
from modelops.lifecycle.promote import promote_if_passed
from modelops.stores.registry_records import CHAMPION, AdapterVersion

log = logging.getLogger(__name__)
_EPS = 1e-9


@dataclass(frozen=True)
class MappedOffer:
    """What the mapped-candidate step did for one taxonomy version."""

    policy: str
    adapter_id: int | None
    """The mapped candidate, or None (see ``reason``)."""
    reason: str
    source_id: int | None = None
    passed: bool | None = None
    promoted: bool = False
    metric: float | None = None
    build_seconds: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def offer_mapped_candidate(
    platform: Platform,
    loaded: LoadedRecipe,
    dataset: DatasetRecord,
    *,
    who: str,
    emit: Emit = log.info,
) -> MappedOffer:
    """Build, evaluate and (policy permitting) promote the mapped candidate of the
    dataset's taxonomy version."""
    settings = loaded.recipe.taxonomy_changes
    policy = settings.policy
    if policy == "train":
        return MappedOffer(policy, None, "taxonomy_changes.policy is train: no mapped candidate")
    version = dataset.taxonomy_version or loaded.data_version
    current = platform.registry.alias(loaded.name, CHAMPION, taxonomy_version=version)
    if current is not None and not is_mapped(current):
        reason = f"{version} already has a trained champion ({current.id}): nothing to map"
        return MappedOffer(policy, None, reason)
    built = build_mapped_candidate(platform, loaded, dataset, emit)
    source_id = built.source.id if built.source else None
    if built.version is None:
        return MappedOffer(policy, None, built.reason, source_id)
    mapped = built.version
    if mapped.gate is None:
        evaluate_adapter(platform, mapped.id, emit=emit, loaded=loaded)
        mapped = platform.registry.get(mapped.id)
    passed = bool((mapped.gate or {}).get("passed"))
    promoted = False
    if passed and platform.registry.alias(loaded.name, CHAMPION, taxonomy_version=version) is None:
        promote_if_passed(
            platform,
            mapped.id,
            who=who,
            why=f"mapped candidate passed every gate (taxonomy_changes.policy {policy})",
        )
        promoted = True
    current = platform.registry.alias(loaded.name, CHAMPION, taxonomy_version=version)
    reason = (
        "promoted: serving at once"
        if promoted
        else "champion already"
        if current is not None and current.id == mapped.id
        else "passed its gates"
        if passed
        else "failed its gates"
    )
    emit(f"mapped candidate {mapped.id}: {reason}")
    return MappedOffer(
        policy,
        mapped.id,
        reason,
        source_id,
        passed,
        promoted,
        _metric(mapped, settings.metric),
        mapped.metrics.get("build_seconds"),
    )


def should_train(loaded: LoadedRecipe, offer: dict | None) -> tuple[bool, str]:
    """Whether the adapter asset trains, and why (``offer``: a ``MappedOffer`` dict)."""
    policy = loaded.recipe.taxonomy_changes.policy
    if policy == "mapped_only" and offer and offer.get("adapter_id") is not None:
        return False, (
            f"taxonomy_changes.policy mapped_only: mapped candidate {offer['adapter_id']} "
            "covers this version, no training"
        )
    return True, ""


def _metric(version: AdapterVersion, metric: str) -> float | None:
    value = version.metrics.get(f"test_{metric}")
    return float(value) if value is not None else None


def compare_candidates(
    platform: Platform,
    loaded: LoadedRecipe,
    outcome: EvaluationOutcome,
    mapped_id: int,
    *,
    emit: Emit = log.info,
) -> dict:
    """The trained adapter of ``outcome`` against the mapped candidate on the same test
    rows; returns the comparison and records it with both adapters."""
    metric = loaded.recipe.taxonomy_changes.metric
    trained = platform.registry.get(outcome.adapter_id)
    mapped = platform.registry.get(mapped_id)
    trained_value = float(getattr(outcome.candidate, metric))
    recorded = _metric(mapped, metric)
    if mapped.dataset_fingerprint == trained.dataset_fingerprint and recorded is not None:
        mapped_value = recorded
    else:  # other rows (a retraining with new feedback): score it on the trained ones
        mapped_value = float(getattr(_score_on(platform, mapped, trained), metric))
    mapped_ok = bool((mapped.gate or {}).get("passed"))
    trained_ok = outcome.decision.passed
    costs = {
        "mapped": float(mapped.metrics.get("build_seconds") or 0.0),
        "trained": float(trained.metrics.get("train_seconds") or 0.0),
    }
    margin = trained_value - mapped_value
    winner, why = choose_winner(
        {"trained": trained_value, "mapped": mapped_value},
        {"trained": trained_ok, "mapped": mapped_ok},
        costs,
        metric,
    )
    ids = {"mapped": mapped.id, "trained": trained.id}
    comparison = {
        "metric": metric,
        "winner": winner,
        "winner_id": ids.get(winner),
        "why": why,
        "margin": abs(margin),
        "trained_id": trained.id,
        "mapped_id": mapped.id,
        f"trained_{metric}": trained_value,
        f"mapped_{metric}": mapped_value,
        "trained_seconds": costs["trained"],
        "mapped_seconds": costs["mapped"],
        "trained_passed": trained_ok,
        "mapped_passed": mapped_ok,
        "test_rows": outcome.candidate.n,
    }
    emit(
        f"trained {trained.id} {metric} {trained_value:.4f} ({costs['trained']:.1f} s) vs "
        f"mapped {mapped.id} {mapped_value:.4f} ({costs['mapped']:.1f} s): {winner} wins ({why})"
    )
    _record_comparison(platform, (trained, mapped), comparison)
    return comparison


def _record_comparison(platform: Platform, versions, comparison: dict) -> None:
    """The comparison recorded with each evaluated adapter (its gate kept as it is)."""
    for version in versions:
        if version.gate is not None:
            platform.registry.record_evaluation(
                version.id,
                metrics={"taxonomy_change": comparison},
                gate=version.gate,
                who=platform.settings.user,
            )


def choose_winner(
    values: dict[str, float], passed: dict[str, bool], costs: dict[str, float], metric: str
) -> tuple[str, str]:
    """``(winner, why)`` among candidates keyed by kind: only those that passed their
    gates compete; the best ``values`` wins, a tie goes to the lowest cost; ``"none"``
    when none passed."""
    eligible = [kind for kind in values if passed[kind]]
    if not eligible:
        return "none", "none passed its gates"
    best = max(values[kind] for kind in eligible)
    tied = [kind for kind in eligible if values[kind] >= best - _EPS]
    winner = min(tied, key=lambda kind: costs[kind])
    if len(eligible) < len(values):
        return winner, "the other failed its gates"
    if len(tied) > 1:
        return winner, f"tie on {metric}: the cheaper wins"
    return winner, f"better {metric}"


def _score_on(platform: Platform, mapped: AdapterVersion, trained: AdapterVersion):
    """The mapped candidate on the trained adapter's test rows."""
    dataset = load_dataset(platform, trained.lineage["dataset"])
    test = dataset.split("test")
    max_length = int(mapped.lineage["recipe_snapshot"]["recipe"]["training"]["max_length"])
    with FetchedAdapter(platform, mapped) as fetched:
        probs, labels = predict_with(platform, fetched, test["text"].tolist(), max_length)
    if labels != dataset.labels:
        index = {name: i for i, name in enumerate(labels)}
        probs = probs[:, [index[name] for name in dataset.labels]]
    return evaluate(encode_labels(test, dataset.labels), probs, dataset.labels)
