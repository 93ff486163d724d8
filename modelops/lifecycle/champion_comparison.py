"""The champion a candidate is compared with, scored on the candidate's test rows
(``compare_champion``): the champion of the candidate's taxonomy version, else the serving
one of an earlier version with its predictions mapped onto the candidate's labels; or why
it was not compared. Used by the evaluation step (``modelops.lifecycle.evaluate``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from modelops.config.progress import Emit
from modelops.config.recipe import LoadedRecipe
from modelops.domain.evaluation import Evaluation, evaluate
from modelops.domain.taxonomy_mapping import load_chain
from modelops.lifecycle.candidate_scores import StoredScores, find_champion
from modelops.lifecycle.cost import timed_predict
from modelops.lifecycle.fetch import FetchedAdapter
from modelops.lifecycle.platform import Platform


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
    predictions: np.ndarray | None = None
    """Its predicted label index per test row, in the candidate's labels (mapped ones for
    a champion of another taxonomy version)."""


def _not_compared(note: str, champion_id: int | None = None) -> ChampionComparison:
    """Nothing to compare by design (no champion, or a mapping that rules it out)."""
    return ChampionComparison(None, champion_id, note)


def _unavailable(note: str, champion_id: int) -> ChampionComparison:
    """A champion exists and should have been compared, but could not be."""
    return ChampionComparison(None, champion_id, note, unavailable=True)


def compare_champion(
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
        predictions=np.asarray(c_probs).argmax(1),
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
        result,
        champion.id,
        note,
        None if rows.all() else rows,
        latency=latency,
        predictions=mapped.argmax(1),
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
