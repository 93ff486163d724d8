"""The artifact store a URI names."""

from __future__ import annotations

from pathlib import Path

from modelops.config.errors import InputError
from modelops.stores.artifacts.base import ArtifactStore
from modelops.stores.artifacts.local import LocalArtifactStore
from modelops.stores.artifacts.s3 import S3ArtifactStore
from modelops.stores.s3 import split_s3_uri


def open_store(uri: str, *, s3_endpoint_url: str | None = None) -> ArtifactStore:
    """The store at ``uri``: ``s3://bucket/prefix`` for S3, anything else a local directory."""
    if uri.startswith("s3://"):
        bucket, prefix = split_s3_uri(uri)
        if not bucket:
            raise InputError(uri, None, "an S3 artifact store needs s3://bucket[/prefix]")
        return S3ArtifactStore(bucket, prefix, endpoint_url=s3_endpoint_url)
    return LocalArtifactStore(Path(uri))
