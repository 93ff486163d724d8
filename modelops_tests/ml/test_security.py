"""Security of what the platform loads: S3 base-model keys and hashes checked before
anything lands in the cache, and only safetensors weights (nothing unpickled)."""

from __future__ import annotations

import shutil
from functools import partial

import boto3
import pytest
import torch
import yaml

from modelops.config.errors import IntegrityError
from modelops.config.fingerprint import sha256_dir
from modelops.ml.catalog import Catalog
from modelops.ml.model import load_base, load_classifier
from modelops.stores.s3 import download_base_model


def from_s3(endpoint):
    """The S3 download the platform hands the catalog, on the test's endpoint."""
    return partial(download_base_model, endpoint_url=endpoint)


def s3_catalog(tmp_path, bucket, prefix, digest):
    path = tmp_path / "catalog.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "models": [
                    {
                        "name": "tiny",
                        "revision": "r1",
                        "location": f"s3://{bucket}/{prefix}",
                        "sha256": digest,
                    }
                ]
            }
        )
    )
    return path


def upload(client, bucket, prefix, directory):
    for file in directory.iterdir():
        client.upload_file(str(file), bucket, f"{prefix}/{file.name}")


def leftovers(cache):
    folder = cache / "base_models"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_a_key_escaping_the_cache_is_refused_before_any_write(tiny_base_dir, tmp_path, s3_bucket):
    endpoint, bucket = s3_bucket
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    upload(client, bucket, "models/evil", tiny_base_dir)
    client.put_object(Bucket=bucket, Key="models/evil/../../../escaped.txt", Body=b"x")
    catalog = Catalog.load(s3_catalog(tmp_path, bucket, "models/evil", sha256_dir(tiny_base_dir)))
    cache = tmp_path / "cache"
    with pytest.raises(IntegrityError, match=r"key '\.\./\.\./\.\./escaped\.txt' is not a safe"):
        catalog.resolve("tiny@r1", cache_dir=cache, s3_download=from_s3(endpoint))
    assert leftovers(cache) == []
    assert not list(tmp_path.rglob("escaped.txt"))


def test_a_download_failing_its_hash_is_not_cached_and_a_fixed_one_installs(
    tiny_base_dir, tmp_path, s3_bucket
):
    endpoint, bucket = s3_bucket
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    upload(client, bucket, "models/tiny", tiny_base_dir)
    client.put_object(Bucket=bucket, Key="models/tiny/config.json", Body=b"{}")  # corrupted
    digest = sha256_dir(tiny_base_dir)
    cache = tmp_path / "cache"
    with pytest.raises(IntegrityError, match="nothing was cached"):
        Catalog.load(s3_catalog(tmp_path, bucket, "models/tiny", digest)).resolve(
            "tiny@r1", cache_dir=cache, s3_download=from_s3(endpoint)
        )
    assert leftovers(cache) == []  # no partial or unverified copy blocks the next try

    upload(client, bucket, "models/tiny", tiny_base_dir)  # the bucket is repaired
    resolved = Catalog.load(s3_catalog(tmp_path, bucket, "models/tiny", digest)).resolve(
        "tiny@r1", cache_dir=cache, s3_download=from_s3(endpoint)
    )
    assert resolved.sha256 == digest and leftovers(cache) == [digest]

    # A cached copy altered on disk is fetched again, not trusted.
    (resolved.path / "config.json").write_text("{}")
    again = Catalog.load(s3_catalog(tmp_path, bucket, "models/tiny", digest)).resolve(
        "tiny@r1", cache_dir=cache, s3_download=from_s3(endpoint)
    )
    assert sha256_dir(again.path) == digest


def test_a_base_with_only_pickled_weights_is_refused(tiny_base_dir, tmp_path):
    pickled = tmp_path / "pickled"
    shutil.copytree(tiny_base_dir, pickled)
    weights = next(pickled.glob("*.safetensors"))
    from safetensors.torch import load_file

    torch.save(load_file(str(weights)), pickled / "pytorch_model.bin")
    weights.unlink()
    with pytest.raises(IntegrityError, match=r"no safetensors weights \(found pytorch_model\.bin"):
        load_base(pickled)


def test_an_adapter_holding_a_pickle_is_refused(tiny_base_dir, tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    torch.save({"x": torch.zeros(1)}, adapter / "adapter_model.bin")
    with pytest.raises(IntegrityError, match=r"adapter_model\.bin would need unpickling"):
        load_classifier(adapter, tiny_base_dir)
    (adapter / "adapter_model.bin").unlink()
    with pytest.raises(
        IntegrityError,
        match=r"adapter_model\.safetensors, head\.safetensors "
        "missing",
    ):
        load_classifier(adapter, tiny_base_dir)
