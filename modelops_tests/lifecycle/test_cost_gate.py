"""The ``gain_worth_cost`` gate with tiny models: a candidate on a costlier base (tiny@w:
hidden 40, 3 layers, against tiny@a's 32 and 2) with no real gain is refused and the
serving alias stays; with a large gain it is promoted; a cheaper candidate is judged by
the other gates alone. The cost comes from the loaded models (``parameter_meter``), and the
real meter's output is checked for its shape, never for a timing."""

from __future__ import annotations

import math

import pytest

from modelops.config.errors import ModelopsError
from modelops.config.recipe import load_recipe
from modelops.lifecycle.dataset import build_dataset
from modelops.lifecycle.evaluate import evaluate_adapter
from modelops.lifecycle.fetch import FetchedAdapter, load_adapter
from modelops.lifecycle.inference_cost import TIMING_ROUNDS, measure_inference, model_bytes
from modelops.lifecycle.platform import Platform
from modelops.lifecycle.promote import promote_if_passed
from modelops.lifecycle.train import train_adapter
from modelops_tests.fixtures.cost_meters import parameter_meter, parameters
from modelops_tests.fixtures.tiny_bases import write_bases_catalog, write_tiny_bases
from modelops_tests.fixtures.workspace import make_workspace, write_recipe

QUIET = lambda _m: None  # noqa: E731
# Every other gate lenient: only the cost gate decides.
LENIENT = {
    "min_macro_f1": 0.0,
    "max_macro_f1_drop": 1.0,
    "max_label_f1_drop": 1.0,
    "min_label_support": 1,
    "beat_baseline": False,
}
# A head that starts random and barely trains: clearly worse than a probe-started one.
WORSE = {"head": {"init": "random"}, "training": {"learning_rate": 1e-6, "select_best": False}}


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    return write_tiny_bases(tmp_path_factory.mktemp("bases"), keys=["bert_a", "bert_w"])


@pytest.fixture
def platform(bases, tmp_path):
    catalog = write_bases_catalog(tmp_path / "catalog.yaml", bases, {"tiny@stable": "bert_a"})
    settings = make_workspace(tmp_path, catalog, rows=360)
    platform = Platform.from_settings(settings)
    yield platform
    platform.registry.close()


def train(platform, base: str, overrides: dict, seed: int):
    """Train the recipe (``overrides`` on top, every other gate lenient) on ``base``."""
    gates = {**LENIENT, **overrides.get("gates", {})}
    training = {"epochs": 1, "seed": seed, **overrides.get("training", {})}
    write_recipe(
        platform.settings.recipes_dir.parent, {**overrides, "gates": gates, "training": training}
    )
    loaded = load_recipe(platform.settings.recipes_dir / "demo.yaml")
    dataset = build_dataset(platform, loaded, emit=QUIET)
    return train_adapter(platform, loaded, dataset, emit=QUIET, base_ref=base), loaded


def serving(platform, base: str, overrides: dict, seed: int = 1):
    """A champion on ``base``, evaluated (no champion before it) and promoted."""
    champion, loaded = train(platform, base, overrides, seed)
    assert evaluate_adapter(platform, champion.id, emit=QUIET, loaded=loaded).decision.passed
    promote_if_passed(platform, champion.id, who="tester", why="first")
    return champion


def cost_check(outcome):
    (check,) = [c for c in outcome.decision.checks if c.name == "gain_worth_cost"]
    return check


def loaded_parameters(platform, version) -> int:
    with FetchedAdapter(platform, version) as fetched:
        return parameters(load_adapter(platform, fetched))


def test_a_costlier_base_without_a_real_gain_is_refused(platform):
    champion = serving(platform, "tiny@a", {})
    candidate, loaded = train(platform, "tiny@w", WORSE, seed=2)
    outcome = evaluate_adapter(
        platform, candidate.id, emit=QUIET, loaded=loaded, meter=parameter_meter
    )
    check, meta = cost_check(outcome), cost_check(outcome).metadata
    # the facts it judged, measured: tiny@w costs more, the candidate gains nothing
    ratio = loaded_parameters(platform, candidate) / loaded_parameters(platform, champion)
    assert ratio > 1.1
    assert meta["cost_ratio"] == pytest.approx(ratio) == meta["cost_ratio_lower_bound"]
    assert meta["costlier"] is True
    gain = outcome.candidate.macro_f1 - outcome.champion.macro_f1
    assert meta["gain"] == pytest.approx(gain) and meta["gain_lower_bound"] <= 0
    assert meta["required_gain"] == pytest.approx(0.005 * math.log2(ratio))
    assert [c.name for c in outcome.decision.failed()] == ["gain_worth_cost"]
    assert "inside the noise" in check.description
    assert f"inference cost {ratio:.2f}x the champion's" in check.description
    # the verdict says it, the side by side shows both costs
    doc = platform.registry.get(candidate.id).metrics["side_by_side"]
    assert doc["verdict"].startswith(
        f"adapter {candidate.id} on tiny@w failed gate(s) gain_worth_cost; champion "
        f"{champion.id} on tiny@a keeps serving. Cost: inference cost {ratio:.2f}x"
    )
    assert f"gain {gain:+.4f}" in doc["verdict"]
    assert doc["cost_ratio"]["seconds"] == pytest.approx(ratio)
    for side in (doc["candidate"], doc["champion"]):
        assert side["cost"]["inference_seconds_per_32"] > 0
        assert side["cost"]["inference_memory_bytes"] > 0
    assert doc["cost_ratio"]["memory"] == pytest.approx(
        doc["candidate"]["cost"]["inference_memory_bytes"]
        / doc["champion"]["cost"]["inference_memory_bytes"]
    )
    # nothing moves
    assert platform.registry.get(candidate.id).status == "rejected"
    with pytest.raises(ModelopsError, match="did not pass its gates"):
        promote_if_passed(platform, candidate.id, who="tester", why="try")
    assert platform.registry.alias("demo", "champion").id == champion.id


@pytest.mark.parametrize("per_doubling", [0.005, 1.0])
def test_a_costlier_base_with_a_large_gain_is_promoted_when_the_policy_allows(
    platform, per_doubling
):
    champion = serving(platform, "tiny@a", WORSE)
    policy = {"gates": {"cost": {"min_gain_per_cost_doubling": per_doubling}}}
    candidate, loaded = train(platform, "tiny@w", policy, seed=3)
    outcome = evaluate_adapter(
        platform, candidate.id, emit=QUIET, loaded=loaded, meter=parameter_meter
    )
    check, meta = cost_check(outcome), cost_check(outcome).metadata
    assert meta["costlier"] is True and meta["gain_lower_bound"] > 0  # above the noise
    assert meta["required_gain"] == pytest.approx(per_doubling * meta["cost_doublings"])
    if per_doubling < 0.1:  # the default's worth: a large gain pays for it
        assert meta["gain"] >= meta["required_gain"] and "worth it" in check.description
        assert outcome.decision.passed
        promote_if_passed(platform, candidate.id, who="tester", why="worth its cost")
        assert platform.registry.alias("demo", "champion").id == candidate.id
    else:  # a point of quality per doubling: more than a tiny model gains
        assert meta["gain"] < meta["required_gain"]
        assert f"below the {meta['required_gain']:.4f} the cost asks" in check.description
        assert [c.name for c in outcome.decision.failed()] == ["gain_worth_cost"]
        assert platform.registry.alias("demo", "champion").id == champion.id


def test_a_cheaper_candidate_is_judged_by_the_other_gates(platform):
    champion = serving(platform, "tiny@w", {})
    candidate, loaded = train(platform, "tiny@a", WORSE, seed=4)
    outcome = evaluate_adapter(
        platform, candidate.id, emit=QUIET, loaded=loaded, meter=parameter_meter
    )
    check = cost_check(outcome)
    assert outcome.champion_id == champion.id
    assert check.passed and check.metadata["costlier"] is False
    assert check.metadata["cost_ratio"] < 1
    assert "not costlier than the champion" in check.description
    assert "gain" not in check.metadata  # nothing to justify
    assert outcome.decision.passed  # every other gate is lenient


def test_the_real_meter_times_both_models_in_interleaved_rounds(platform, bases):
    first = serving(platform, "tiny@a", {})
    second, _ = train(platform, "tiny@w", {}, seed=5)
    texts = [f"my card number {i} was declined" for i in range(40)]
    with FetchedAdapter(platform, first) as a, FetchedAdapter(platform, second) as w:
        models = {"a": load_adapter(platform, a), "w": load_adapter(platform, w)}
        measured = measure_inference(models, texts, 32)
        assert set(measured) == {"a", "w"}
        for name, cost in measured.items():
            assert len(cost.seconds_per_32) == TIMING_ROUNDS
            assert all(s > 0 for s in cost.seconds_per_32)
            assert cost.memory_bytes == model_bytes(models[name])
        assert measured["w"].memory_bytes > measured["a"].memory_bytes
