"""Where batch files land: one recipe's folder in a local directory or under an S3 prefix.

Both backends have the same layout and the same operations::

    <root>/<recipe>/incoming/    files waiting (names starting with ``.`` or ending in
                                 ``.tmp`` or ``.part`` are still being written)
    <root>/<recipe>/processed/   scored and logged
    <root>/<recipe>/rejected/    refused, each with ``<name>.error.txt`` beside it
    <root>/<recipe>/quarantine/  files the scorer crashed on too often, each with its note
    <root>/<recipe>/attempts/    ``<name>.json``: the failed scoring attempts of a file

Files are hostile. Only regular files are read: locally ``lstat`` decides, and the file
is opened with ``O_NOFOLLOW`` and checked again on the open descriptor, so a symbolic
link (whatever it points to), a FIFO, a device or a directory is refused unread and its
target is never opened nor shown. A file larger than the caller's byte cap is refused
from its size (locally ``fstat``, on S3 the object's ``ContentLength``) before it is
read, and never more than the cap is read. A name that could be a path or carries
control characters (``..``, ``/``, ``\\``, a leading ``/``, escapes: possible for S3
keys) is refused, and the file is moved aside under a safe name.

A move never overwrites: a name already taken in the target folder (by a file or by a
note) becomes ``stem.N.suffix``. Locally a move is a rename; on S3 it is a copy, then a
delete of the original (a crash in between leaves the file in both folders, and the next
pass moves it again under a new name). S3 clients are built as the artifact store's are.
"""

from __future__ import annotations

import abc
import contextlib
import errno
import json
import os
import re
import stat
import unicodedata
from pathlib import Path
from typing import Any

from modelops.config.errors import InputError, NotFoundError
from modelops.domain.echo import echo
from modelops.stores.s3 import s3_client, s3_errors, split_s3_uri

INCOMING, PROCESSED, REJECTED = "incoming", "processed", "rejected"
QUARANTINE, ATTEMPTS = "quarantine", "attempts"
NOTE_SUFFIX = ".error.txt"
_PARTIAL = (".tmp", ".part")
_MAX_NAME_CHARS = 200
_UNSAFE = re.compile(r"[^A-Za-z0-9._+=@,-]")


def is_partial(name: str) -> bool:
    """Whether ``name`` is a file still being written (``.name``, ``*.tmp``, ``*.part``)."""
    return not name or name.startswith(".") or name.endswith(_PARTIAL)


def name_problem(name: str) -> str | None:
    """Why ``name`` may not be used as a file name in the landing folder, or None: a
    path separator, a ``..`` part, control or format characters, too long."""
    if "/" in name or "\\" in name:
        return "the name holds a path separator"
    if ".." in name:
        return "the name holds '..'"
    if any(unicodedata.category(c).startswith("C") for c in name):
        return "the name holds control characters"
    if len(name) > _MAX_NAME_CHARS:
        return f"the name has {len(name)} characters (max {_MAX_NAME_CHARS})"
    return None


def safe_name(name: str) -> str:
    """A harmless stand-in for a refused ``name``: letters, digits and ``._+=@,-`` only,
    no ``..``, no leading ``.``, at most 200 characters."""
    cleaned = _UNSAFE.sub("_", name).replace("..", "_.")[:_MAX_NAME_CHARS].lstrip(".")
    return cleaned or "unnamed"


class LandingLocation(abc.ABC):
    """One recipe's landing folder: list, read and move its files, write notes."""

    uri: str
    """The recipe's folder: a local path or ``s3://bucket/prefix/<recipe>``."""

    @abc.abstractmethod
    def pending(self) -> list[str]:
        """Names of the complete files in ``incoming/``, sorted; one listing."""

    @abc.abstractmethod
    def read(self, name: str, max_bytes: int) -> bytes:
        """The bytes of ``incoming/<name>``; :class:`InputError` naming the file when it
        is not a regular file, is larger than ``max_bytes`` or cannot be read."""

    @abc.abstractmethod
    def _exists(self, folder: str, name: str) -> bool: ...

    @abc.abstractmethod
    def _write(self, folder: str, name: str, data: bytes) -> None: ...

    @abc.abstractmethod
    def _load(self, folder: str, name: str) -> bytes | None:
        """The bytes of one of the platform's own files (a note, an attempts record),
        or None when there is none."""

    @abc.abstractmethod
    def _delete(self, folder: str, name: str) -> None: ...

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

    def reject(self, name: str, note: str, folder: str = REJECTED) -> str:
        """Write the note, then move ``incoming/<name>`` beside it in ``rejected/`` (or
        ``folder``: ``quarantine/``), under a safe name when its own is refused (a crash
        in between loses nothing: the file is still waiting, and is rejected again);
        where the file is now. The note is that plus ``.error.txt``."""
        target = self._free_name(folder, name)
        self._write(folder, f"{target}{NOTE_SUFFIX}", note.encode("utf-8"))
        self._move(name, folder, target)
        self.clear_failures(name)
        return self.uri_for(folder, target)

    def failures(self, name: str) -> tuple[int, str]:
        """How many scoring attempts of ``incoming/<name>`` failed (crashed, or were
        cut short) and the last one's error."""
        if name_problem(name):
            return 0, ""
        try:
            record = json.loads(self._load(ATTEMPTS, f"{name}.json") or b"{}")
            return int(record.get("failures", 0)), str(record.get("error", ""))
        except (ValueError, TypeError, AttributeError):  # a damaged record starts afresh
            return 0, ""

    def record_failures(self, name: str, failures: int, error: str) -> None:
        """Record that ``failures`` attempts at ``name`` failed, the last with ``error``
        (0 removes the record)."""
        if failures <= 0:
            self.clear_failures(name)
            return
        record = {"file": name, "failures": failures, "error": echo(error, 1000)}
        self._write(ATTEMPTS, f"{name}.json", json.dumps(record).encode("utf-8"))

    def clear_failures(self, name: str) -> None:
        """Forget the failed attempts at ``name`` (scored, rejected or quarantined)."""
        if not name_problem(name) and self._exists(ATTEMPTS, f"{name}.json"):
            self._delete(ATTEMPTS, f"{name}.json")

    def _free_name(self, folder: str, name: str) -> str:
        """``name`` (its :func:`safe_name` when refused), or ``stem.N.suffix`` when it
        (or its note) is taken in ``folder``."""
        if name_problem(name):
            name = safe_name(name)
        stem, suffix = Path(name).stem, Path(name).suffix
        candidate, n = name, 0
        while self._exists(folder, candidate) or self._exists(folder, candidate + NOTE_SUFFIX):
            n += 1
            candidate = f"{stem}.{n}{suffix}"
        return candidate


def open_landing(
    root: str | Path, recipe: str, *, s3_endpoint_url: str | None = None, client: Any = None
) -> LandingLocation:
    """The landing folder of ``recipe`` under ``root``: ``s3://bucket[/prefix]`` for S3,
    anything else a local directory. ``client``: an S3 client to share (one per root)."""
    if str(root).startswith("s3://"):
        bucket, prefix = _s3_root(root)
        base = f"{prefix}/{recipe}" if prefix else recipe
        return S3LandingLocation(bucket, base, endpoint_url=s3_endpoint_url, client=client)
    return LocalLandingLocation(Path(root) / recipe)


def recipe_folders(root: str | Path, *, client: Any = None) -> set[str]:
    """The names of the recipe folders under a landing ``root``, from one listing (one
    directory scan; on S3 one listing by ``/``, a page per 1,000 folders): who may have
    files waiting. ``client``: the S3 client of an ``s3://`` root."""
    if str(root).startswith("s3://"):
        bucket, prefix = _s3_root(root)
        base = f"{prefix}/" if prefix else ""
        with s3_errors(str(root)):
            pages = client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=base, Delimiter="/"
            )
            found = [p["Prefix"] for page in pages for p in page.get("CommonPrefixes", [])]
        return {folder[len(base) :].rstrip("/") for folder in found}
    try:
        with os.scandir(root) as entries:
            return {entry.name for entry in entries}
    except (FileNotFoundError, NotADirectoryError):
        return set()


def _s3_root(root: str | Path) -> tuple[str, str]:
    bucket, prefix = split_s3_uri(str(root))
    if not bucket:
        raise InputError(str(root), None, "an S3 landing zone needs s3://bucket[/prefix]")
    return bucket, prefix


class LocalLandingLocation(LandingLocation):
    """A recipe's landing folder in a local (or mounted) directory."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.uri = str(self.directory)

    def pending(self) -> list[str]:
        """Every entry of ``incoming/`` but partial names, whatever its kind: a link, a
        FIFO, a device or a folder is listed, to be refused with a note."""
        incoming = self.directory / INCOMING
        if incoming.is_symlink():
            raise InputError(
                str(incoming), None, "is a symbolic link: refused (make it a real folder)"
            )
        if not incoming.is_dir():
            return []
        return sorted(p.name for p in incoming.iterdir() if not is_partial(p.name))

    def read(self, name: str, max_bytes: int) -> bytes:
        """Raises :class:`InputError` when the file cannot be read (the file's fault)."""
        return read_local_file(self.directory / INCOMING / name, max_bytes)

    def _exists(self, folder: str, name: str) -> bool:
        return os.path.lexists(self.directory / folder / name)

    def _write(self, folder: str, name: str, data: bytes) -> None:
        path = self.directory / folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        # Never through a link planted in our own folders: replace, do not follow.
        tmp = path.with_name(f".{name}.tmp")
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
        with open(os.open(tmp, flags, 0o644), "wb") as file:
            file.write(data)
        os.replace(tmp, path)

    def _load(self, folder: str, name: str) -> bytes | None:
        try:
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
            fd = os.open(self.directory / folder / name, flags)
        except OSError:
            return None
        with os.fdopen(fd, "rb") as file:
            if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
                return None
            return file.read(1_000_000)

    def _delete(self, folder: str, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.directory / folder / name).unlink()

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

    def read(self, name: str, max_bytes: int) -> bytes:
        """The object's ``ContentLength`` is checked before its body is read."""
        shown = echo(name)
        problem = name_problem(name)
        if problem:
            raise InputError(shown, None, f"refused key ({problem})")
        with s3_errors(self.uri_for(INCOMING, shown)):
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(INCOMING, name))
            body = response["Body"]
            try:
                _check_size(shown, int(response.get("ContentLength", 0)), max_bytes)
                data = body.read(max_bytes + 1)
            finally:
                body.close()
        _check_size(shown, len(data), max_bytes)
        return data

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

    def _load(self, folder: str, name: str) -> bytes | None:
        try:
            with s3_errors(self.uri_for(folder, name)):
                response = self.client.get_object(Bucket=self.bucket, Key=self._key(folder, name))
                return response["Body"].read(1_000_000)
        except NotFoundError:
            return None

    def _delete(self, folder: str, name: str) -> None:
        with s3_errors(self.uri_for(folder, name)):
            self.client.delete_object(Bucket=self.bucket, Key=self._key(folder, name))

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


_KINDS = [
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
]


def _kind(mode: int) -> str | None:
    """What a file that is not a regular one is, or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    return next((what for test, what in _KINDS if test(mode)), "not a regular file")


def _check_size(shown: str, size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise InputError(
            shown,
            None,
            f"too large: {size} bytes, over the cap of {max_bytes} bytes "
            "(monitoring.landing_limits.max_bytes)",
        )


def read_local_file(path: Path, max_bytes: int) -> bytes:
    """The bytes of the regular file ``path``, at most ``max_bytes`` of them. Anything
    else (a link, whatever it points to, a FIFO, a device, a directory), a larger file
    or an unreadable one is an :class:`InputError` naming the file (its echo), with
    nothing read; a link's target is never opened."""
    shown = echo(path.name)
    try:
        kind = _kind(os.lstat(path).st_mode)
        if kind is not None:
            raise InputError(shown, None, f"not a regular file ({kind}): refused, not read")
        # O_NONBLOCK: a FIFO swapped in after the lstat does not block the open.
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # became a link after the lstat
            raise InputError(shown, None, "not a regular file (a symbolic link)") from None
        raise InputError(shown, None, f"cannot read the file ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as file:
        status = os.fstat(file.fileno())
        kind = _kind(status.st_mode)
        if kind is not None:  # swapped after the lstat
            raise InputError(shown, None, f"not a regular file ({kind}): refused, not read")
        _check_size(shown, status.st_size, max_bytes)
        data = file.read(max_bytes + 1)
    _check_size(shown, len(data), max_bytes)  # grew while being read
    return data
