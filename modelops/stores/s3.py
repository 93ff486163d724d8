"""S3 access, the one place that builds S3 clients: shared by the artifact store and the
landing zone (clients, URIs, errors), and the reads of files the platform does not store
itself: a recipe's ``s3://`` data sources (:func:`read_object`) and a catalog base model
kept as an ``s3://`` folder (:func:`download_base_model`). The rooms below ``stores`` never
import boto3; ``lifecycle`` hands these reads to them."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from modelops.config.errors import InputError, IntegrityError, ModelopsError, NotFoundError
from modelops.config.fingerprint import sha256_dir

log = logging.getLogger(__name__)


def s3_client(
    endpoint_url: str | None = None, region_name: str | None = None, *, max_attempts: int = 5
) -> Any:
    """A boto3 S3 client: credentials from the standard AWS chain, ``endpoint_url`` for
    MinIO and other S3 servers (``MODELOPS_S3_ENDPOINT_URL``). A call that fails to
    connect or is throttled is retried with exponential backoff (botocore's ``standard``
    mode, ``max_attempts`` in all) before the error reaches the caller."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"mode": "standard", "max_attempts": max_attempts},
        connect_timeout=10,
        read_timeout=120,
    )
    return boto3.client("s3", endpoint_url=endpoint_url, region_name=region_name, config=config)


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


def read_object(uri: str, *, endpoint_url: str | None = None) -> bytes:
    """The bytes of the object ``s3://bucket/key``; a missing key is an ``InputError``
    naming ``uri`` (``file not found``), as a missing local file is."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    client = s3_client(endpoint_url)
    try:
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except client.exceptions.NoSuchKey:
        raise InputError(uri, None, "file not found") from None


def download_base_model(
    uri: str, dest: Path, expected_sha256: str, *, endpoint_url: str | None = None
) -> Path:
    """Copy the base model under the S3 prefix ``uri`` to ``dest`` once, verified.

    Every key is checked before it becomes a path (no ``..``, no absolute or empty parts);
    the files go to a temporary sibling, whose content hash must be ``expected_sha256``
    before it is renamed to ``dest``. A download that fails leaves nothing in the cache,
    and a cached copy that no longer matches is removed and fetched again.
    """
    if dest.is_dir():
        if sha256_dir(dest) == expected_sha256:
            return dest
        log.warning(
            "cached base model %s does not match sha256 %s; fetching it again",
            dest,
            expected_sha256,
        )
        shutil.rmtree(dest)
    from botocore.exceptions import BotoCoreError, ClientError

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=".download-"))
    log.info("downloading base model %s to %s", uri, dest)
    try:
        _download_prefix(uri, tmp, s3_client(endpoint_url))
        digest = sha256_dir(tmp)
        if digest != expected_sha256:
            raise IntegrityError(
                f"base model {uri}: downloaded content has sha256 {digest}, the catalog "
                f"records {expected_sha256}; nothing was cached"
            )
        try:
            os.rename(tmp, dest)
        except OSError:  # another process installed it meanwhile
            if not (dest.is_dir() and sha256_dir(dest) == expected_sha256):
                raise
    except (BotoCoreError, ClientError) as exc:
        raise ModelopsError(f"base model {uri}: S3 error: {exc}") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _download_prefix(uri: str, directory: Path, client: Any) -> None:
    """Every object under the prefix ``uri`` into ``directory``, keys checked first."""
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    prefix = prefix.rstrip("/") + "/" if prefix else ""
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    for page in pages:
        for obj in page.get("Contents", []):
            rel = obj["Key"][len(prefix) :]
            if rel.endswith("/") and not obj.get("Size"):
                continue  # a "folder" marker some S3 tools write
            target = directory / _safe_relative(uri, rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, obj["Key"], str(target))


def _safe_relative(uri: str, rel: str) -> str:
    """``rel`` (an S3 key below the model's prefix) when it is a safe relative path."""
    parts = rel.split("/")
    if (
        not rel
        or rel.startswith("/")
        or "\\" in rel
        or "\0" in rel
        or any(p in ("", ".", "..") for p in parts)
    ):
        raise IntegrityError(
            f"base model {uri}: key {rel!r} is not a safe relative path; refusing it"
        )
    return rel
