"""Each gate active on its own, with tiny models, actually blocks a worse candidate; a
champion that exists but cannot be compared fails the regression gates, naming why."""

from __future__ import annotations

import shutil

import pytest

from modelops.config.errors import ModelopsError
from modelops.config.recipe import load_recipe
from modelops.lifecycle.dataset import build_dataset
from modelops.lifecycle.evaluate import evaluate_adapter
from modelops.lifecycle.platform import Platform
from modelops.lifecycle.promote import promote_if_passed
from modelops.lifecycle.train import train_adapter
from modelops_tests.fixtures.workspace import make_workspace, write_recipe

QUIET = lambda _m: None  # noqa: E731
# Every gate lenient: a test turns exactly one strict.
LENIENT = {
    "min_macro_f1": 0.0,
    "max_macro_f1_drop": 1.0,
    "max_label_f1_drop": 1.0,
    "min_label_support": 1,
    "beat_baseline": False,
    "weigh_cost": False,
}
# A head that starts random and barely trains: clearly worse than the probe-started one.
WORSE = {
    "head": {"init": "random"},
    "training": {"epochs": 1, "learning_rate": 1e-6, "select_best": False},
}


def train_and_evaluate(root, platform, settings, overrides):
    write_recipe(root, overrides)
    loaded = load_recipe(settings.recipes_dir / "demo.yaml")
    dataset = build_dataset(platform, loaded, emit=QUIET)
    adapter = train_adapter(platform, loaded, dataset, emit=QUIET)
    return adapter, evaluate_adapter(platform, adapter.id, emit=QUIET, loaded=loaded)


@pytest.fixture(scope="module")
def workspace(tiny_catalog, tmp_path_factory):
    """A champion trained the normal way (probe-started head), promoted."""
    root = tmp_path_factory.mktemp("gates")
    settings = make_workspace(root, tiny_catalog, rows=360)
    platform = Platform.from_settings(settings)
    champion, outcome = train_and_evaluate(root, platform, settings, {"gates": LENIENT})
    assert outcome.decision.passed
    promote_if_passed(platform, champion.id, who="tester", why="first")
    yield root, settings, platform, champion
    platform.registry.close()


@pytest.mark.parametrize(
    ("gate", "strict", "seed"),
    [
        ("min_macro_f1", {"min_macro_f1": 0.99}, 11),
        ("no_regression", {"max_macro_f1_drop": 0.0}, 12),
        ("no_label_regression", {"max_label_f1_drop": 0.0}, 13),
        ("beats_baseline", {"beat_baseline": True}, 14),
    ],
)
def test_each_gate_alone_blocks_a_worse_candidate(workspace, gate, strict, seed):
    root, settings, platform, champion = workspace
    overrides = {
        **WORSE,
        "training": {**WORSE["training"], "seed": seed},
        "gates": {**LENIENT, **strict},
    }
    candidate, outcome = train_and_evaluate(root, platform, settings, overrides)
    cand, champ = outcome.candidate, outcome.champion
    # the facts each gate judges, measured, not assumed
    assert outcome.champion_id == champion.id and champ is not None
    if gate == "min_macro_f1":
        assert cand.macro_f1 < 0.99
    elif gate == "no_regression":
        assert champ.macro_f1 > cand.macro_f1
    elif gate == "no_label_regression":
        assert any(champ.per_label[k]["f1"] > cand.per_label[k]["f1"] for k in cand.labels)
    else:
        assert outcome.baseline.macro_f1 > cand.macro_f1

    assert [c.name for c in outcome.decision.failed()] == [gate]
    assert not outcome.decision.passed
    stored = platform.registry.get(candidate.id)
    assert stored.status == "rejected" and stored.gate["passed"] is False
    with pytest.raises(ModelopsError, match="did not pass its gates"):
        promote_if_passed(platform, candidate.id, who="tester", why="try")
    assert platform.registry.alias("demo", "champion").id == champion.id


def test_a_champion_that_cannot_be_loaded_fails_the_regression_gates(workspace):
    root, settings, platform, champion = workspace
    stored = platform.store.uri_for(platform.store.key_for(champion.artifact_uri))
    hidden = root / "hidden-champion"
    shutil.move(stored, hidden)  # the champion's adapter vanished from the store
    try:
        overrides = {"training": {"seed": 21, "epochs": 1}, "gates": LENIENT}
        candidate, outcome = train_and_evaluate(root, platform, settings, overrides)
    finally:
        shutil.move(hidden, stored)
    assert outcome.champion is None and outcome.champion_id == champion.id
    failed = {c.name: c for c in outcome.decision.failed()}
    assert set(failed) == {"no_regression", "no_label_regression"}
    for check in failed.values():
        assert check.description.startswith(
            f"champion not compared: champion {champion.id} could not be scored"
        )
        assert "no champion" not in check.description
    assert platform.registry.get(candidate.id).status == "rejected"
    assert platform.registry.alias("demo", "champion").id == champion.id
