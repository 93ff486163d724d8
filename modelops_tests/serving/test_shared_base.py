"""Several recipes and a shadow candidate on one base: one copy of the base's weights
in memory, each recipe answered by its own adapter, and the candidate's shadow scores
logged apart from the production log the drift loop reads."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

from modelops.cli import main
from modelops.defs.metadata import shadow_metadata
from modelops.domain.text import clean_text
from modelops.lifecycle.platform import Platform
from modelops.lifecycle.shadow import shadow_evidence
from modelops.ml.model import load_base
from modelops.stores.serving_log import ServingLog
from modelops_tests.fixtures.http_server import reference_probabilities, serving
from modelops_tests.fixtures.processes import workspace_env

TEXTS = ["I lost my card yesterday", "please refund my order", "where is my parcel",
         "change my address please", "I was charged twice"]  # fmt: skip


@pytest.fixture
def workspace(shared_workspace):
    """Recipe ``demo`` (shadow on): champion and candidate; recipe ``other``: its own
    champion. All three adapters on the tiny base (``conftest.py``)."""
    return shared_workspace


def test_recipes_share_one_base_and_shadow_is_logged_apart(workspace, tiny_base_dir, monkeypatch):
    settings, champion, candidate, other = workspace
    with serving(settings) as (service, url):
        for _ in range(100):  # the watcher loads the shadow candidate after the routes
            if service.batcher.shadows.get("demo") == candidate:
                break
            service.sync()
        demo = httpx.post(f"{url}/v1/recipes/demo/predict", json={"texts": TEXTS}).json()
        mine = httpx.post(f"{url}/v1/recipes/other/predict", json={"texts": TEXTS}).json()
        adapters = httpx.get(f"{url}/v1/adapters").json()

        # memory: three adapters, one copy of the base's parameters
        _, bare = load_base(tiny_base_dir)
        one_copy = sum(p.numel() for p in bare.parameters())
        assert [a.id for a in service.pool.loaded()] == sorted([champion, candidate, other])
        assert len(service.pool.bases()) == 1 and adapters["bases"] == ["tiny@r1"]
        assert service.pool.base_parameter_count() == one_copy
        roles = {a["adapter_id"]: a["role"] for a in adapters["adapters"]}
        assert roles == {champion: "serving", candidate: "shadow", other: "serving"}
        assert service.buffer.flush(30)
        # the shadow job runs after the response: wait for its rows
        with ServingLog(settings.database_url) as log:
            for _ in range(200):
                summary = log.shadow_summary("demo", candidate)
                if summary is not None and summary["rows"] == len(TEXTS):
                    break
                service.buffer.flush(1)
            logged = log.predictions("demo")

    # each recipe is answered by its own adapter, exactly as that adapter says alone
    cleaned = [clean_text(t) for t in TEXTS]
    for doc, adapter_id in ((demo, champion), (mine, other)):
        assert doc["adapter_id"] == adapter_id and doc["base_model"] == "tiny@r1"
        probs, labels = reference_probabilities(settings, adapter_id, cleaned)
        assert [p["label"] for p in doc["predictions"]] == [labels[i] for i in probs.argmax(1)]

    # shadow: agreement and both confidences, from the two adapters' own answers
    champ_p, champ_labels = reference_probabilities(settings, champion, cleaned)
    cand_p, cand_labels = reference_probabilities(settings, candidate, cleaned)
    agree = [champ_labels[a] == cand_labels[b]
             for a, b in zip(champ_p.argmax(1), cand_p.argmax(1), strict=True)]  # fmt: skip
    assert summary["rows"] == len(TEXTS)
    assert summary["agreement"] == pytest.approx(np.mean(agree))
    assert summary["candidate_confidence"] == pytest.approx(cand_p.max(1).mean(), abs=1e-5)
    assert summary["champion_confidence"] == pytest.approx(champ_p.max(1).mean(), abs=1e-5)
    assert summary["champion_adapter_ids"] == [champion]
    # the drift loop's log holds what was answered, never the shadow's scores
    assert set(logged["adapter_id"]) == {champion}

    # promotion evidence: the CLI's promote records the shadow summary in the audit log
    for name, value in workspace_env(settings).items():
        monkeypatch.setenv(name, value)
    assert main(["registry", "promote", str(candidate), "--why", "shadow agreed", "--force"]) == 0
    platform = Platform.from_settings(settings)
    entry = max(platform.registry.audit("demo"), key=lambda e: e.id)
    assert shadow_evidence(platform, candidate) == summary
    platform.registry.close()
    assert entry.adapter_id == candidate and entry.evidence["shadow"] == summary
    assert shadow_metadata(summary)["shadow_agreement"] == summary["agreement"]


def test_cli_predict(workspace, monkeypatch, tmp_path, capsys):
    settings, _, _, other = workspace
    for name, value in workspace_env(settings).items():
        monkeypatch.setenv(name, value)
    csv = tmp_path / "in.csv"
    csv.write_text("id,text\n1,where is my parcel\n2,I was charged twice\n", encoding="utf-8")
    args = ["predict", "--recipe", "other", "I lost my card", "--file", str(csv), "--json"]
    assert main([*args, "--top-k", "2"]) == 0
    doc = json.loads(capsys.readouterr().out)
    texts = ["I lost my card", "where is my parcel", "I was charged twice"]
    probs, labels = reference_probabilities(settings, other, texts)
    assert doc["adapter_id"] == other and doc["base_model"] == "tiny@r1"
    assert [p["text"] for p in doc["predictions"]] == texts
    assert [p["label"] for p in doc["predictions"]] == [labels[i] for i in probs.argmax(1)]
    assert all(len(p["top_k"]) == 2 for p in doc["predictions"])
    assert main(["predict", "--recipe", "other", "I lost my card"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.split("\t")[0] == doc["predictions"][0]["label"]
    csv.write_text("id,words\n1,x\n", encoding="utf-8")
    assert main(["predict", "--recipe", "other", "--file", str(csv)]) == 1
    assert "column 'text': missing" in capsys.readouterr().err


def test_a_lone_adapter_is_merged_and_unmerged_when_another_joins(workspace):
    """A base with one adapter runs it merged into its weights (the speed of a merged
    model); a second adapter unmerges it, and each still answers as when loaded alone."""
    from modelops.serving.model_pool import ModelPool

    settings, champion, _, other = workspace
    platform = Platform.from_settings(settings)
    texts = [clean_text(t) for t in TEXTS]
    expected = {a: reference_probabilities(settings, a, texts)[0] for a in (champion, other)}
    pool = ModelPool(platform)
    try:
        first = pool.load(platform.registry.get(champion))
        (base,) = pool.bases()
        assert base.merged
        assert pool.probabilities(first, texts) == pytest.approx(expected[champion], abs=1e-5)
        second = pool.load(platform.registry.get(other))
        assert not base.merged
        for adapter in (first, second, first):
            got = pool.probabilities(adapter, texts)
            assert got == pytest.approx(expected[adapter.id], abs=1e-5)
        pool.unload(champion)
        assert base.merged
        assert pool.probabilities(second, texts) == pytest.approx(expected[other], abs=1e-5)
    finally:
        platform.registry.close()
