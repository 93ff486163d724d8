"""The artifact store's interface and what both backends share: keys, manifests,
verified installs.

The store holds datasets, adapters, evaluation reports and images.

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

Backends: :mod:`modelops.stores.artifacts.local` and :mod:`modelops.stores.artifacts.s3`;
:func:`modelops.stores.artifacts.open_store.open_store` picks one from a URI.
"""

from __future__ import annotations

import abc
import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from modelops.config.errors import InputError, IntegrityError, ModelopsError
from modelops.config.fingerprint import file_manifest, sha256_dir, sha256_manifest

log = logging.getLogger(__name__)

MANIFEST = "MANIFEST.json"
SIDECAR = ".sha256"
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
        return f"{self.root_uri}/{check_key(key)}"

    def key_for(self, uri: str) -> str:
        """The key of ``uri``: the inverse of :meth:`uri_for`.

        Raises ``InputError`` when the uri is outside this store.
        """
        prefix = f"{self.root_uri}/"
        if not uri.startswith(prefix):
            raise InputError(uri, None, f"not inside the artifact store {self.root_uri}")
        try:
            return check_key(uri[len(prefix) :])
        except InputError as exc:
            raise InputError(uri, None, f"not a key of {self.root_uri}: {exc.message}") from None


def check_key(key: str) -> str:
    """``key`` when it is a relative posix path without ``..``; else ``InputError``."""
    if not isinstance(key, str) or not key:
        raise InputError(None, "key", "must be a non-empty relative path")
    if key.startswith("/") or "\\" in key or "\0" in key:
        raise InputError(None, "key", f"{key!r}: must be a relative posix path")
    parts = key.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise InputError(None, "key", f"{key!r}: no empty, '.' or '..' parts allowed")
    if parts[-1] == MANIFEST or parts[-1].endswith(SIDECAR):
        raise InputError(
            None, "key", f"{key!r}: {MANIFEST} and *{SIDECAR} are reserved by the store"
        )
    return key


def source_manifest(directory: Path) -> tuple[dict[str, str], str, int]:
    """``(files, sha256, size)`` of a directory about to be stored."""
    if not directory.is_dir():
        raise InputError(str(directory), None, "not a directory")
    files = file_manifest(directory)
    if MANIFEST in files:
        raise InputError(str(directory / MANIFEST), None, "the name is reserved by the store")
    size = sum((directory / rel).stat().st_size for rel in files)
    return files, sha256_manifest(files), size


def parse_manifest(uri: str, raw: bytes) -> tuple[dict[str, str], str, int]:
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
    verify(f"{uri}/{MANIFEST}", sha256_manifest(files), sha)
    return files, sha, int(size)


def same_dir(uri: str, key: str, stored: tuple[dict[str, str], str, int], sha: str) -> ArtifactRef:
    """The ref of an already stored directory when its content is ``sha``; else raise."""
    _, stored_sha, size = stored
    if stored_sha != sha:
        raise ModelopsError(
            f"{uri}: a directory is already stored with sha256 {stored_sha}; refusing to "
            f"replace it with different content (sha256 {sha})"
        )
    return ArtifactRef(uri=uri, key=key, sha256=sha, size=size)


def verify(uri: str, actual: str, recorded: str) -> None:
    if actual != recorded:
        raise IntegrityError(f"{uri}: sha256 mismatch: recorded {recorded}, content {actual}")


def verify_expected(uri: str, actual: str, expected: str | None) -> None:
    if expected is not None and actual != expected:
        raise IntegrityError(f"{uri}: sha256 mismatch: expected {expected}, content {actual}")


def install_file(
    source: BinaryIO, dest: Path, uri: str, recorded: str, expected: str | None
) -> Path:
    """Copy ``source`` to a temp file beside ``dest``, verify it, then rename it to ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_sibling(dest)
    try:
        actual, _ = copy_hashing(source, tmp)
        verify(uri, actual, recorded)
        verify_expected(uri, actual, expected)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def install_dir(
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
    tmp = tmp_sibling(dest)
    try:
        tmp.mkdir()
        for rel, file_sha in files.items():
            out = tmp / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            verify(f"{uri}/{rel}", fetch(rel, out), file_sha)
        if dest.is_dir():
            dest.rmdir()  # empty, checked above
        os.rename(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    log.info("fetched directory %s (%d files, %d bytes) to %s", uri, len(files), size, dest)
    return dest


def copy_hashing(source: BinaryIO, dest: Path) -> tuple[str, int]:
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


def tmp_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
