"""The landing zone in a local directory: good files scored, logged and moved; bad files
moved aside with a note and nothing logged; labels become feedback, ids are stored.
The same on S3: test_landing_s3.py."""

from __future__ import annotations

import pandas as pd
import pytest

from modelops.config.errors import InputError
from modelops.serving.batch_scoring import pending_files, process_landing, recipe_dir, score_file
from modelops_tests.fixtures.landing_files import BAD_FILES


@pytest.fixture
def landing(tmp_path):
    (tmp_path / "landing" / "demo" / "incoming").mkdir(parents=True)
    return tmp_path / "landing"


def drop(landing, name: str, content: bytes | str) -> None:
    data = content.encode("utf-8") if isinstance(content, str) else content
    (landing / "demo" / "incoming" / name).write_bytes(data)


def names(landing, folder: str) -> list[str]:
    directory = landing / "demo" / folder
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_good_file_is_scored_logged_and_moved(landing, predictor, plog):
    before = plog.latest_prediction_id("demo")
    before_feedback = plog.feedback_count("demo")
    drop(
        landing,
        "day1.csv",
        "id,text,label\n"
        "a,I lost my card yesterday,card_lost\n"
        "b,where is my new card,\n"
        'c,"please refund, my order",refund_request\n',
    )
    assert pending_files(landing, "demo") == [str(landing / "demo" / "incoming" / "day1.csv")]
    report = process_landing(predictor, landing, "demo", log=plog)

    assert report.rejected == []
    (result,) = report.processed
    assert (result.file, result.rows, result.feedback_rows) == ("day1.csv", 3, 2)
    assert names(landing, "incoming") == [] and names(landing, "processed") == ["day1.csv"]
    logged = plog.predictions("demo", after_id=before)
    assert logged["text"].tolist()[2] == "please refund, my order"
    assert logged["source"].tolist() == ["batch:day1.csv"] * 3
    assert logged["batch_id"].tolist() == [result.batch_id] * 3
    assert logged["external_id"].tolist() == ["a", "b", "c"]  # the sender's id column
    assert logged["adapter_id"].tolist() == [predictor.adapter.id] * 3
    feedback = plog.feedback("demo").iloc[before_feedback:]
    assert feedback["prediction_id"].tolist() == [logged["id"].iloc[0], logged["id"].iloc[2]]
    assert feedback["true_label"].tolist() == ["card_lost", "refund_request"]
    assert feedback["text"].tolist() == ["I lost my card yesterday", "please refund, my order"]
    assert report.metadata()["rows"] == 3 and report.summary_lines()[0].startswith("day1.csv")


def test_parquet_file(landing, predictor, plog, tmp_path):
    before = plog.latest_prediction_id("demo")
    path = tmp_path / "batch.parquet"
    pd.DataFrame(
        {"id": [10, None], "text": ["card lost", "refund please"], "label": [None, "refund"]}
    ).to_parquet(path)
    drop(landing, "batch.parquet", path.read_bytes())
    report = process_landing(predictor, landing, "demo", log=plog)
    assert [(b.rows, b.feedback_rows) for b in report.processed] == [(2, 1)]
    assert plog.count_since("demo", before) == 2
    # Integer ids (read as floats next to a missing one) are stored as written.
    ids = plog.predictions("demo", after_id=before)["external_id"]
    assert ids.iloc[0] == "10" and pd.isna(ids.iloc[1])


@pytest.mark.parametrize(("name", "content", "error"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_file_is_rejected_with_a_note_and_nothing_logged(
    landing, predictor, plog, name, content, error
):
    before = plog.latest_prediction_id("demo")
    before_feedback = plog.feedback_count("demo")
    drop(landing, name, content)
    report = process_landing(predictor, landing, "demo", log=plog)

    assert report.processed == []
    assert [r.file for r in report.rejected] == [name]
    assert report.rejected[0].error.startswith(error)
    assert names(landing, "incoming") == [] and names(landing, "processed") == []
    assert names(landing, "rejected") == sorted([name, f"{name}.error.txt"])
    rejected = landing / "demo" / "rejected"
    original = content.encode() if isinstance(content, str) else content
    assert (rejected / name).read_bytes() == original  # the file is kept as it was
    note = (rejected / f"{name}.error.txt").read_text(encoding="utf-8")
    assert note.startswith(error) and f"file: {name}\n" in note
    assert plog.latest_prediction_id("demo") == before
    assert plog.feedback_count("demo") == before_feedback


def test_one_pass_over_good_and_bad_files(landing, predictor, plog):
    before = plog.latest_prediction_id("demo")
    drop(landing, "a.csv", "text\ncard lost\n")
    drop(landing, "b.csv", "text,label\nrefund please,refund_request\n\n")
    drop(landing, "c.csv", "label\nx\n")
    drop(landing, ".d.csv", "text\nstill uploading\n")
    drop(landing, "e.csv.part", "text\nstill uploading\n")
    report = process_landing(predictor, landing, "demo", log=plog)
    assert [b.file for b in report.processed] == ["a.csv", "b.csv"]
    assert [r.file for r in report.rejected] == ["c.csv"]
    assert (report.rows, report.feedback_rows) == (2, 1)
    assert names(landing, "incoming") == [".d.csv", "e.csv.part"]
    assert plog.count_since("demo", before) == 2


def test_a_file_already_logged_is_not_logged_twice(landing, predictor, plog):
    before = plog.latest_prediction_id("demo")
    drop(landing, "same.csv", "text\ncard lost\nrefund please\n")
    first = process_landing(predictor, landing, "demo", log=plog)
    drop(landing, "same.csv", "text\ncard lost\nrefund please\n")  # delivered again
    again = process_landing(predictor, landing, "demo", log=plog)
    assert [b.already_logged for b in first.processed + again.processed] == [False, True]
    assert first.processed[0].batch_id == again.processed[0].batch_id
    assert (again.rows, plog.count_since("demo", before)) == (0, 2)
    # Nothing in processed/ is overwritten.
    assert names(landing, "processed") == ["same.1.csv", "same.csv"]

    drop(landing, "same.csv", "text\ncard lost\nrefund please now\n")  # new content
    assert process_landing(predictor, landing, "demo", log=plog).rows == 2


def test_a_failure_that_is_not_the_file_leaves_it_waiting(landing, predictor, plog, monkeypatch):
    before = plog.latest_prediction_id("demo")
    drop(landing, "ok.csv", "text,label\ncard lost,card_lost\n")

    def broken(*_args, **_kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(plog, "log_predictions", broken)
    with pytest.raises(RuntimeError, match="went away"):
        process_landing(predictor, landing, "demo", log=plog)
    assert names(landing, "incoming") == ["ok.csv"]
    assert plog.latest_prediction_id("demo") == before
    monkeypatch.undo()
    assert len(process_landing(predictor, landing, "demo", log=plog).processed) == 1


def test_score_file_names_the_bad_row(tmp_path, predictor, plog):
    path = tmp_path / "rows.parquet"
    pd.DataFrame({"text": ["fine", None, "also fine"]}).to_parquet(path)
    with pytest.raises(InputError, match=r"^rows.parquet: row 2: column 'text' is empty$"):
        score_file(predictor, path, log=plog)
    assert path.exists()  # score_file never moves files


def test_landing_layout(tmp_path, predictor, plog):
    assert pending_files(tmp_path / "nowhere", "demo") == []
    assert recipe_dir(tmp_path, "demo") == tmp_path / "demo"
    with pytest.raises(InputError, match="local landing directory"):
        recipe_dir("s3://bucket/landing", "demo")
    with pytest.raises(InputError, match=r"needs s3://bucket\[/prefix\]"):
        pending_files("s3://", "demo")
    with pytest.raises(InputError, match="serves 'demo'"):
        process_landing(predictor, tmp_path, "other", log=plog)
