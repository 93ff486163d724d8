"""A poison file: one the scorer crashes on. Each crash counts (an exception, or the
process dying while on it); the files after it are still scored, and after
``max_failures`` it is quarantined with its note, so it stops blocking the folder."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from modelops.config.monitoring import LandingLimits
from modelops_tests.fixtures.hostile_landing import DEADLINE_S, Landing, stored_rows

POISON = "poison pill"
# Scores the landing folder in a fresh process whose scorer dies (os._exit, as a
# segfault or an OOM kill would) on the poison text.
DYING_SCORER = """
import os, pickle, sys
from modelops.config.monitoring import LandingLimits
from modelops.lifecycle.platform import Platform
from modelops.serving.batch_scoring import process_landing
from modelops.serving.predictor import Predictor
from modelops.stores.production_log import ProductionLog

settings = pickle.loads(open(sys.argv[1], "rb").read())
platform = Platform.from_settings(settings)
with ProductionLog(settings.database_url) as log:
    predictor = Predictor(platform, "demo", log=log)
    score = predictor.score
    def dying(texts):
        if any("poison" in t for t in texts):
            os._exit(71)
        return score(texts)
    predictor.score = dying
    process_landing(predictor, sys.argv[2], "demo", log=log, limits=LandingLimits(max_failures=2))
"""


@pytest.fixture
def landing(tmp_path):
    return Landing(tmp_path / "landing")


@pytest.fixture
def crashing(predictor, monkeypatch):
    """The predictor's scorer raises on the poison text, as a tokenizer bug would."""
    score = predictor.score

    def crash(texts):
        if any(POISON in t for t in texts):
            raise IndexError("index out of range in self")
        return score(texts)

    monkeypatch.setattr(predictor, "score", crash)
    return predictor


def test_a_poison_file_is_quarantined_after_n_crashes_and_blocks_nothing(landing, crashing, plog):
    limits = LandingLimits(max_failures=3)
    poison = f"text\n{POISON}\n"
    landing.drop("a_poison.csv", poison)
    before, before_feedback = stored_rows(plog)
    scored = []
    for attempt in (1, 2, 3):
        landing.drop(f"b_good_{attempt}.csv", f"text\ncard lost on pass {attempt}\n")
        report = landing.process(crashing, plog, limits)
        scored += [b.file for b in report.processed]
        if attempt < 3:
            (failure,) = report.failed
            assert failure.failures == attempt and "IndexError" in failure.error
            assert landing.names("incoming") == ["a_poison.csv"]
            assert report.metadata()["files_failed"] == 1
    assert scored == ["b_good_1.csv", "b_good_2.csv", "b_good_3.csv"]  # never blocked
    (quarantined,) = report.quarantined
    assert "quarantined after 3 failed scoring attempts" in quarantined.error
    assert landing.names("incoming") == [] and landing.names("attempts") == []
    assert landing.names("quarantine") == ["a_poison.csv", "a_poison.csv.error.txt"]
    assert landing.path("quarantine", "a_poison.csv").read_text(encoding="utf-8") == poison
    note = landing.notes("quarantine")["a_poison.csv.error.txt"]
    assert "failures: 3\n" in note and "IndexError" in note
    logged = plog.predictions("demo", after_id=before)["text"].tolist()
    assert len(logged) == 3 and not any(POISON in t for t in logged)
    assert plog.feedback_count("demo") == before_feedback


def test_a_process_that_dies_on_a_file_counts_as_a_failure(
    trained, landing, crashing, plog, tmp_path
):
    settings = tmp_path / "settings.pickle"
    settings.write_bytes(pickle.dumps(trained[0]))
    poison = f"text\n{POISON} that kills\n"
    landing.drop("a_poison.csv", poison)
    landing.drop("b_good.csv", "text\nwhere is my new card after a crash\n")
    before, before_feedback = stored_rows(plog)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    for _ in range(2):  # max_failures=2: two deaths
        died = subprocess.run(
            [sys.executable, "-c", DYING_SCORER, str(settings), str(landing.root)],
            env=env,
            capture_output=True,
            timeout=DEADLINE_S,
        )
        assert died.returncode == 71, died.stderr.decode()[-2000:]
        assert landing.names("incoming") == ["a_poison.csv", "b_good.csv"]
        assert stored_rows(plog) == (before, before_feedback)

    report = landing.process(crashing, plog, LandingLimits(max_failures=2))

    (quarantined,) = report.quarantined
    assert "quarantined after 2 failed scoring attempts" in quarantined.error
    assert "the scoring process stopped on it" in quarantined.error
    assert [b.file for b in report.processed] == ["b_good.csv"]
    assert landing.names("quarantine") == ["a_poison.csv", "a_poison.csv.error.txt"]
    assert landing.path("quarantine", "a_poison.csv").read_text(encoding="utf-8") == poison
    assert plog.count_since("demo", before) == 1
    assert plog.feedback_count("demo") == before_feedback


def test_a_store_failure_does_not_count_against_the_file(landing, predictor, plog, monkeypatch):
    """The database failing while a file is logged is not the file's fault: its attempt
    is not counted, however often it happens."""
    landing.drop("ok.csv", "text\nrefund please despite a store failure\n")

    def broken(*_args, **_kwargs):
        from modelops.config.errors import ModelopsError

        raise ModelopsError("production log: the database failed during a transaction")

    monkeypatch.setattr(plog, "log_predictions", broken)
    for _ in range(4):
        with pytest.raises(Exception, match="the database failed"):
            landing.process(predictor, plog, LandingLimits(max_failures=2))
        assert landing.names("incoming") == ["ok.csv"] and landing.names("attempts") == []
    monkeypatch.undo()
    assert [b.file for b in landing.process(predictor, plog).processed] == ["ok.csv"]
