"""Where batch files land: one recipe's folder in a local directory or under an S3 prefix.

Both backends have the same layout and the same operations::

    <root>/<recipe>/incoming/    files waiting (names starting with ``.`` or ending in
                                 ``.tmp`` or ``.part`` are still being written)
    <root>/<recipe>/processed/   scored and logged
    <root>/<recipe>/rejected/    refused, each with ``<name>.error.txt`` beside it

A move never overwrites: a name already taken in the target folder (by a file or by a
note) becomes ``stem.N.suffix``. Locally a move is a rename; on S3 it is a copy, then a
delete of the original (a crash in between leaves the file in both folders, and the next
pass moves it again under a new name). S3 clients are built as the artifact store's are.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any

from modelops.config.errors import InputError, NotFoundError
from modelops.stores.s3 import s3_client, s3_errors, split_s3_uri

INCOMING, PROCESSED, REJECTED = "incoming", "processed", "rejected"
NOTE_SUFFIX = ".error.txt"
_PARTIAL = (".tmp", ".part")


def is_partial(name: str) -> bool:
    """Whether ``name`` is a file still being written (``.name``, ``*.tmp``, ``*.part``)."""
    return not name or name.startswith(".") or name.endswith(_PARTIAL)


class LandingLocation(abc.ABC):
    """One recipe's landing folder: list, read and move its files, write notes."""

    uri: str
    """The recipe's folder: a local path or ``s3://bucket/prefix/<recipe>``."""

    @abc.abstractmethod
    def pending(self) -> list[str]:
        """Names of the complete files in ``incoming/``, sorted; one listing."""

    @abc.abstractmethod
    def read(self, name: str) -> bytes:
        """The bytes of ``incoming/<name>``."""

    @abc.abstractmethod
    def _exists(self, folder: str, name: str) -> bool: ...

    @abc.abstractmethod
    def _write(self, folder: str, name: str, data: bytes) -> None: ...

    @abc.abstractmethod
    def _move(self, name: str, folder: str, target: str) -> None:
        """Move ``incoming/<name>`` to ``<folder>/<target>``."""

    def uri_for(self, folder: str, name: str) -> str:
        """Where ``<folder>/<name>`` is: a path or an ``s3://`` URI."""
        return f"{self.uri}/{folder}/{name}"

    def move(self, name: str, folder: str) -> str:
        """Move ``incoming/<name>`` into ``folder`` under a free name; where it is now."""
        target = self._free_name(folder, name)
        self._move(name, folder, target)
        return self.uri_for(folder, target)

    def reject(self, name: str, note: str) -> str:
        """Write the note, then move ``incoming/<name>`` beside it in ``rejected/`` (a
        crash in between loses nothing: the file is still waiting, and is rejected
        again); where the file is now. The note is that plus ``.error.txt``."""
        target = self._free_name(REJECTED, name)
        self._write(REJECTED, f"{target}{NOTE_SUFFIX}", note.encode("utf-8"))
        self._move(name, REJECTED, target)
        return self.uri_for(REJECTED, target)

    def _free_name(self, folder: str, name: str) -> str:
        """``name``, or ``stem.N.suffix`` when it (or its note) is taken in ``folder``."""
        stem, suffix = Path(name).stem, Path(name).suffix
        candidate, n = name, 0
        while self._exists(folder, candidate) or self._exists(folder, candidate + NOTE_SUFFIX):
            n += 1
            candidate = f"{stem}.{n}{suffix}"
        return candidate


def open_landing(
    root: str | Path, recipe: str, *, s3_endpoint_url: str | None = None
) -> LandingLocation:
    """The landing folder of ``recipe`` under ``root``: ``s3://bucket[/prefix]`` for S3,
    anything else a local directory."""
    if str(root).startswith("s3://"):
        bucket, prefix = split_s3_uri(str(root))
        if not bucket:
            raise InputError(str(root), None, "an S3 landing zone needs s3://bucket[/prefix]")
        base = f"{prefix}/{recipe}" if prefix else recipe
        return S3LandingLocation(bucket, base, endpoint_url=s3_endpoint_url)
    return LocalLandingLocation(Path(root) / recipe)


class LocalLandingLocation(LandingLocation):
    """A recipe's landing folder in a local (or mounted) directory."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.uri = str(self.directory)

    def pending(self) -> list[str]:
        incoming = self.directory / INCOMING
        if not incoming.is_dir():
            return []
        return sorted(p.name for p in incoming.iterdir() if p.is_file() and not is_partial(p.name))

    def read(self, name: str) -> bytes:
        """Raises :class:`InputError` when the file cannot be read (the file's fault)."""
        try:
            return (self.directory / INCOMING / name).read_bytes()
        except OSError as exc:
            raise InputError(name, None, f"cannot read the file ({exc.strerror or exc})") from None

    def _exists(self, folder: str, name: str) -> bool:
        return (self.directory / folder / name).exists()

    def _write(self, folder: str, name: str, data: bytes) -> None:
        path = self.directory / folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def _move(self, name: str, folder: str, target: str) -> None:
        (self.directory / folder).mkdir(parents=True, exist_ok=True)
        (self.directory / INCOMING / name).rename(self.directory / folder / target)


class S3LandingLocation(LandingLocation):
    """A recipe's landing folder under an S3 prefix; credentials from the standard AWS
    chain. Errors of S3 itself are :class:`~modelops.config.errors.ModelopsError`, not the
    file's fault."""

    def __init__(
        self,
        bucket: str,
        base: str,
        *,
        endpoint_url: str | None = None,
        client: Any | None = None,
    ):
        self.bucket = bucket
        self.base = base.strip("/")
        self.uri = f"s3://{bucket}/{self.base}"
        self.client = client or s3_client(endpoint_url)

    def pending(self) -> list[str]:
        prefix = self._key(INCOMING, "")
        with s3_errors(self.uri_for(INCOMING, "")):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix, Delimiter="/"
            )
            keys = [obj["Key"] for page in pages for obj in page.get("Contents", [])]
        return sorted(name for key in keys if not is_partial(name := key[len(prefix) :]))

    def read(self, name: str) -> bytes:
        with s3_errors(self.uri_for(INCOMING, name)):
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(INCOMING, name))
            return response["Body"].read()

    def _exists(self, folder: str, name: str) -> bool:
        try:
            with s3_errors(self.uri_for(folder, name)):
                self.client.head_object(Bucket=self.bucket, Key=self._key(folder, name))
        except NotFoundError:
            return False
        return True

    def _write(self, folder: str, name: str, data: bytes) -> None:
        with s3_errors(self.uri_for(folder, name)):
            self.client.put_object(Bucket=self.bucket, Key=self._key(folder, name), Body=data)

    def _move(self, name: str, folder: str, target: str) -> None:
        source = self._key(INCOMING, name)
        with s3_errors(self.uri_for(folder, target)):
            self.client.copy_object(
                Bucket=self.bucket,
                Key=self._key(folder, target),
                CopySource={"Bucket": self.bucket, "Key": source},
            )
        with s3_errors(self.uri_for(INCOMING, name)):
            self.client.delete_object(Bucket=self.bucket, Key=source)

    def _key(self, folder: str, name: str) -> str:
        return f"{self.base}/{folder}/{name}"
