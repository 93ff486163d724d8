"""The base-model catalog: references, hashes, and base models stored on S3."""

from __future__ import annotations

from functools import partial

import boto3
import pytest
import yaml

from modelops.config.errors import InputError, IntegrityError, NotFoundError
from modelops.config.fingerprint import sha256_dir
from modelops.ml.catalog import Catalog
from modelops.stores.s3 import download_base_model


def from_s3(endpoint):
    """The S3 download the platform hands the catalog, on the test's endpoint."""
    return partial(download_base_model, endpoint_url=endpoint)


def write(path, entries):
    path.write_text(yaml.safe_dump({"models": entries}))
    return path


def test_references_resolve_by_revision_and_alias(tiny_base_dir, tmp_path):
    catalog = Catalog.load(
        write(
            tmp_path / "c.yaml",
            [
                {
                    "name": "tiny",
                    "revision": "r1",
                    "aliases": ["stable"],
                    "location": str(tiny_base_dir),
                },
            ],
        )
    )
    by_alias = catalog.resolve("tiny@stable")
    assert by_alias.entry.ref == "tiny@r1"
    assert by_alias.sha256 == sha256_dir(tiny_base_dir)
    assert catalog.find_by_sha256(by_alias.sha256).path == tiny_base_dir
    with pytest.raises(NotFoundError, match=r"'tiny@r2' is not in the catalog .*known: tiny@r1"):
        catalog.get("tiny@r2")
    with pytest.raises(NotFoundError, match="no base model in the catalog"):
        catalog.find_by_sha256("0" * 64)


def test_recorded_hash_is_verified(tiny_base_dir, tmp_path):
    catalog = Catalog.load(
        write(
            tmp_path / "c.yaml",
            [
                {
                    "name": "tiny",
                    "revision": "r1",
                    "location": str(tiny_base_dir),
                    "sha256": "1" * 64,
                },
            ],
        )
    )
    with pytest.raises(IntegrityError, match="does not match the catalog"):
        catalog.resolve("tiny@r1")


def test_bad_catalog_names_file_and_field(tmp_path):
    path = write(
        tmp_path / "c.yaml", [{"name": "tiny", "revision": "r1", "location": "s3://bucket/tiny"}]
    )
    with pytest.raises(InputError, match=r"c\.yaml: models\[0\]: .*needs its sha256"):
        Catalog.load(path)
    path = write(
        tmp_path / "d.yaml",
        [
            {"name": "tiny", "revision": "r1", "location": "/a"},
            {"name": "tiny", "revision": "r1", "location": "/b"},
        ],
    )
    with pytest.raises(InputError, match="tiny@r1 is defined twice"):
        Catalog.load(path)


def test_base_model_on_s3_is_downloaded_once_and_verified(tiny_base_dir, tmp_path, s3_bucket):
    endpoint, bucket = s3_bucket
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    for file in tiny_base_dir.iterdir():
        client.upload_file(str(file), bucket, f"models/tiny/{file.name}")
    digest = sha256_dir(tiny_base_dir)
    catalog = Catalog.load(
        write(
            tmp_path / "c.yaml",
            [
                {
                    "name": "tiny",
                    "revision": "r1",
                    "location": f"s3://{bucket}/models/tiny",
                    "sha256": digest,
                },
            ],
        )
    )
    cache = tmp_path / "cache"
    resolved = catalog.resolve("tiny@r1", cache_dir=cache, s3_download=from_s3(endpoint))
    assert resolved.sha256 == digest
    assert resolved.path == cache / "base_models" / digest
    assert (resolved.path / "config.json").is_file()
    client.put_object(Bucket=bucket, Key="models/tiny/config.json", Body=b"{}")  # tamper
    again = Catalog.load(tmp_path / "c.yaml").resolve(
        "tiny@r1", cache_dir=cache, s3_download=from_s3(endpoint)
    )
    assert again.sha256 == digest  # served from the verified cache, not re-downloaded
    with pytest.raises(IntegrityError):
        Catalog.load(tmp_path / "c.yaml").resolve(
            "tiny@r1", cache_dir=tmp_path / "fresh", s3_download=from_s3(endpoint)
        )
