"""The drift evidence store (SQLite and PostgreSQL): a state round-trips, saves are
compare-and-set on the version, and a new serving champion restarts the evidence."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from modelops.config.errors import InputError
from modelops.lifecycle.drift_check import stored_evidence
from modelops.monitoring.evidence import EvidenceSettings, EvidenceState
from modelops.stores.db.engine import migrate
from modelops.stores.drift_evidence import DriftEvidenceStore


def some_state(adapter_id: int = 4) -> EvidenceState:
    settings = EvidenceSettings(null_flag_rate=0.05, reference_accuracy=0.9, reference_rows=400)
    rng = np.random.default_rng(1)
    state = EvidenceState.fresh(adapter_id, 101, "2026-12-01T10:00:00+00:00")
    return state.update(
        settings, ids=range(101, 161), at="2026-12-01T11:00:00+00:00",
        flags=rng.random(60) < 0.05, correct=rng.random(60), window_e=1.7,
    )  # fmt: skip


def test_round_trip_and_compare_and_set(db_url):
    migrate(db_url)
    state = some_state()
    with DriftEvidenceStore(db_url) as store:
        assert store.load("demo") is None
        assert store.save("demo", state.to_dict(), expected_version=None) is True
        assert store.save("demo", state.to_dict(), expected_version=None) is False  # exists
        stored = store.load("demo")
        assert stored.version == 1 and EvidenceState.from_dict(stored.state) == state
        newer = state.update(
            EvidenceSettings(**state.settings), ids=range(161, 221), at="t",
            correct=np.full(60, 0.5),
        )  # fmt: skip
        assert store.save("demo", newer.to_dict(), expected_version=1) is True
        # A check that loaded version 1 too now stores nothing.
        assert store.save("demo", state.to_dict(), expected_version=1) is False
        stored = store.load("demo")
        assert stored.version == 2 and stored.state["last_id"] == 220
        assert EvidenceState.from_dict(stored.state) == newer
        assert store.load("other") is None
        with pytest.raises(InputError, match=r"state\.last_id"):
            store.save("demo", {**newer.to_dict(), "last_id": "x"}, expected_version=2)
        assert store.load("demo").version == 2


def test_a_new_champion_restarts_the_evidence(tmp_path):
    url = f"sqlite:///{tmp_path / 'modelops.db'}"
    migrate(url)
    window = pd.DataFrame(
        {
            "id": [301, 302, 303],
            "adapter_id": [4, 5, 5],
            "at": pd.to_datetime(["2026-12-02T09:00Z", "2026-12-02T09:05Z", "2026-12-02T09:06Z"]),
        }
    )
    said = []
    with DriftEvidenceStore(url) as store:
        platform = SimpleNamespace(drift_evidence=store)
        stored, state = stored_evidence(platform, "demo", 4, window, said.append)
        assert stored is None and state.adapter_id == 4 and state.first_id == 301
        store.save("demo", some_state(4).to_dict(), expected_version=None)
        stored, state = stored_evidence(platform, "demo", 4, window, said.append)
        assert stored.version == 1 and state.rows == 60 and state.adapter_id == 4
        # Adapter 5 now serves: its evidence starts at the first row it served.
        stored, state = stored_evidence(platform, "demo", 5, window, said.append)
        assert stored.version == 1 and state.adapter_id == 5 and state.rows == 0
        assert (state.first_id, state.last_id) == (302, 301)
        assert state.since.startswith("2026-12-02T09:05") and "replaced 4" in state.note
        # Adapter 6 served none of them: its evidence starts after the window.
        _, state = stored_evidence(platform, "demo", 6, window, said.append)
        assert (state.first_id, state.last_id, state.adapter_id) == (304, 303, 6)
    assert said == []
