"""S3 access shared by the artifact store and the landing zone: clients, URIs, errors."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from modelops.config.errors import ModelopsError, NotFoundError


def s3_client(
    endpoint_url: str | None = None, region_name: str | None = None, *, max_attempts: int = 5
) -> Any:
    """A boto3 S3 client: credentials from the standard AWS chain, ``endpoint_url`` for
    MinIO and other S3 servers (``MODELOPS_S3_ENDPOINT_URL``). A call that fails to
    connect or is throttled is retried with exponential backoff (botocore's ``standard``
    mode, ``max_attempts`` in all) before the error reaches the caller."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "max_attempts": max_attempts},
                    connect_timeout=10, read_timeout=120)
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
