"""The artifact store, on a local directory and on S3 (moto's HTTP server)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import boto3
import pytest

from modelops.config.errors import InputError, IntegrityError, ModelopsError, NotFoundError
from modelops.config.fingerprint import file_manifest, sha256_bytes, sha256_dir, sha256_file
from modelops.stores.artifacts.base import ArtifactStore
from modelops.stores.artifacts.local import LocalArtifactStore
from modelops.stores.artifacts.open_store import open_store
from modelops.stores.artifacts.s3 import S3ArtifactStore


class Backend:
    """A store plus a way to touch its storage behind its back."""

    def __init__(self, store: ArtifactStore, raw_write, raw_read):
        self.store = store
        self.raw_write = raw_write  # (path below the root, bytes): overwrite or create
        self.raw_read = raw_read  # path below the root -> bytes


def _local(tmp_path: Path) -> Backend:
    store = LocalArtifactStore(tmp_path / "store")

    def raw_write(path: str, data: bytes) -> None:
        target = store.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    return Backend(store, raw_write, lambda path: (store.root / path).read_bytes())


def _s3(s3_bucket) -> Backend:
    endpoint, bucket = s3_bucket
    store = open_store(f"s3://{bucket}/team/artifacts", s3_endpoint_url=endpoint)
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")

    def raw_write(path: str, data: bytes) -> None:
        key = f"team/artifacts/{path}"
        try:  # keep whatever metadata the store recorded: only the bytes change
            metadata = client.head_object(Bucket=bucket, Key=key)["Metadata"]
        except client.exceptions.ClientError:
            metadata = {}
        client.put_object(Bucket=bucket, Key=key, Body=data, Metadata=metadata)

    def raw_read(path: str) -> bytes:
        return client.get_object(Bucket=bucket, Key=f"team/artifacts/{path}")["Body"].read()

    return Backend(store, raw_write, raw_read)


@pytest.fixture(params=["local", "s3"])
def backend(request, tmp_path) -> Backend:
    if request.param == "local":
        return _local(tmp_path)
    return _s3(request.getfixturevalue("s3_bucket"))


@pytest.fixture
def adapter_dir(tmp_path) -> Path:
    """A small PEFT-like directory with a nested file."""
    root = tmp_path / "adapter"
    (root / "nested").mkdir(parents=True)
    (root / "adapter_config.json").write_text('{"r": 8}')
    (root / "adapter_model.safetensors").write_bytes(bytes(range(256)) * 40)
    (root / "nested" / "notes.txt").write_text("trained on demo\n")
    return root


# -- round trips -------------------------------------------------------------------------


def test_bytes_round_trip(backend):
    store = backend.store
    ref = store.put_bytes("reports/eval.json", b'{"f1": 0.9}')
    assert ref.sha256 == sha256_bytes(b'{"f1": 0.9}')
    assert ref.size == len(b'{"f1": 0.9}')
    assert ref.key == "reports/eval.json"
    assert ref.uri == store.uri_for("reports/eval.json")
    assert store.get_bytes("reports/eval.json", expected_sha256=ref.sha256) == b'{"f1": 0.9}'
    assert store.exists("reports/eval.json")
    assert not store.exists("reports/other.json")


def test_file_round_trip(backend, tmp_path):
    source = tmp_path / "train.parquet"
    source.write_bytes(os.urandom(3000))
    ref = backend.store.put_file("datasets/abc/train.parquet", source)
    assert ref.sha256 == sha256_file(source)
    assert ref.size == 3000
    dest = backend.store.get_file("datasets/abc/train.parquet", tmp_path / "out" / "t.parquet")
    assert dest == tmp_path / "out" / "t.parquet"
    assert dest.read_bytes() == source.read_bytes()
    assert [p.name for p in dest.parent.iterdir()] == ["t.parquet"]  # no temp file left


def test_dir_round_trip(backend, adapter_dir, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="modelops.stores.artifacts"):
        ref = backend.store.put_dir("adapters/v1", adapter_dir)
    assert any("adapters/v1" in r.getMessage() for r in caplog.records)
    assert ref.sha256 == sha256_dir(adapter_dir)
    assert ref.size == sum(p.stat().st_size for p in adapter_dir.rglob("*") if p.is_file())
    assert backend.store.exists("adapters/v1")
    manifest = json.loads(backend.raw_read("adapters/v1/MANIFEST.json"))
    assert manifest["files"] == file_manifest(adapter_dir)
    assert manifest["sha256"] == ref.sha256

    dest = backend.store.get_dir("adapters/v1", tmp_path / "fetched", expected_sha256=ref.sha256)
    assert file_manifest(dest) == file_manifest(adapter_dir)  # no MANIFEST.json in the copy
    assert [p.name for p in (tmp_path).iterdir() if p.name.startswith(".")] == []
    # fetching again into the same, already complete destination is accepted
    assert backend.store.get_dir("adapters/v1", dest) == dest


# -- integrity -----------------------------------------------------------------------------


def test_tampered_file_is_detected(backend, tmp_path):
    store = backend.store
    ref = store.put_bytes("images/plot.png", b"original")
    backend.raw_write("images/plot.png", b"tampered")
    with pytest.raises(IntegrityError) as caught:
        store.get_bytes("images/plot.png")
    message = str(caught.value)
    assert store.uri_for("images/plot.png") in message
    assert ref.sha256 in message and sha256_bytes(b"tampered") in message
    with pytest.raises(IntegrityError):
        store.get_file("images/plot.png", tmp_path / "plot.png")
    assert not (tmp_path / "plot.png").exists()


def test_tampered_dir_file_is_detected(backend, adapter_dir, tmp_path):
    backend.store.put_dir("adapters/v1", adapter_dir)
    backend.raw_write("adapters/v1/nested/notes.txt", b"rewritten")
    with pytest.raises(IntegrityError, match="nested/notes.txt"):
        backend.store.get_dir("adapters/v1", tmp_path / "fetched")
    assert not (tmp_path / "fetched").exists()


def test_tampered_manifest_is_detected(backend, adapter_dir, tmp_path):
    backend.store.put_dir("adapters/v1", adapter_dir)
    manifest = json.loads(backend.raw_read("adapters/v1/MANIFEST.json"))
    manifest["files"]["nested/notes.txt"] = sha256_bytes(b"something else")
    backend.raw_write("adapters/v1/MANIFEST.json", json.dumps(manifest).encode())
    with pytest.raises(IntegrityError, match="MANIFEST.json"):
        backend.store.get_dir("adapters/v1", tmp_path / "fetched")


def test_manifest_with_an_escaping_path_is_refused(backend, adapter_dir, tmp_path):
    from modelops.config.fingerprint import sha256_manifest

    backend.store.put_dir("adapters/v1", adapter_dir)
    files = {"../../escaped.txt": sha256_bytes(b"x")}
    manifest = {"files": files, "sha256": sha256_manifest(files), "size": 1}
    backend.raw_write("adapters/v1/MANIFEST.json", json.dumps(manifest).encode())
    with pytest.raises(IntegrityError, match="unsafe path"):
        backend.store.get_dir("adapters/v1", tmp_path / "a" / "b" / "fetched")
    assert not list(tmp_path.rglob("escaped.txt"))


def test_expected_sha256_mismatch(backend, adapter_dir, tmp_path):
    store = backend.store
    wrong = sha256_bytes(b"not it")
    store.put_bytes("blob", b"payload")
    store.put_dir("dir", adapter_dir)
    with pytest.raises(IntegrityError, match=wrong):
        store.get_bytes("blob", expected_sha256=wrong)
    with pytest.raises(IntegrityError, match=wrong):
        store.get_file("blob", tmp_path / "blob", expected_sha256=wrong)
    with pytest.raises(IntegrityError, match=wrong):
        store.get_dir("dir", tmp_path / "dir", expected_sha256=wrong)
    assert not (tmp_path / "blob").exists() and not (tmp_path / "dir").exists()


def test_missing_key_is_not_found(backend, tmp_path):
    store = backend.store
    uri = store.uri_for("nothing/here")
    assert not store.exists("nothing/here")
    for read in (
        lambda: store.get_bytes("nothing/here"),
        lambda: store.get_file("nothing/here", tmp_path / "f"),
        lambda: store.get_dir("nothing/here", tmp_path / "d"),
    ):
        with pytest.raises(NotFoundError, match=uri):
            read()


def test_dir_without_manifest_is_absent(backend, adapter_dir, tmp_path):
    # a crash after the files were written but before the manifest
    backend.raw_write("adapters/v1/adapter_config.json", b'{"r": 4}')
    backend.raw_write("adapters/v1/nested/notes.txt", b"half")
    store = backend.store
    assert not store.exists("adapters/v1")
    with pytest.raises(NotFoundError):
        store.get_dir("adapters/v1", tmp_path / "fetched")
    # a new write over the leftovers commits normally
    ref = store.put_dir("adapters/v1", adapter_dir)
    assert ref.sha256 == sha256_dir(adapter_dir)
    dest = store.get_dir("adapters/v1", tmp_path / "fetched")
    assert file_manifest(dest) == file_manifest(adapter_dir)


def test_interrupted_dir_write_is_absent_then_recoverable(
    backend, adapter_dir, tmp_path, monkeypatch
):
    from modelops.stores.artifacts import local, s3

    def crash(value):
        raise OSError("killed before the manifest")

    for backend_module in (local, s3):
        monkeypatch.setattr(backend_module, "canonical_json", crash)
    with pytest.raises(OSError):
        backend.store.put_dir("adapters/v1", adapter_dir)
    monkeypatch.undo()
    assert not backend.store.exists("adapters/v1")
    with pytest.raises(NotFoundError):
        backend.store.get_dir("adapters/v1", tmp_path / "fetched")
    ref = backend.store.put_dir("adapters/v1", adapter_dir)
    dest = backend.store.get_dir("adapters/v1", tmp_path / "fetched", expected_sha256=ref.sha256)
    assert file_manifest(dest) == file_manifest(adapter_dir)


def test_file_of_a_stored_dir_is_not_a_key(backend, adapter_dir):
    backend.store.put_dir("adapters/v1", adapter_dir)
    assert not backend.store.exists("adapters/v1/adapter_config.json")
    with pytest.raises(ModelopsError, match="stored directory"):
        backend.store.put_bytes("adapters/v1/extra.txt", b"more")


# -- never lose what is stored -------------------------------------------------------------


def test_refuses_to_overwrite_with_different_content(backend, adapter_dir, tmp_path):
    store = backend.store
    store.put_bytes("blob", b"first")
    with pytest.raises(ModelopsError, match="refusing"):
        store.put_bytes("blob", b"second")
    other = tmp_path / "other.bin"
    other.write_bytes(b"third")
    with pytest.raises(ModelopsError, match="refusing"):
        store.put_file("blob", other)
    assert store.get_bytes("blob") == b"first"

    ref = store.put_dir("dir", adapter_dir)
    (adapter_dir / "nested" / "notes.txt").write_text("changed")
    with pytest.raises(ModelopsError, match="refusing"):
        store.put_dir("dir", adapter_dir)
    with pytest.raises(ModelopsError):
        store.put_bytes("dir", b"a file where a directory is")
    with pytest.raises(ModelopsError):
        store.put_dir("blob", adapter_dir)
    assert store.get_dir("dir", tmp_path / "d", expected_sha256=ref.sha256)


def test_same_content_write_is_idempotent(backend, adapter_dir, tmp_path):
    store = backend.store
    first = store.put_bytes("blob", b"same")
    copy = tmp_path / "same.bin"
    copy.write_bytes(b"same")
    assert store.put_bytes("blob", b"same") == first
    assert store.put_file("blob", copy) == first
    ref = store.put_dir("dir", adapter_dir)
    assert store.put_dir("dir", adapter_dir) == ref
    assert store.get_bytes("blob") == b"same"


# -- keys and URIs ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "key", ["", "/etc/passwd", "../up", "a/../../b", "a//b", "a/./b", "a/", "x.sha256"]
)
def test_bad_keys_are_rejected(backend, key, tmp_path):
    store = backend.store
    for call in (
        lambda: store.put_bytes(key, b"x"),
        lambda: store.get_bytes(key),
        lambda: store.get_file(key, tmp_path / "f"),
        lambda: store.exists(key),
        lambda: store.uri_for(key),
    ):
        with pytest.raises(InputError) as caught:
            call()
        assert caught.value.where == "key"


def test_uri_for_and_key_for_round_trip(backend):
    store = backend.store
    for key in ("blob", "datasets/abc/train.parquet"):
        uri = store.uri_for(key)
        assert uri.startswith(store.root_uri + "/")
        assert store.key_for(uri) == key
    for outside in (store.root_uri, store.root_uri + "x/blob", "s3://elsewhere/blob", "/tmp/b"):
        with pytest.raises(InputError):
            store.key_for(outside)
    with pytest.raises(InputError):
        store.key_for(store.root_uri + "/a/../../b")


def test_open_store_picks_the_backend(tmp_path):
    local = open_store(str(tmp_path / "arts"))
    assert isinstance(local, LocalArtifactStore)
    assert local.root_uri == str(tmp_path / "arts")
    assert local.uri_for("a/b") == f"{tmp_path}/arts/a/b"

    s3 = open_store("s3://bucket-x/some/prefix/", s3_endpoint_url="http://127.0.0.1:9")
    assert isinstance(s3, S3ArtifactStore)
    assert (s3.bucket, s3.prefix) == ("bucket-x", "some/prefix")
    assert s3.uri_for("a/b") == "s3://bucket-x/some/prefix/a/b"
    assert open_store("s3://bucket-x").uri_for("k") == "s3://bucket-x/k"
    with pytest.raises(InputError):
        open_store("s3://")


# -- local atomicity ---------------------------------------------------------------------


def test_local_crash_mid_write_leaves_nothing(tmp_path, monkeypatch, adapter_dir):
    store = LocalArtifactStore(tmp_path / "store")

    def crash(fd):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError):
        store.put_bytes("a/blob", b"data")
    with pytest.raises(OSError):
        store.put_dir("a/dir", adapter_dir)
    monkeypatch.undo()
    assert not store.exists("a/blob") and not store.exists("a/dir")
    assert [p for p in store.root.rglob("*") if p.is_file()] == []
    assert store.put_bytes("a/blob", b"data").sha256 == sha256_bytes(b"data")


def test_local_get_dir_does_not_replace_other_content(tmp_path, adapter_dir):
    store = LocalArtifactStore(tmp_path / "store")
    store.put_dir("dir", adapter_dir)
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "mine.txt").write_text("keep me")
    with pytest.raises(ModelopsError, match="already exists"):
        store.get_dir("dir", dest)
    assert (dest / "mine.txt").read_text() == "keep me"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert file_manifest(store.get_dir("dir", empty)) == file_manifest(adapter_dir)
