"""The artifact store in an S3 bucket under a prefix (AWS, MinIO, any S3 server): a file
is one put with its ``sha256`` in the object's metadata; a directory's files are marked
as such and its ``MANIFEST.json`` is put last (the layout:
:mod:`modelops.stores.artifacts.base`)."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

from modelops.config.errors import InputError, ModelopsError, NotFoundError
from modelops.config.fingerprint import canonical_json, sha256_bytes, sha256_file
from modelops.stores.artifacts.base import (
    MANIFEST,
    ArtifactRef,
    ArtifactStore,
    check_key,
    copy_hashing,
    install_dir,
    install_file,
    parse_manifest,
    same_dir,
    source_manifest,
    verify,
    verify_expected,
)
from modelops.stores.s3 import s3_client, s3_errors

log = logging.getLogger(__name__)

_DIR_MARK = "modelops-dir"
"""S3 metadata on the files of a directory: they are not keys of their own."""


def _is_committed_file(head: dict[str, Any] | None) -> bool:
    """Whether an S3 head is a stored file: sha256 recorded, not part of a directory.

    Like a local file without its ``.sha256`` marker, an object without it is a leftover.
    """
    return head is not None and "sha256" in head["Metadata"] and _DIR_MARK not in head["Metadata"]


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
        check_key(key)
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
        files, sha, size = source_manifest(Path(directory))
        self._check_ancestors(key)
        manifest_head = self._head(f"{key}/{MANIFEST}")
        if manifest_head is not None:
            return same_dir(uri, key, self._read_manifest(key), sha)
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
        verify(uri, sha256_bytes(data), stored)
        verify_expected(uri, sha256_bytes(data), expected_sha256)
        return data

    def get_file(self, key: str, dest: Path, expected_sha256: str | None = None) -> Path:
        uri = self.uri_for(key)
        with self._errors(key):
            response = self.client.get_object(Bucket=self.bucket, Key=self._obj(key))
            stored = self._recorded_sha(uri, response["Metadata"])
            return install_file(response["Body"], Path(dest), uri, stored, expected_sha256)

    def get_dir(self, key: str, dest: Path, expected_sha256: str | None = None) -> Path:
        uri = self.uri_for(key)
        files, sha, size = self._read_manifest(key)
        verify_expected(uri, sha, expected_sha256)

        def fetch(rel: str, out: Path) -> str:
            with self._errors(f"{key}/{rel}"):
                response = self.client.get_object(Bucket=self.bucket, Key=self._obj(f"{key}/{rel}"))
                return copy_hashing(response["Body"], out)[0]

        log.info("downloading directory %s (%d files, %d bytes) to %s", uri, len(files), size, dest)
        return install_dir(uri, files, sha, size, Path(dest), fetch)

    def exists(self, key: str) -> bool:
        head = self._head(check_key(key))
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
        return parse_manifest(uri, raw)

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
