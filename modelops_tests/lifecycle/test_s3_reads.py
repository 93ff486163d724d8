"""The S3 reads below the stores go through the platform: a recipe's ``s3://`` data source
and an ``s3://`` catalog base model are read by ``modelops.stores.s3`` on the settings'
endpoint, handed to ``domain`` and ``ml`` by the lifecycle steps."""

from __future__ import annotations

import boto3
import pytest
import yaml

from modelops.config.errors import InputError
from modelops.config.fingerprint import sha256_dir
from modelops.config.recipe import load_recipe
from modelops.domain.dataset import prepare_dataset
from modelops.lifecycle.dataset import build_dataset
from modelops.lifecycle.platform import Platform
from modelops.ml.catalog import Catalog
from modelops_tests.fixtures.workspace import make_workspace, write_recipe


@pytest.fixture
def s3_platform(tiny_catalog, tmp_path, s3_bucket):
    endpoint, bucket = s3_bucket
    settings = make_workspace(tmp_path, tiny_catalog, rows=120, s3_endpoint_url=endpoint)
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.upload_file(str(tmp_path / "data" / "requests.csv"), bucket, "in/requests.csv")
    write_recipe(tmp_path, {"data": {"sources": [{"path": f"s3://{bucket}/in/requests.csv"}]}})
    platform = Platform.from_settings(settings)
    yield platform, client, bucket
    platform.registry.close()


def test_the_dataset_step_reads_an_s3_source_on_the_settings_endpoint(s3_platform, tmp_path):
    platform, _, bucket = s3_platform
    loaded = load_recipe(platform.settings.recipes_dir / "demo.yaml")
    record = build_dataset(platform, loaded, emit=lambda _m: None)
    local = load_recipe(
        write_recipe(
            tmp_path / "local",
            {
                "data": {"sources": [{"path": str(tmp_path / "data" / "requests.csv")}]},
                "taxonomy": str(tmp_path / "taxonomies" / "demo" / "v1.yaml"),
            },
        )
    )
    assert record.fingerprint == prepare_dataset(local).fingerprint  # same bytes, same data
    assert record.stats["rows_read"] == 120
    with pytest.raises(InputError, match=r"s3://.*requests\.csv: an s3:// source is read"):
        prepare_dataset(loaded)  # without the platform's reader: refused, naming the file


def test_the_platform_resolves_an_s3_base_model(s3_platform, tiny_base_dir, tmp_path):
    platform, client, bucket = s3_platform
    for file in tiny_base_dir.iterdir():
        client.upload_file(str(file), bucket, f"models/tiny/{file.name}")
    digest = sha256_dir(tiny_base_dir)
    path = tmp_path / "s3-catalog.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "models": [
                    {
                        "name": "tiny",
                        "revision": "r1",
                        "location": f"s3://{bucket}/models/tiny",
                        "sha256": digest,
                    }
                ]
            }
        )
    )
    platform.catalog = Catalog.load(path)
    resolved = platform.resolve_base("tiny@r1")
    assert resolved.sha256 == digest
    assert resolved.path == platform.settings.cache_dir / "base_models" / digest
    assert platform.resolve_base_by_sha256(digest).path == resolved.path
    with pytest.raises(InputError, match=r"tiny@r1: an s3:// base model needs the platform's"):
        Catalog.load(path).resolve("tiny@r1", cache_dir=tmp_path / "other")
