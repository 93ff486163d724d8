"""Evidence that does not meet the retraining policy warns without launching a run, and
the drift report's link answers: the retraining policy through Dagster in process, with
the tiny model.

The evidence accumulated since the champion started decides (``monitoring.evidence``).
One window cannot cross a lifetime error rate here: its 30 null windows give p-values of
at least 1/31 (a drift e-value of at most 2.25 per window, 1,000 needed), and the tiny
random base's embeddings flag 0 to 2 % of rows of new intents as novel. So the champion's
evidence is seeded, through the public update, with 60 earlier rows that were all flagged
out of scope (ids -59..0): its novelty test crossed before this window came."""

from __future__ import annotations

import json
from dataclasses import replace

import dagster as dg
import httpx
import numpy as np
import pytest

from modelops.defs.keys import DRIFT_SENSOR, LANDING_SENSOR, WINDOW_SENSOR
from modelops.demo.scenario import Loop, ScenarioKnobs, drop_batch
from modelops.lifecycle.fetch import FetchedAdapter
from modelops.lifecycle.platform import Platform
from modelops.monitoring.check import evidence_settings
from modelops.monitoring.evidence import EvidenceState
from modelops.monitoring.reference import load_bundle
from modelops.serving.reports import reports_app
from modelops.stores.artifacts.open_store import open_store
from modelops_tests.fixtures.http_server import ServerThread
from modelops_tests.fixtures.network import free_port
from modelops_tests.fixtures.workspace import make_workspace

RECIPE = {
    "monitoring": {"window_size": 60, "n_bootstrap": 30, "false_alarm_rate": 0.01},
    # Only an impossible estimated drop would retrain: drift can at most warn.
    "retraining": {"min_estimated_drop": 1.0, "min_measured_drop": None, "on_new_labels": False},
    "gates": {"max_macro_f1_drop": 1.0, "max_label_f1_drop": 1.0, "beat_baseline": False},
}
KNOBS = ScenarioKnobs(
    recipe="demo",
    batch_size=60,
    clean_batches=2,
    drifted_batches=2,
    new_intent_share=0.4,
    vocabulary_shift=0.8,
    eval_rows=120,
)


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def test_drift_without_impact_warns_and_links_its_report(
    tiny_catalog, tmp_path, instance, monkeypatch
):
    port = free_port()
    # Assets read the serve URL from the environment, as the code location does.
    monkeypatch.setenv("MODELOPS_SERVE_URL", f"http://127.0.0.1:{port}")
    settings = make_workspace(tmp_path, tiny_catalog, rows=900, recipe=RECIPE)
    settings = replace(settings, serve_url=f"http://127.0.0.1:{port}")
    loop = Loop(settings, instance, "demo", emit=lambda _m: None)
    assert loop.train("v1").success
    adapter = instance.get_latest_materialization_event(
        dg.AssetKey(["demo", "adapter"])
    ).asset_materialization.metadata
    assert adapter["drift_rate_reachable"].value is False  # 30 windows cannot show 1%
    assert "NOT reachable" in adapter["drift_calibration"].value
    seed_crossed_novelty(settings, loop.loaded.recipe)
    landing = loop.loaded.landing_root(settings.home)
    assert loop.tick(DRIFT_SENSOR) == []  # its first tick: no report yet
    drop_batch(landing, "demo", KNOBS.batch(2), "drifted.csv", 0.5, 1)
    loop.tick(LANDING_SENSOR)
    ((_request, result),) = loop.tick(WINDOW_SENSOR)
    assert result.success
    md = instance.get_latest_materialization_event(
        dg.AssetKey(["demo", "drift_report"])
    ).asset_materialization.metadata
    assert md["drifted"].value is True and md["retrain"].value is False
    assert md["window_drifted"].value is True
    assert md["action"].value == "warn" and md["policy"].value.startswith("Warn")
    assert md["evidence_crossed"].value == "novelty" and md["evidence_rows"].value == 120
    assert md["evidence_since"].value.startswith("2026-12-01")
    # crossed on the seeded rows and stays crossed; the window's rows rank among those
    # seeded out-of-scope rows, so the e-value fell since, and it still counts against
    assert 1 < md["evidence_e_novelty"].value < md["evidence_needed_novelty"].value
    low, high = md["estimated_accuracy_low"].value, md["estimated_accuracy_high"].value
    assert low <= md["estimated_accuracy"].value <= high
    assert md["measured_accuracy"].value is not None and md["new_labels"].value
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert loop.tick(DRIFT_SENSOR) == []  # movement alone launches nothing
    report = instance.fetch_materializations(dg.AssetKey(["demo", "drift_report"]), limit=1)
    seen = json.loads(loop.cursors[DRIFT_SENSOR])["recipes"]["demo"]
    assert seen == {"storage_id": report.records[0].storage_id}  # read, nothing launched
    assert instance.get_runs(filters=dg.RunsFilter(job_name="demo__retrain")) == []
    # The report's link answers in a browser's stead.
    url = md["report_url"].value
    assert url.startswith(settings.serve_url + "/reports/demo/adapter-")
    store = open_store(settings.artifacts_uri)
    with ServerThread(reports_app(store), port=port):
        response = httpx.get(url)
    assert response.status_code == 200 and "<html" in response.text[:2000].lower()


def seed_crossed_novelty(settings, recipe) -> None:
    """Store evidence for the champion whose novelty test crossed on 60 earlier rows."""
    platform = Platform.from_settings(settings)
    champion = platform.registry.alias("demo", "champion")
    with FetchedAdapter(platform, champion) as fetched:
        bundle = load_bundle(fetched.path)
    counts = bundle.out_of_scope.rank_counts  # every row scored past every calibration row
    state = EvidenceState.fresh(champion.id, -59, "2026-12-01T00:00:00+00:00").update(
        evidence_settings(bundle, recipe),
        ids=range(-59, 1),
        at="2026-12-01T01:00:00+00:00",
        flags=np.ones(60, dtype=bool),
        oos_bins=np.full(60, len(counts) - 1.0),
        rank_counts=counts,
    )
    assert state.crossed() == ["novelty"]
    assert platform.drift_evidence.save("demo", state.to_dict(), expected_version=None)
    platform.drift_evidence.close()
    platform.registry.close()
