"""The landing zone under an S3 prefix, on moto's real HTTP server: the same behaviour as a
local directory (test_landing.py), and the landing sensor and batch_scoring on it."""

from __future__ import annotations

import dataclasses

import dagster as dg
import pytest

from modelops.config.errors import InputError, ModelopsError
from modelops.defs.keys import LANDING_SENSOR
from modelops.demo.scenario import Loop
from modelops.serving.batch_scoring import pending_files, process_landing
from modelops.stores.landing import S3LandingLocation, open_landing
from modelops.stores.s3 import s3_client
from modelops_tests.fixtures.landing_files import BAD_FILES
from modelops_tests.fixtures.workspace import write_recipe


class Bucket:
    """The test bucket, with the landing zone at ``s3://<bucket>/landing``."""

    def __init__(self, endpoint: str, bucket: str):
        self.endpoint, self.bucket = endpoint, bucket
        self.root = f"s3://{bucket}/landing"
        self.client = s3_client(endpoint, "us-east-1")

    def drop(self, name: str, content: bytes | str, folder: str = "incoming") -> None:
        data = content.encode("utf-8") if isinstance(content, str) else content
        self.client.put_object(Bucket=self.bucket, Key=self.key(folder, name), Body=data)

    def names(self, folder: str) -> list[str]:
        prefix = self.key(folder, "")
        listing = self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return sorted(obj["Key"][len(prefix) :] for obj in listing.get("Contents", []))

    def read(self, folder: str, name: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=self.key(folder, name))["Body"].read()

    def key(self, folder: str, name: str) -> str:
        return f"landing/demo/{folder}/{name}"

    def process(self, predictor, plog):
        return process_landing(
            predictor, self.root, "demo", log=plog, s3_endpoint_url=self.endpoint
        )


@pytest.fixture
def s3(s3_bucket):
    return Bucket(*s3_bucket)


def test_good_file_is_scored_logged_and_moved(s3, predictor, plog):
    before = plog.latest_prediction_id("demo")
    content = "id,text,label\nr-1,I lost my card yesterday,card_lost\nr-2,where is my new card,\n"
    s3.drop("day1.csv", content)
    incoming = f"{s3.root}/demo/incoming/day1.csv"
    assert pending_files(s3.root, "demo", s3_endpoint_url=s3.endpoint) == [incoming]
    report = s3.process(predictor, plog)

    assert report.rejected == []
    (result,) = report.processed
    assert (result.file, result.rows, result.feedback_rows) == ("day1.csv", 2, 1)
    assert s3.names("incoming") == [] and s3.names("processed") == ["day1.csv"]
    assert s3.read("processed", "day1.csv") == content.encode()
    logged = plog.predictions("demo", after_id=before)
    assert logged["source"].tolist() == ["batch:day1.csv"] * 2
    assert logged["batch_id"].tolist() == [result.batch_id] * 2
    assert logged["external_id"].tolist() == ["r-1", "r-2"]
    assert plog.feedback("demo")["true_label"].tolist()[-1] == "card_lost"


S3_BAD_FILES = [b for b in BAD_FILES if b[0] in {"wrong.csv", "empty.csv", "latin1.csv",
                                                  "ragged.csv", "long_id.csv"}]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "content", "error"), S3_BAD_FILES, ids=[b[0] for b in S3_BAD_FILES]
)
def test_bad_file_is_rejected_with_a_note_object(s3, predictor, plog, name, content, error):
    before = plog.latest_prediction_id("demo")
    before_feedback = plog.feedback_count("demo")
    s3.drop(name, content)
    report = s3.process(predictor, plog)

    assert report.processed == []
    (rejection,) = report.rejected
    assert rejection.file == name and rejection.error.startswith(error)
    assert rejection.path == f"{s3.root}/demo/rejected/{name}"
    assert s3.names("incoming") == [] and s3.names("processed") == []
    assert s3.names("rejected") == sorted([name, f"{name}.error.txt"])
    original = content.encode() if isinstance(content, str) else content
    assert s3.read("rejected", name) == original
    note = s3.read("rejected", f"{name}.error.txt").decode("utf-8")
    assert note.startswith(error) and f"file: {name}\n" in note
    assert plog.latest_prediction_id("demo") == before
    assert plog.feedback_count("demo") == before_feedback


def test_partial_names_and_nested_keys_are_left_alone(s3, predictor, plog):
    for name in (".b.csv", "c.csv.part", "d.csv.tmp", "sub/e.csv", "a.csv"):
        s3.drop(name, "text\ncard lost\n")
    assert s3.names("incoming") == [".b.csv", "a.csv", "c.csv.part", "d.csv.tmp", "sub/e.csv"]
    report = s3.process(predictor, plog)
    assert [b.file for b in report.processed] == ["a.csv"] and report.rejected == []
    assert s3.names("incoming") == [".b.csv", "c.csv.part", "d.csv.tmp", "sub/e.csv"]
    assert s3.names("processed") == ["a.csv"]


def test_a_file_delivered_twice_is_logged_once(s3, predictor, plog):
    before = plog.latest_prediction_id("demo")
    s3.drop("same.csv", "id,text\n1,card lost\n2,refund please\n")
    first = s3.process(predictor, plog)
    s3.drop("same.csv", "id,text\n1,card lost\n2,refund please\n")  # delivered again
    again = s3.process(predictor, plog)
    assert [b.already_logged for b in first.processed + again.processed] == [False, True]
    assert first.processed[0].batch_id == again.processed[0].batch_id
    assert (again.rows, plog.count_since("demo", before)) == (0, 2)
    assert s3.names("processed") == ["same.1.csv", "same.csv"]  # nothing overwritten

    # A crash between the copy and the delete left the file in both folders: it is
    # moved again, not logged again.
    s3.drop("same.csv", "id,text\n1,card lost\n2,refund please\n")
    assert s3.process(predictor, plog).rows == 0
    assert s3.names("processed") == ["same.1.csv", "same.2.csv", "same.csv"]
    # Other ids make other rows.
    s3.drop("same.csv", "id,text\n3,card lost\n4,refund please\n")
    assert s3.process(predictor, plog).rows == 2


def test_a_failure_that_is_not_the_file_leaves_it_waiting(s3, predictor, plog, monkeypatch):
    before = plog.latest_prediction_id("demo")
    s3.drop("ok.csv", "text,label\ncard lost,card_lost\n")

    def broken(*_args, **_kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(plog, "log_predictions", broken)
    with pytest.raises(RuntimeError, match="went away"):
        s3.process(predictor, plog)
    assert s3.names("incoming") == ["ok.csv"] and s3.names("rejected") == []
    assert plog.latest_prediction_id("demo") == before
    monkeypatch.undo()
    assert len(s3.process(predictor, plog).processed) == 1


def test_pending_is_one_list_call(s3):
    for name in ("b.csv", "a.parquet", ".c.csv"):
        s3.drop(name, "text\nhello\n")
    calls: list[str] = []
    s3.client.meta.events.register("before-call.s3", lambda model, **_: calls.append(model.name))
    location = S3LandingLocation(s3.bucket, "landing/demo", client=s3.client)
    assert pending_files(location, "demo") == [
        f"{s3.root}/demo/incoming/a.parquet",
        f"{s3.root}/demo/incoming/b.csv",
    ]
    assert calls == ["ListObjectsV2"]


def test_s3_locations_and_errors(s3):
    assert open_landing("s3://b", "demo").uri == "s3://b/demo"
    assert open_landing("s3://b/x/y/", "demo").uri == "s3://b/x/y/demo"
    with pytest.raises(InputError, match=r"needs s3://bucket\[/prefix\]"):
        open_landing("s3:///landing", "demo")
    assert pending_files(s3.root, "other", s3_endpoint_url=s3.endpoint) == []  # nothing there
    with pytest.raises(ModelopsError, match="NoSuchBucket"):
        pending_files("s3://no-such-bucket-here/landing", "demo", s3_endpoint_url=s3.endpoint)


def test_landing_sensor_and_batch_scoring_on_s3(s3, trained, tmp_path, plog):
    """The recipe's ``monitoring.landing`` is an S3 prefix: the sensor sees the file and
    batch_scoring scores it, through Dagster in process."""
    settings = dataclasses.replace(trained[0], s3_endpoint_url=s3.endpoint)
    root = settings.recipes_dir.parent
    write_recipe(root, {"training": {"epochs": 1}, "monitoring": {"landing": s3.root}})
    before = plog.latest_prediction_id("demo")
    with dg.instance_for_test() as instance:
        loop = Loop(settings, instance, "demo", emit=lambda _m: None)
        assert loop.loaded.landing_root(settings.home) == s3.root
        assert loop.tick(LANDING_SENSOR) == []  # nothing waiting
        s3.drop("day2.csv", "id,text\nx-1,card lost\nx-2,refund please\n")
        s3.drop(".day3.csv", "text\nstill uploading\n")
        ((request, result),) = loop.tick(LANDING_SENSOR)
        assert result.success and request.run_key.startswith("demo-landing-")
        event = instance.get_latest_materialization_event(dg.AssetKey(["demo", "batch_scoring"]))
        metadata = event.asset_materialization.metadata
        assert (metadata["files_processed"].value, metadata["rows"].value) == (1, 2)
        assert loop.tick(LANDING_SENSOR) == []  # only the partial upload is left
    assert s3.names("incoming") == [".day3.csv"] and s3.names("processed") == ["day2.csv"]
    assert plog.predictions("demo", after_id=before)["external_id"].tolist() == ["x-1", "x-2"]
