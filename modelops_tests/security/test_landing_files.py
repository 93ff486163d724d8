"""Attacks on a local landing folder through the real scoring path: links to secrets,
FIFOs, devices and folders are refused with a note and never read; a hostile header or
file name is echoed cut and clean. Each checks that nothing stored was lost or changed."""

from __future__ import annotations

import os

import dagster as dg
import pytest

from modelops.config.errors import InputError
from modelops.defs.keys import LANDING_SENSOR
from modelops.demo.scenario import Loop
from modelops_tests.fixtures.hostile_landing import Landing, control_characters, stored_rows
from modelops_tests.fixtures.workspace import write_recipe

SECRET = "s3cr3t-9f2c1b7e-do-not-leak"


@pytest.fixture
def landing(tmp_path):
    return Landing(tmp_path / "landing")


@pytest.fixture
def secrets(tmp_path):
    """Two files outside the landing folder: one shaped as a batch file, one not."""
    folder = tmp_path / "private"
    folder.mkdir()
    (folder / "as_batch.csv").write_text(f"text\nthe password is {SECRET}\n", encoding="utf-8")
    (folder / "config.env").write_text(f"API_KEY={SECRET}\nOTHER=1\n", encoding="utf-8")
    return folder


def test_links_to_secret_files_are_refused_unread_through_dagster(
    trained, tmp_path, plog, landing, secrets
):
    """The landing sensor and batch_scoring asset, in process: neither the secret's
    content nor its path appears in notes, run logs, metadata or the production log."""
    settings = trained[0]
    write_recipe(
        settings.recipes_dir.parent,
        {"training": {"epochs": 1}, "monitoring": {"landing": str(landing.root)}},
    )
    os.symlink(secrets / "as_batch.csv", landing.path("incoming", "a_link.csv"))
    os.symlink(secrets / "config.env", landing.path("incoming", "b_link.csv"))
    landing.drop("c_good.csv", "text\ncard lost\n")
    before, before_feedback = stored_rows(plog)
    originals = {p.name: p.read_bytes() for p in secrets.iterdir()}

    with dg.instance_for_test() as instance:
        loop = Loop(settings, instance, "demo", emit=lambda _m: None)
        ((_request, result),) = loop.tick(LANDING_SENSOR)
        assert result.success
        event = instance.get_latest_materialization_event(dg.AssetKey(["demo", "batch_scoring"]))
        metadata = event.asset_materialization.metadata
        logs = [e.user_message or "" for e in instance.all_logs(result.run_id)]

    assert (metadata["files_processed"].value, metadata["files_rejected"].value) == (1, 2)
    assert landing.names("incoming") == [] and landing.names("processed") == ["c_good.csv"]
    assert landing.names("rejected") == sorted(
        ["a_link.csv", "a_link.csv.error.txt", "b_link.csv", "b_link.csv.error.txt"]
    )
    # The links were moved as links, their targets untouched.
    assert os.readlink(landing.path("rejected", "a_link.csv")) == str(secrets / "as_batch.csv")
    assert {p.name: p.read_bytes() for p in secrets.iterdir()} == originals
    notes = landing.notes()
    assert notes["a_link.csv.error.txt"].startswith(
        "a_link.csv: not a regular file (a symbolic link)"
    )
    logged = plog.predictions("demo", after_id=before)
    assert logged["text"].tolist() == ["card lost"]
    assert plog.feedback_count("demo") == before_feedback
    shown = [*notes.values(), *logs, str(metadata), *logged["text"], *logged["source"]]
    for text in shown:
        assert SECRET not in text and str(secrets) not in text


@pytest.mark.parametrize("kind", ["fifo", "dev_zero_link", "directory", "link_to_link"])
def test_fifos_devices_and_folders_are_refused_without_being_read(
    kind, landing, predictor, plog, tmp_path
):
    name = f"x_{kind}.csv"
    path = landing.path("incoming", name)
    if kind == "fifo":
        os.mkfifo(path)  # opening it for reading would block forever
    elif kind == "dev_zero_link":
        os.symlink("/dev/zero", path)  # reading it would never end
    elif kind == "directory":
        path.mkdir()
        (path / "inner.csv").write_text("text\ninside\n", encoding="utf-8")
    else:
        os.symlink("/dev/zero", tmp_path / "hop")
        os.symlink(tmp_path / "hop", path)
    landing.drop("y_good.csv", f"text\nrefund please ({kind})\n")
    before, before_feedback = stored_rows(plog)

    report = landing.process(predictor, plog)

    assert [b.file for b in report.processed] == ["y_good.csv"]
    (rejection,) = report.rejected
    assert rejection.file == name
    assert rejection.error.startswith(f"{name}: not a regular file (")
    assert landing.names("incoming") == []
    assert landing.names("rejected") == [name, f"{name}.error.txt"]
    assert f"file: {name}\n" in landing.notes()[f"{name}.error.txt"]
    moved = landing.path("rejected", name)
    assert os.path.lexists(moved) and not (moved.is_file() and not moved.is_symlink())
    if kind == "directory":
        assert (moved / "inner.csv").read_text(encoding="utf-8") == "text\ninside\n"
    assert plog.count_since("demo", before) == 1
    assert plog.feedback_count("demo") == before_feedback


def test_a_hostile_header_is_echoed_cut_and_clean(landing, predictor, plog):
    """A file's first line reaches the note, the report (run log, metadata): at most
    200 characters of it, with no control characters or terminal escapes."""
    header = "\x1b[2J\x1b]0;owned\x07\x1b[31mcolumn\x1b[0m" + "\u202e" + "A" * 5000 + ",b\x08\x00c"
    landing.drop("evil.csv", header + "\nsome,row\n")
    before, before_feedback = stored_rows(plog)

    report = landing.process(predictor, plog)

    (rejection,) = report.rejected
    note = landing.notes()["evil.csv.error.txt"]
    for text in (note, rejection.error, *report.summary_lines(), *report.metadata()["rejected"]):
        assert "\x1b" not in text and control_characters(text) == []
        assert "A" * 201 not in text  # the header is cut
        assert "owned" not in text  # the escape's payload went with it
    assert rejection.error.startswith("evil.csv: column 'text': missing (columns present: ")
    assert len(rejection.error) < 400
    assert landing.path("rejected", "evil.csv").read_bytes() == (header + "\nsome,row\n").encode(
        "utf-8"
    )  # kept as it came
    assert stored_rows(plog) == (before, before_feedback)


def test_a_file_name_with_escapes_is_refused_and_moved_under_a_safe_name(landing, predictor, plog):
    name = "\x1b[31mred\x1b[0m\nnext.csv"
    landing.drop(name, "text\ncard lost\n")
    before, before_feedback = stored_rows(plog)

    report = landing.process(predictor, plog)

    assert report.processed == []
    (rejection,) = report.rejected
    assert "refused name (the name holds control characters)" in rejection.error
    assert control_characters(rejection.error) == [] and "\x1b" not in rejection.error
    assert landing.names("incoming") == []
    (kept, note) = landing.names("rejected")
    assert note == f"{kept}.error.txt" and kept.isprintable() and ".." not in kept
    assert landing.path("rejected", kept).read_bytes() == b"text\ncard lost\n"
    assert control_characters(landing.notes()[note]) == []
    assert stored_rows(plog) == (before, before_feedback)


def test_an_incoming_folder_that_is_a_link_is_refused(tmp_path, predictor, plog):
    """Were ``incoming/`` a link to another folder, its files would be read and moved
    away from there: the pass refuses it and touches nothing."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.csv").write_text("text\nnot yours\n", encoding="utf-8")
    (tmp_path / "landing" / "demo").mkdir(parents=True)
    os.symlink(elsewhere, tmp_path / "landing" / "demo" / "incoming")
    before = stored_rows(plog)
    with pytest.raises(InputError, match="incoming: is a symbolic link: refused"):
        Landing(tmp_path / "landing").process(predictor, plog)
    assert sorted(p.name for p in elsewhere.iterdir()) == ["keep.csv"]
    assert stored_rows(plog) == before
