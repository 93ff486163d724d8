"""Attacks on an S3 landing prefix (moto's real HTTP server): keys that would be paths
elsewhere (``..``, backslashes) are refused and moved aside under a safe name, an
object over the byte cap is refused from its ContentLength before its body is read,
one over the row cap at the cap; nothing stored is lost or changed."""

from __future__ import annotations

import pytest
from botocore.response import StreamingBody

from modelops.config.monitoring import LandingLimits
from modelops.serving.batch_scoring import process_landing
from modelops.stores.s3 import s3_client
from modelops_tests.fixtures.hostile_landing import stored_rows


class Bucket:
    def __init__(self, endpoint: str, bucket: str):
        self.endpoint, self.bucket = endpoint, bucket
        self.root = f"s3://{bucket}/landing"
        self.client = s3_client(endpoint, "us-east-1")

    def drop(self, name: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=f"landing/demo/incoming/{name}", Body=data)

    def objects(self) -> dict[str, bytes]:
        listing = self.client.list_objects_v2(Bucket=self.bucket, Prefix="landing/demo/")
        return {
            obj["Key"].removeprefix("landing/demo/"): self.client.get_object(
                Bucket=self.bucket, Key=obj["Key"]
            )["Body"].read()
            for obj in listing.get("Contents", [])
        }

    def process(self, predictor, plog, limits: LandingLimits | None = None):
        return process_landing(
            predictor,
            self.root,
            "demo",
            log=plog,
            s3_endpoint_url=self.endpoint,
            limits=limits or LandingLimits(),
        )


@pytest.fixture
def s3(s3_bucket):
    return Bucket(*s3_bucket)


@pytest.mark.parametrize(
    "name",
    ["a\\..\\..\\etc\\cron.csv", "x..csv", "C:\\temp\\y.csv"],
    ids=["backslash_dotdot", "dotdot", "windows_path"],
)
def test_keys_that_are_paths_are_refused_and_moved_under_a_safe_name(s3, predictor, plog, name):
    data = b"text\ncard lost\n"
    s3.drop(name, data)
    before, before_feedback = stored_rows(plog)

    report = s3.process(predictor, plog)

    assert report.processed == []
    (rejection,) = report.rejected
    assert "refused name (the name holds " in rejection.error
    objects = s3.objects()
    (kept,) = [k for k in objects if k.startswith("rejected/") and not k.endswith(".error.txt")]
    safe = kept.removeprefix("rejected/")
    assert ".." not in safe and "\\" not in safe and safe.isprintable()
    assert rejection.path == f"{s3.root}/demo/{kept}"
    assert objects[kept] == data  # kept as it came
    assert objects[f"{kept}.error.txt"].decode().startswith(rejection.error)
    assert not [k for k in objects if k.startswith(("incoming/", "processed/"))]
    assert stored_rows(plog) == (before, before_feedback)


def test_an_object_over_the_byte_cap_is_refused_before_its_body_is_read(
    s3, predictor, plog, monkeypatch
):
    data = b"text\n" + b"a long complaint about my card\n" * 5_000
    s3.drop("big.csv", data)
    s3.drop("small.csv", b"text\nrefund please from s3\n")
    before, before_feedback = stored_rows(plog)
    bodies: list[int] = []
    read = StreamingBody.read

    def counting(self, amt=None):
        out = read(self, amt)
        bodies.append(len(out))
        return out

    monkeypatch.setattr(StreamingBody, "read", counting)
    report = s3.process(predictor, plog, LandingLimits(max_bytes=10_000))
    monkeypatch.undo()

    (rejection,) = report.rejected
    assert rejection.error == (
        f"big.csv: too large: {len(data)} bytes, over the cap of 10000 bytes "
        "(monitoring.landing_limits.max_bytes)"
    )
    assert max(bodies) < 10_000  # only the small file's body was read
    assert [b.file for b in report.processed] == ["small.csv"]
    objects = s3.objects()
    assert objects["rejected/big.csv"] == data and "rejected/big.csv.error.txt" in objects
    assert plog.count_since("demo", before) == 1
    assert plog.feedback_count("demo") == before_feedback


def test_an_object_over_the_row_cap_is_refused(s3, predictor, plog):
    data = b"text\n" + b"card lost\n" * 3_000
    s3.drop("rows.csv", data)
    before, before_feedback = stored_rows(plog)

    report = s3.process(predictor, plog, LandingLimits(max_rows=100))

    (rejection,) = report.rejected
    assert rejection.error.startswith("rows.csv: line 102: too many rows: more than 100")
    assert s3.objects()["rejected/rows.csv"] == data
    assert stored_rows(plog) == (before, before_feedback)
