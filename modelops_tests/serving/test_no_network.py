"""No network at run time: train, evaluate, promote and predict with every connection off
the machine refused, and nothing tries to reach a model hub."""

from __future__ import annotations

import urllib.request

import pytest

from modelops.config.recipe import load_recipe
from modelops.lifecycle.dataset import build_dataset
from modelops.lifecycle.evaluate import evaluate_adapter
from modelops.lifecycle.platform import Platform
from modelops.lifecycle.promote import promote_if_passed
from modelops.lifecycle.train import train_adapter
from modelops.serving.predictor import Predictor
from modelops_tests.fixtures.network import guard_network
from modelops_tests.fixtures.workspace import LENIENT, make_workspace, merge


def test_the_guard_catches_a_hub_request(monkeypatch):
    attempts = guard_network(monkeypatch)
    with pytest.raises(OSError):
        urllib.request.urlopen("https://huggingface.co/api/models", timeout=5)
    assert attempts == ["lookup huggingface.co"]


def test_train_evaluate_promote_predict_never_leave_the_machine(
    tiny_catalog, tmp_path, monkeypatch
):
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):  # no offline switch to hide behind
        monkeypatch.delenv(name, raising=False)
    attempts = guard_network(monkeypatch)
    settings = make_workspace(
        tmp_path, tiny_catalog, rows=240, recipe=merge(LENIENT, {"training": {"epochs": 1}})
    )
    platform = Platform.from_settings(settings)
    quiet = lambda _m: None  # noqa: E731
    loaded = load_recipe(settings.recipes_dir / "demo.yaml")
    adapter = train_adapter(
        platform, loaded, build_dataset(platform, loaded, emit=quiet), emit=quiet
    )
    assert evaluate_adapter(platform, adapter.id, emit=quiet, loaded=loaded).decision.passed
    promote_if_passed(platform, adapter.id, who="tester", why="test")
    predictor = Predictor(platform, "demo", log=platform.production_log)
    predictions = predictor.predict(["where is my card", "refund please"])
    assert len(predictions) == 2
    platform.registry.close()
    assert attempts == []
