"""The artifact store in a local directory: each write is a temporary file or directory,
fsync, then a rename; a file's ``<key>.sha256`` marker and a directory's ``MANIFEST.json``
are written last (the layout: :mod:`modelops.stores.artifacts.base`)."""

from __future__ import annotations

import io
import logging
import os
import shutil
from pathlib import Path
from typing import BinaryIO

from modelops.config.errors import InputError, ModelopsError, NotFoundError
from modelops.config.fingerprint import canonical_json, sha256_bytes, sha256_file
from modelops.stores.artifacts.base import (
    MANIFEST,
    SIDECAR,
    ArtifactRef,
    ArtifactStore,
    check_key,
    copy_hashing,
    install_dir,
    install_file,
    parse_manifest,
    same_dir,
    source_manifest,
    tmp_sibling,
    verify,
    verify_expected,
)

log = logging.getLogger(__name__)


class LocalArtifactStore(ArtifactStore):
    """Artifacts in a local directory; each write is a temp file or dir, fsync, rename."""

    def __init__(self, root: Path):
        self.root = Path(os.path.abspath(root))
        self.root_uri = str(self.root)

    # -- writes ----------------------------------------------------------------------------

    def put_bytes(self, key: str, data: bytes) -> ArtifactRef:
        return self._put_stream(key, io.BytesIO(data), sha256_bytes(data))

    def put_file(self, key: str, path: Path) -> ArtifactRef:
        check_key(key)
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
        tmp = tmp_sibling(target)
        try:
            written, size = copy_hashing(source, tmp)
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
        files, sha, size = source_manifest(Path(directory))
        self._check_ancestors(key)
        if (target / MANIFEST).is_file():
            return same_dir(uri, key, self._read_manifest(key), sha)
        if target.exists() and not target.is_dir():
            raise ModelopsError(f"{uri}: a file is stored there; refusing to write a directory")
        if _sidecar(target).exists():
            raise ModelopsError(f"{uri}: a file is stored there; refusing to write a directory")
        log.info(
            "storing directory %s (%d files, %d bytes) at %s", directory, len(files), size, uri
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = tmp_sibling(target)
        try:
            tmp.mkdir()
            for rel, file_sha in files.items():
                dest = tmp / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                with open(Path(directory) / rel, "rb") as source:
                    written, _ = copy_hashing(source, dest)
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
                return same_dir(uri, key, self._read_manifest(key), sha)
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
        held = [p for p in target.rglob("*") if p.name == MANIFEST or p.name.endswith(SIDECAR)]
        if held:
            raise ModelopsError(
                f"{target}: holds other artifacts ({held[0]}); refusing to replace it"
            )
        log.info("removing the uncommitted directory %s left by an interrupted write", target)
        trash = tmp_sibling(target)
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
        verify(str(target), sha256_bytes(data), _sidecar(target).read_text().strip())
        verify_expected(str(target), sha256_bytes(data), expected_sha256)
        return data

    def get_file(self, key: str, dest: Path, expected_sha256: str | None = None) -> Path:
        target = self._committed_file(key)
        stored = _sidecar(target).read_text().strip()
        with open(target, "rb") as source:
            return install_file(source, Path(dest), str(target), stored, expected_sha256)

    def get_dir(self, key: str, dest: Path, expected_sha256: str | None = None) -> Path:
        uri = self.uri_for(key)
        files, sha, size = self._read_manifest(key)
        verify_expected(uri, sha, expected_sha256)
        source = self._path(key)

        def fetch(rel: str, out: Path) -> str:
            with open(source / rel, "rb") as handle:
                return copy_hashing(handle, out)[0]

        return install_dir(uri, files, sha, size, Path(dest), fetch)

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
        return parse_manifest(self.uri_for(key), path.read_bytes())

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))


def _write_new(path: Path, data: bytes) -> None:
    """Write ``path`` atomically (temp file, fsync, rename)."""
    tmp = tmp_sibling(path)
    try:
        copy_hashing(io.BytesIO(data), tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
