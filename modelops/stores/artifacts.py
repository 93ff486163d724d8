"""The artifact store: datasets, adapters, evaluation reports and images.

Two backends share one interface: a local directory (the default) and S3 (any S3 server:
AWS, MinIO). Every object is stored with its sha256 and verified on every read; writes are
atomic and never replace stored content with different content.

Layout, with the same keys on both backends:

- a file ``key``: local ``<root>/<key>`` plus ``<root>/<key>.sha256`` (the commit marker,
  written last); on S3 the object ``<prefix>/<key>`` with metadata ``sha256``, one put.
- a directory ``key``: its files under ``<key>/`` and ``<key>/MANIFEST.json``
  (``{"files": {relpath: sha256}, "sha256": ..., "size": ...}``), the commit marker, written
  last. Locally the whole tree is built in a temporary sibling and renamed into place.

Keys are relative posix paths; the last part of a key may not be ``MANIFEST.json`` nor end
in ``.sha256`` (both are the store's own markers).
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import io
import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from modelops.config.errors import InputError, IntegrityError, ModelopsError, NotFoundError
from modelops.config.fingerprint import (
    canonical_json,
    file_manifest,
    sha256_bytes,
    sha256_dir,
    sha256_file,
    sha256_manifest,
)

log = logging.getLogger(__name__)

MANIFEST = "MANIFEST.json"
_SIDECAR = ".sha256"
_DIR_MARK = "modelops-dir"
"""S3 metadata on the files of a directory: they are not keys of their own."""


def _is_committed_file(head: dict[str, Any] | None) -> bool:
    """Whether an S3 head is a stored file: sha256 recorded, not part of a directory.

    Like a local file without its ``.sha256`` marker, an object without it is a leftover.
    """
    return head is not None and "sha256" in head["Metadata"] and _DIR_MARK not in head["Metadata"]


_CHUNK = 1 << 20


@dataclass(frozen=True)
class ArtifactRef:
    """Where an artifact is stored and what it holds."""

    uri: str
    """Full URI: ``/abs/path/key`` or ``s3://bucket/prefix/key``."""
    key: str
    """The key relative to the store root."""
    sha256: str
    """A file: sha256 of its bytes; a directory: ``sha256_manifest`` of its files."""
    size: int
    """Bytes (the sum over its files for a directory)."""


class ArtifactStore(abc.ABC):
    """Content stored under keys, sha256-verified, written atomically, never overwritten."""

    root_uri: str

    @abc.abstractmethod
    def put_bytes(self, key: str, data: bytes) -> ArtifactRef:
        """Store ``data`` under ``key``; identical content already there is a no-op."""

    @abc.abstractmethod
    def put_file(self, key: str, path: Path) -> ArtifactRef:
        """Store the file at ``path`` under ``key``; identical content already there is a no-op."""

    @abc.abstractmethod
    def put_dir(self, key: str, directory: Path) -> ArtifactRef:
        """Store every file below ``directory`` under ``key``, the manifest last."""

    @abc.abstractmethod
    def get_bytes(self, key: str, expected_sha256: str | None = None) -> bytes:
        """The verified bytes stored under ``key``."""

    @abc.abstractmethod
    def get_file(self, key: str, dest: Path, expected_sha256: str | None = None) -> Path:
        """Write the verified file stored under ``key`` to ``dest`` (atomically); return it."""

    @abc.abstractmethod
    def get_dir(self, key: str, dest: Path, expected_sha256: str | None = None) -> Path:
        """Write the verified directory stored under ``key`` to ``dest`` (atomically).

        ``dest`` must not exist, or be empty, or already hold exactly that content.
        """

    @abc.abstractmethod
    def exists(self, key: str) -> bool:
        """Whether a file or a committed directory is stored under ``key``."""

    def uri_for(self, key: str) -> str:
        """The full URI of ``key`` in this store."""
        return f"{self.root_uri}/{_check_key(key)}"

    def key_for(self, uri: str) -> str:
        """The key of ``uri``: the inverse of :meth:`uri_for`.

        Raises ``InputError`` when the uri is outside this store.
        """
        prefix = f"{self.root_uri}/"
        if not uri.startswith(prefix):
            raise InputError(uri, None, f"not inside the artifact store {self.root_uri}")
        try:
            return _check_key(uri[len(prefix) :])
        except InputError as exc:
            raise InputError(uri, None, f"not a key of {self.root_uri}: {exc.message}") from None


def open_store(uri: str, *, s3_endpoint_url: str | None = None) -> ArtifactStore:
    """The store at ``uri``: ``s3://bucket/prefix`` for S3, anything else a local directory."""
    if uri.startswith("s3://"):
        bucket, prefix = split_s3_uri(uri)
        if not bucket:
            raise InputError(uri, None, "an S3 artifact store needs s3://bucket[/prefix]")
        return S3ArtifactStore(bucket, prefix, endpoint_url=s3_endpoint_url)
    return LocalArtifactStore(Path(uri))


# ---------------------------------------------------------------------------------------
# Local directory


class LocalArtifactStore(ArtifactStore):
    """Artifacts in a local directory; each write is a temp file or dir, fsync, rename."""

    def __init__(self, root: Path):
        self.root = Path(os.path.abspath(root))
        self.root_uri = str(self.root)

    # -- writes ----------------------------------------------------------------------------

    def put_bytes(self, key: str, data: bytes) -> ArtifactRef:
        return self._put_stream(key, io.BytesIO(data), sha256_bytes(data))

    def put_file(self, key: str, path: Path) -> ArtifactRef:
        _check_key(key)
        path = Path(path)
        if not path.is_file():
            raise InputError(str(path), None, "not a file")
        with open(path, "rb") as source:
            return self._put_stream(key, source, sha256_file(path))

    def _put_stream(self, key: str, source: BinaryIO, sha: str) -> ArtifactRef:
        target = self._path(key)
        uri = str(target)
        self._check_ancestors(key)
        if target.is_dir():
            raise ModelopsError(f"{uri}: a directory is stored there; refusing to write a file")
        sidecar = _sidecar(target)
        if sidecar.is_file():
            return self._existing_file(key, sha)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = _tmp_sibling(target)
        try:
            written, size = _copy_hashing(source, tmp)
            if written != sha:
                raise ModelopsError(f"{uri}: the source changed while being stored")
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        _write_new(sidecar, f"{sha}\n".encode())  # the commit marker, last
        _fsync_dir(target.parent)
        return ArtifactRef(uri=uri, key=key, sha256=sha, size=size)

    def _existing_file(self, key: str, sha: str) -> ArtifactRef:
        target = self._path(key)
        stored = _sidecar(target).read_text().strip()
        if stored != sha:
            raise ModelopsError(
                f"{target}: already stored with sha256 {stored}; refusing to replace it "
                f"with different content (sha256 {sha})"
            )
        return ArtifactRef(uri=str(target), key=key, sha256=sha, size=target.stat().st_size)

    def put_dir(self, key: str, directory: Path) -> ArtifactRef:
        target = self._path(key)
        uri = str(target)
        files, sha, size = _source_manifest(Path(directory))
        self._check_ancestors(key)
        if (target / MANIFEST).is_file():
            return _same_dir(uri, key, self._read_manifest(key), sha)
        if target.exists() and not target.is_dir():
            raise ModelopsError(f"{uri}: a file is stored there; refusing to write a directory")
        if _sidecar(target).exists():
            raise ModelopsError(f"{uri}: a file is stored there; refusing to write a directory")
        log.info(
            "storing directory %s (%d files, %d bytes) at %s", directory, len(files), size, uri
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = _tmp_sibling(target)
        try:
            tmp.mkdir()
            for rel, file_sha in files.items():
                dest = tmp / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                with open(Path(directory) / rel, "rb") as source:
                    written, _ = _copy_hashing(source, dest)
                if written != file_sha:
                    raise ModelopsError(f"{uri}: {rel} changed while being stored")
            manifest = {"files": files, "sha256": sha, "size": size}
            _write_new(tmp / MANIFEST, canonical_json(manifest))  # the commit marker, last
            for sub in sorted({(tmp / rel).parent for rel in files} | {tmp}):
                _fsync_dir(sub)
            self._clear_uncommitted(target)
            try:
                os.rename(tmp, target)
            except OSError:
                if not (target / MANIFEST).is_file():
                    raise
                # another writer committed first
                return _same_dir(uri, key, self._read_manifest(key), sha)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)
        _fsync_dir(target.parent)
        log.info("stored directory %s (sha256 %s)", uri, sha)
        return ArtifactRef(uri=uri, key=key, sha256=sha, size=size)

    def _clear_uncommitted(self, target: Path) -> None:
        """Remove what a crashed writer left at ``target``, unless it holds other artifacts."""
        if not target.exists():
            return
        held = [p for p in target.rglob("*") if p.name == MANIFEST or p.name.endswith(_SIDECAR)]
        if held:
            raise ModelopsError(
                f"{target}: holds other artifacts ({held[0]}); refusing to replace it"
            )
        log.info("removing the uncommitted directory %s left by an interrupted write", target)
        trash = _tmp_sibling(target)
        os.rename(target, trash)
        shutil.rmtree(trash)

    def _check_ancestors(self, key: str) -> None:
        parts = key.split("/")
        for i in range(1, len(parts)):
            ancestor = self.root.joinpath(*parts[:i])
            if (ancestor / MANIFEST).is_file():
                raise ModelopsError(
                    f"{self.root_uri}/{key}: inside the stored directory {ancestor}; "
                    "stored directories are never modified"
                )
            if ancestor.exists() and not ancestor.is_dir():
                raise ModelopsError(f"{self.root_uri}/{key}: {ancestor} is a stored file")

    # -- reads -----------------------------------------------------------------------------

    def get_bytes(self, key: str, expected_sha256: str | None = None) -> bytes:
        target = self._committed_file(key)
        data = target.read_bytes()
        _verify(str(target), sha256_bytes(data), _sidecar(target).read_text().strip())
        _verify_expected(str(target), sha256_bytes(data), expected_sha256)
        return data

    def get_file(self, key: str, dest: Path, expected_sha256: str | None = None) -> Path:
        target = self._committed_file(key)
        stored = _sidecar(target).read_text().strip()
        with open(target, "rb") as source:
            return _install_file(source, Path(dest), str(target), stored, expected_sha256)

    def get_dir(self, key: str, dest: Path, expected_sha256: str | None = None) -> Path:
        uri = self.uri_for(key)
        files, sha, size = self._read_manifest(key)
        _verify_expected(uri, sha, expected_sha256)
        source = self._path(key)

        def fetch(rel: str, out: Path) -> str:
            with open(source / rel, "rb") as handle:
                return _copy_hashing(handle, out)[0]

        return _install_dir(uri, files, sha, size, Path(dest), fetch)

    def exists(self, key: str) -> bool:
        target = self._path(key)
        if target.is_dir():
            return (target / MANIFEST).is_file()
        return target.is_file() and _sidecar(target).is_file()

    def _committed_file(self, key: str) -> Path:
        target = self._path(key)
        if not (target.is_file() and _sidecar(target).is_file()):
            raise NotFoundError(f"{target}: no such artifact")
        return target

    def _read_manifest(self, key: str) -> tuple[dict[str, str], str, int]:
        path = self._path(key) / MANIFEST
        if not path.is_file():
            raise NotFoundError(f"{self.uri_for(key)}: no such artifact directory")
        return _parse_manifest(self.uri_for(key), path.read_bytes())

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*_check_key(key).split("/"))


# ---------------------------------------------------------------------------------------
# S3


class S3ArtifactStore(ArtifactStore):
    """Artifacts in an S3 bucket under a prefix; credentials from the standard AWS chain."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        client: Any | None = None,
    ):
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.root_uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.client = client or s3_client(endpoint_url, region_name)

    # -- writes ----------------------------------------------------------------------------

    def put_bytes(self, key: str, data: bytes) -> ArtifactRef:
        sha = sha256_bytes(data)
        existing = self._check_file_target(key, sha, len(data))
        if existing is not None:
            return existing
        with self._errors(key):
            self.client.put_object(
                Bucket=self.bucket, Key=self._obj(key), Body=data, Metadata={"sha256": sha}
            )
        return ArtifactRef(uri=self.uri_for(key), key=key, sha256=sha, size=len(data))

    def put_file(self, key: str, path: Path) -> ArtifactRef:
        _check_key(key)
        path = Path(path)
        if not path.is_file():
            raise InputError(str(path), None, "not a file")
        sha, size = sha256_file(path), path.stat().st_size
        existing = self._check_file_target(key, sha, size)
        if existing is not None:
            return existing
        with self._errors(key):
            self.client.upload_file(
                str(path), self.bucket, self._obj(key), ExtraArgs={"Metadata": {"sha256": sha}}
            )
        return ArtifactRef(uri=self.uri_for(key), key=key, sha256=sha, size=size)

    def _check_file_target(self, key: str, sha: str, size: int) -> ArtifactRef | None:
        """The ref when ``key`` already holds this content; raise when it holds other content."""
        uri = self.uri_for(key)
        self._check_ancestors(key)
        if self._head(f"{key}/{MANIFEST}") is not None:
            raise ModelopsError(f"{uri}: a directory is stored there; refusing to write a file")
        head = self._head(key)
        if not _is_committed_file(head):
            return None  # absent, or left by a write that never committed
        stored = head["Metadata"]["sha256"]
        if stored != sha:
            raise ModelopsError(
                f"{uri}: already stored with sha256 {stored}; refusing to replace it "
                f"with different content (sha256 {sha})"
            )
        return ArtifactRef(uri=uri, key=key, sha256=sha, size=size)

    def put_dir(self, key: str, directory: Path) -> ArtifactRef:
        uri = self.uri_for(key)
        files, sha, size = _source_manifest(Path(directory))
        self._check_ancestors(key)
        manifest_head = self._head(f"{key}/{MANIFEST}")
        if manifest_head is not None:
            return _same_dir(uri, key, self._read_manifest(key), sha)
        head = self._head(key)
        if _is_committed_file(head):
            raise ModelopsError(f"{uri}: a file is stored there; refusing to write a directory")
        self._check_uncommitted(key)
        log.info(
            "uploading directory %s (%d files, %d bytes) to %s", directory, len(files), size, uri
        )
        for rel, file_sha in files.items():
            with self._errors(f"{key}/{rel}"):
                self.client.upload_file(
                    str(Path(directory) / rel),
                    self.bucket,
                    self._obj(f"{key}/{rel}"),
                    ExtraArgs={"Metadata": {"sha256": file_sha, _DIR_MARK: key}},
                )
        manifest = {"files": files, "sha256": sha, "size": size}
        with self._errors(key):  # the commit marker, last
            self.client.put_object(
                Bucket=self.bucket,
                Key=self._obj(f"{key}/{MANIFEST}"),
                Body=canonical_json(manifest),
                Metadata={_DIR_MARK: key},
            )
        log.info("uploaded directory %s (sha256 %s)", uri, sha)
        return ArtifactRef(uri=uri, key=key, sha256=sha, size=size)

    def _check_uncommitted(self, key: str) -> None:
        """Refuse when objects under ``key/`` are artifacts of their own, not crash leftovers."""
        base = f"{self._obj(key)}/"
        with self._errors(key):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=base
            )
            objects = [obj["Key"] for page in pages for obj in page.get("Contents", [])]
        for obj in objects:
            rel = obj[len(base) :]
            nested_dir = rel.split("/")[-1] == MANIFEST
            if nested_dir or _is_committed_file(self._head(f"{key}/{rel}")):
                raise ModelopsError(
                    f"{self.uri_for(key)}: holds other artifacts (s3://{self.bucket}/{obj}); "
                    "refusing to write a directory there"
                )

    def _check_ancestors(self, key: str) -> None:
        parts = key.split("/")
        for i in range(1, len(parts)):
            ancestor = "/".join(parts[:i])
            if self._head(f"{ancestor}/{MANIFEST}") is not None:
                raise ModelopsError(
                    f"{self.uri_for(key)}: inside the stored directory {self.uri_for(ancestor)}; "
                    "stored directories are never modified"
                )

    # -- reads -----------------------------------------------------------------------------

    def get_bytes(self, key: str, expected_sha256: str | None = None) -> bytes:
        uri = self.uri_for(key)
        with self._errors(key):
            response = self.client.get_object(Bucket=self.bucket, Key=self._obj(key))
            stored = self._recorded_sha(uri, response["Metadata"])
            data = response["Body"].read()
        _verify(uri, sha256_bytes(data), stored)
        _verify_expected(uri, sha256_bytes(data), expected_sha256)
        return data

    def get_file(self, key: str, dest: Path, expected_sha256: str | None = None) -> Path:
        uri = self.uri_for(key)
        with self._errors(key):
            response = self.client.get_object(Bucket=self.bucket, Key=self._obj(key))
            stored = self._recorded_sha(uri, response["Metadata"])
            return _install_file(response["Body"], Path(dest), uri, stored, expected_sha256)

    def get_dir(self, key: str, dest: Path, expected_sha256: str | None = None) -> Path:
        uri = self.uri_for(key)
        files, sha, size = self._read_manifest(key)
        _verify_expected(uri, sha, expected_sha256)

        def fetch(rel: str, out: Path) -> str:
            with self._errors(f"{key}/{rel}"):
                response = self.client.get_object(Bucket=self.bucket, Key=self._obj(f"{key}/{rel}"))
                return _copy_hashing(response["Body"], out)[0]

        log.info("downloading directory %s (%d files, %d bytes) to %s", uri, len(files), size, dest)
        return _install_dir(uri, files, sha, size, Path(dest), fetch)

    def exists(self, key: str) -> bool:
        head = self._head(_check_key(key))
        if _is_committed_file(head):
            return True
        return self._head(f"{key}/{MANIFEST}") is not None

    def _recorded_sha(self, uri: str, metadata: dict[str, str]) -> str:
        if _DIR_MARK in metadata:
            raise NotFoundError(f"{uri}: no such artifact (a file of a stored directory)")
        if "sha256" not in metadata:
            raise NotFoundError(f"{uri}: no such artifact (an object without a recorded sha256)")
        return metadata["sha256"]

    def _read_manifest(self, key: str) -> tuple[dict[str, str], str, int]:
        uri = self.uri_for(key)
        try:
            with self._errors(key):
                response = self.client.get_object(
                    Bucket=self.bucket, Key=self._obj(f"{key}/{MANIFEST}")
                )
                raw = response["Body"].read()
        except NotFoundError:
            raise NotFoundError(f"{uri}: no such artifact directory") from None
        return _parse_manifest(uri, raw)

    def _head(self, path: str) -> dict[str, Any] | None:
        """The object's head, or None when there is no object at ``path`` (below the root)."""
        from botocore.exceptions import ClientError

        try:
            with self._errors(path):
                return self.client.head_object(Bucket=self.bucket, Key=self._obj(path))
        except NotFoundError as exc:
            if isinstance(exc.__cause__, ClientError):
                return None
            raise

    def _obj(self, path: str) -> str:
        """The S3 object key of ``path`` (a checked key, or a path below one)."""
        return f"{self.prefix}/{path}" if self.prefix else path

    def _errors(self, key: str) -> contextlib.AbstractContextManager[None]:
        """Turn boto errors into ``NotFoundError`` or ``ModelopsError`` naming the uri."""
        return s3_errors(f"s3://{self.bucket}/{self._obj(key)}", "artifact")


def s3_client(endpoint_url: str | None = None, region_name: str | None = None) -> Any:
    """A boto3 S3 client: credentials from the standard AWS chain, ``endpoint_url`` for
    MinIO and other S3 servers (``MODELOPS_S3_ENDPOINT_URL``)."""
    import boto3

    return boto3.client("s3", endpoint_url=endpoint_url, region_name=region_name)


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``(bucket, prefix)`` of ``s3://bucket/prefix``, the prefix without end slashes."""
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    return bucket, prefix.strip("/")


@contextlib.contextmanager
def s3_errors(uri: str, what: str = "object") -> Iterator[None]:
    """Turn boto errors into ``NotFoundError`` (``no such <what>``) or ``ModelopsError``,
    both naming ``uri``."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in {"404", "NoSuchKey", "NotFound"}:
            raise NotFoundError(f"{uri}: no such {what}") from exc
        raise ModelopsError(f"{uri}: S3 error {code}: {exc}") from exc
    except BotoCoreError as exc:
        raise ModelopsError(f"{uri}: S3 error: {exc}") from exc


# ---------------------------------------------------------------------------------------
# Shared helpers


def _check_key(key: str) -> str:
    """``key`` when it is a relative posix path without ``..``; else ``InputError``."""
    if not isinstance(key, str) or not key:
        raise InputError(None, "key", "must be a non-empty relative path")
    if key.startswith("/") or "\\" in key or "\0" in key:
        raise InputError(None, "key", f"{key!r}: must be a relative posix path")
    parts = key.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise InputError(None, "key", f"{key!r}: no empty, '.' or '..' parts allowed")
    if parts[-1] == MANIFEST or parts[-1].endswith(_SIDECAR):
        raise InputError(
            None, "key", f"{key!r}: {MANIFEST} and *{_SIDECAR} are reserved by the store"
        )
    return key


def _source_manifest(directory: Path) -> tuple[dict[str, str], str, int]:
    """``(files, sha256, size)`` of a directory about to be stored."""
    if not directory.is_dir():
        raise InputError(str(directory), None, "not a directory")
    files = file_manifest(directory)
    if MANIFEST in files:
        raise InputError(str(directory / MANIFEST), None, "the name is reserved by the store")
    size = sum((directory / rel).stat().st_size for rel in files)
    return files, sha256_manifest(files), size


def _parse_manifest(uri: str, raw: bytes) -> tuple[dict[str, str], str, int]:
    """``(files, sha256, size)`` from a stored manifest, checked for consistency."""
    try:
        doc = json.loads(raw)
        files, sha, size = doc["files"], doc["sha256"], doc["size"]
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"{uri}/{MANIFEST}: unreadable manifest ({exc})") from None
    if not isinstance(files, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in files.items()
    ):
        raise IntegrityError(f"{uri}/{MANIFEST}: files: must map paths to sha256")
    for rel in files:
        parts = rel.split("/")
        if rel.startswith("/") or "\\" in rel or any(p in ("", ".", "..") for p in parts):
            raise IntegrityError(f"{uri}/{MANIFEST}: files: unsafe path {rel!r}")
    _verify(f"{uri}/{MANIFEST}", sha256_manifest(files), sha)
    return files, sha, int(size)


def _same_dir(uri: str, key: str, stored: tuple[dict[str, str], str, int], sha: str) -> ArtifactRef:
    """The ref of an already stored directory when its content is ``sha``; else raise."""
    _, stored_sha, size = stored
    if stored_sha != sha:
        raise ModelopsError(
            f"{uri}: a directory is already stored with sha256 {stored_sha}; refusing to "
            f"replace it with different content (sha256 {sha})"
        )
    return ArtifactRef(uri=uri, key=key, sha256=sha, size=size)


def _verify(uri: str, actual: str, recorded: str) -> None:
    if actual != recorded:
        raise IntegrityError(f"{uri}: sha256 mismatch: recorded {recorded}, content {actual}")


def _verify_expected(uri: str, actual: str, expected: str | None) -> None:
    if expected is not None and actual != expected:
        raise IntegrityError(f"{uri}: sha256 mismatch: expected {expected}, content {actual}")


def _install_file(
    source: BinaryIO, dest: Path, uri: str, recorded: str, expected: str | None
) -> Path:
    """Copy ``source`` to a temp file beside ``dest``, verify it, then rename it to ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(dest)
    try:
        actual, _ = _copy_hashing(source, tmp)
        _verify(uri, actual, recorded)
        _verify_expected(uri, actual, expected)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _install_dir(
    uri: str,
    files: dict[str, str],
    sha: str,
    size: int,
    dest: Path,
    fetch: Callable[[str, Path], str],
) -> Path:
    """Fetch every file of a manifest into a temp dir beside ``dest``, verify, rename.

    ``fetch(rel, out) -> sha256`` writes one file. An existing ``dest`` is accepted only
    when empty or already holding exactly this content.
    """
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        if dest.is_dir() and sha256_dir(dest) == sha:
            return dest
        raise ModelopsError(f"{dest}: already exists with other content; not replacing it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(dest)
    try:
        tmp.mkdir()
        for rel, file_sha in files.items():
            out = tmp / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            _verify(f"{uri}/{rel}", fetch(rel, out), file_sha)
        if dest.is_dir():
            dest.rmdir()  # empty, checked above
        os.rename(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    log.info("fetched directory %s (%d files, %d bytes) to %s", uri, len(files), size, dest)
    return dest


def _copy_hashing(source: BinaryIO, dest: Path) -> tuple[str, int]:
    """Copy ``source`` into the new file ``dest`` and fsync it; its sha256 and size."""
    digest = hashlib.sha256()
    size = 0
    with open(dest, "xb") as out:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest(), size


def _write_new(path: Path, data: bytes) -> None:
    """Write ``path`` atomically (temp file, fsync, rename)."""
    tmp = _tmp_sibling(path)
    try:
        _copy_hashing(io.BytesIO(data), tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + _SIDECAR)


def _tmp_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
