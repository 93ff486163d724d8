"""Small JSON values handed from one pipeline step to the next, beside the artifacts.

A step's output (a dataset record, an adapter id, an evaluation verdict) must reach the
next step wherever that one runs: another process, another pod, another machine. So the
values live where the artifacts live: ``<artifacts>/step-values/<key>.json``, a local
directory or an S3 bucket (``MODELOPS_ARTIFACTS``). Unlike artifacts, a value is
replaced when its step runs again (the newest materialization wins); it is JSON, never
pickle, and each write is atomic (a temp file and a rename locally, one put on S3).
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

from modelops.config.errors import InputError, ModelopsError, NotFoundError
from modelops.stores.s3 import s3_client, s3_errors, split_s3_uri

FOLDER = "step-values"
"""The folder under the artifact store's root that holds the values."""


class StepValues:
    """JSON values under keys (``recipe/adapter/v1``) in a directory or an S3 prefix."""

    def __init__(self, artifacts_uri: str, *, s3_endpoint_url: str | None = None):
        self.artifacts_uri = artifacts_uri.rstrip("/")
        self.root_uri = f"{self.artifacts_uri}/{FOLDER}"
        self._s3 = artifacts_uri.startswith("s3://")
        self._endpoint = s3_endpoint_url
        self._client: Any = None

    def uri_for(self, key: str) -> str:
        """Where the value of ``key`` is stored."""
        parts = key.split("/")
        if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise InputError(None, "key", f"{key!r}: must be a relative path without '..'")
        return f"{self.root_uri}/{key}.json"

    def put(self, key: str, value: Any) -> str:
        """Store ``value`` (JSON-serializable) under ``key``, replacing any older one;
        return its URI."""
        uri = self.uri_for(key)
        try:
            body = json.dumps(value, sort_keys=True, allow_nan=True).encode()
        except (TypeError, ValueError) as exc:
            raise ModelopsError(f"{uri}: the step's value is not JSON: {exc}") from None
        if self._s3:
            bucket, name = split_s3_uri(uri)
            with s3_errors(uri):
                self.client.put_object(
                    Bucket=bucket, Key=name, Body=body, ContentType="application/json"
                )
            return uri
        path = Path(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
        try:
            with open(tmp, "xb") as out:
                out.write(body)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return uri

    def get(self, key: str) -> Any:
        """The value stored under ``key``; :class:`NotFoundError` naming the URI when the
        step that writes it has not run (here or anywhere else)."""
        uri = self.uri_for(key)
        if self._s3:
            bucket, name = split_s3_uri(uri)
            with s3_errors(uri, "step value"):
                body = self.client.get_object(Bucket=bucket, Key=name)["Body"].read()
        else:
            try:
                body = Path(uri).read_bytes()
            except FileNotFoundError:
                raise NotFoundError(f"{uri}: no such step value") from None
        try:
            return json.loads(body)
        except ValueError as exc:
            raise ModelopsError(f"{uri}: unreadable step value: {exc}") from None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = s3_client(self._endpoint)
        return self._client
