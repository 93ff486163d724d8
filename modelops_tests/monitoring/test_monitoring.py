"""Drift monitoring of an adapter: the reference and calibrated thresholds recorded at
training, and verdicts on seeded clean and drifted production windows."""

from __future__ import annotations

import pandas as pd
import pytest

from modelops.config.recipe import load_recipe
from modelops.demo.generator import DemoKnobs, generate
from modelops.lifecycle.dataset import build_dataset
from modelops.lifecycle.fetch import FetchedAdapter, predict_with
from modelops.lifecycle.platform import Platform
from modelops.lifecycle.train import train_adapter
from modelops.monitoring.check import check_window, evidence_settings
from modelops.monitoring.evidence import EvidenceState
from modelops.monitoring.novelty import novelty_threshold
from modelops.monitoring.reference import load_bundle
from modelops_tests.fixtures.workspace import make_workspace

# A calibration that holds its rate (230 null windows for 1 % at 90 % confidence) on a
# holdout of 5 windows or more (2,400 rows: about 360 held-out rows per half). With 30 null
# windows it held only about 7 %, and a clean window of the demo's two-request messages fired.
MONITORED = {
    "monitoring": {"window_size": 60, "n_bootstrap": 230, "false_alarm_rate": 0.01},
    "training": {"epochs": 2},
}


@pytest.fixture(scope="module")
def champion(tiny_catalog, tmp_path_factory):
    root = tmp_path_factory.mktemp("monitoring")
    settings = make_workspace(root, tiny_catalog, rows=2400, recipe=MONITORED)
    platform = Platform.from_settings(settings)
    loaded = load_recipe(settings.recipes_dir / "demo.yaml")
    dataset = build_dataset(platform, loaded, emit=lambda _m: None)
    version = train_adapter(platform, loaded, dataset, emit=lambda _m: None)
    return platform, loaded, version


def window_of(platform, version, frame: pd.DataFrame) -> pd.DataFrame:
    with FetchedAdapter(platform, version) as fetched:
        probs, labels = predict_with(platform, fetched, frame["text"].tolist(), 32)
    return pd.DataFrame(
        {
            "id": range(1, len(frame) + 1),
            "text": frame["text"].tolist(),
            "predicted_label": [labels[i] for i in probs.argmax(1)],
            "confidence": probs.max(1),
        }
    )


def test_adapter_records_reference_and_calibrated_thresholds(champion):
    platform, loaded, version = champion
    thresholds = version.lineage["drift_thresholds"]
    assert set(loaded.recipe.monitoring.signals) <= set(thresholds) | {"label"}
    with FetchedAdapter(platform, version) as fetched:
        bundle = load_bundle(fetched.path)
    assert bundle is not None
    assert bundle.calibration.window_size == 60
    assert bundle.calibration.thresholds == pytest.approx(thresholds)
    assert bundle.calibration.guarantee["reachable"] is True
    assert bundle.calibration.holdout_rows >= 5 * 60
    assert len(bundle.reference) > 60 and bundle.reference.embeddings.shape[1] == 32


def test_the_bundle_stores_the_reference_novelty_threshold(champion):
    """Computed once at training (it depends on the reference alone), not by every check."""
    platform, _, version = champion
    with FetchedAdapter(platform, version) as fetched:
        bundle = load_bundle(fetched.path)
    assert bundle.novelty_threshold is not None
    assert bundle.novelty_threshold == pytest.approx(
        novelty_threshold(bundle.reference.embeddings), abs=1e-12
    )


@pytest.mark.parametrize("seed", [101, 202])
def test_clean_window_raises_no_alarm(champion, seed):
    platform, loaded, version = champion
    frame = generate(DemoKnobs(n=60, seed=seed))
    with FetchedAdapter(platform, version) as fetched:
        bundle = load_bundle(fetched.path)
    base = platform.resolve_base_by_sha256(version.base_model_sha256)
    check = check_window(
        bundle, window_of(platform, version, frame), base=base, recipe=loaded.recipe
    )
    assert check.verdict.drifted is False, check.verdict.reason
    assert check.rows == 60 and check.last_id == 60


def test_new_intents_and_vocabulary_are_flagged(champion, tmp_path):
    platform, loaded, version = champion
    frame = generate(
        DemoKnobs(
            n=60,
            seed=303,
            new_intents=("crypto_transfer", "gift_card"),
            new_intent_share=0.4,
            vocabulary_shift=0.8,
        )
    )
    with FetchedAdapter(platform, version) as fetched:
        bundle = load_bundle(fetched.path)
    base = platform.resolve_base_by_sha256(version.base_model_sha256)
    check = check_window(
        bundle,
        window_of(platform, version, frame),
        base=base,
        recipe=loaded.recipe,
        report_path=tmp_path / "report.html",
    )
    assert check.verdict.drifted is True
    assert {"text_domain_auc", "oov_rate"} & set(check.verdict.fired)
    for signal in check.verdict.fired:
        assert check.verdict.scores[signal] > check.verdict.thresholds[signal]
    assert (tmp_path / "report.html").stat().st_size > 10_000


def test_the_check_adds_its_window_to_the_evidence_once(champion):
    """With evidence, the decision is on what accumulated: one drifted window's verdict
    alone raises no alarm (its rows are added, its drift e-value counted), and the same
    window checked again adds nothing."""
    platform, loaded, version = champion
    frame = generate(
        DemoKnobs(
            n=60, seed=303, new_intents=("crypto_transfer", "gift_card"),
            new_intent_share=0.4, vocabulary_shift=0.8,
        )
    )  # fmt: skip
    with FetchedAdapter(platform, version) as fetched:
        bundle = load_bundle(fetched.path)
    base = platform.resolve_base_by_sha256(version.base_model_sha256)
    window = window_of(platform, version, frame).assign(adapter_id=version.id)
    fresh = EvidenceState.fresh(version.id, 1, "2026-12-06T00:00:00+00:00")
    check = check_window(bundle, window, base=base, recipe=loaded.recipe, evidence=fresh)
    state = check.evidence
    assert check.verdict.drifted is True and check.decision.action == "ok"
    assert (state.rows, state.windows, state.last_id) == (60, 1, 60) and fresh.rows == 0
    assert check.window_e_value is not None and state.tests["drift"].observations == 1
    assert set(state.tests) == {"novelty", "policy_drop", "any_drop", "drift"}
    assert state.settings == evidence_settings(bundle, loaded.recipe).to_dict()
    assert "60 rows in 1 window(s)" in check.decision.sentence
    again = check_window(bundle, window, base=base, recipe=loaded.recipe, evidence=state)
    assert again.evidence.rows == 60 and again.evidence.tests["drift"].observations == 1
    # Rows another adapter served are not this champion's evidence.
    other = EvidenceState.fresh(version.id + 1, 1, "2026-12-06T00:00:00+00:00")
    check = check_window(bundle, window, base=base, recipe=loaded.recipe, evidence=other)
    assert check.evidence.rows == 0 and check.window_e_value is None
