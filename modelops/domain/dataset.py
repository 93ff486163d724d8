"""Training datasets: read, validate, normalize, de-duplicate, split, fingerprint.

Every problem in the input is reported with the file and the line (CSV) or row
(Parquet) where it is. Splits come from a hash of the normalized text, so an example
never changes split when the data grows, and the fingerprint depends only on content.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from modelops.config.errors import InputError
from modelops.config.fingerprint import sha256_bytes
from modelops.config.recipe import LoadedRecipe
from modelops.domain.text import clean_text, decode_text, normalize_text

if TYPE_CHECKING:
    from modelops.domain.label_mapping import LabelMapping

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
COLUMNS = ["text", "label", "split", "text_sha256"]
_MAX_REPORTED = 5

ReadBytes = Callable[[str], bytes]
"""Reads the bytes of a data source named by its URI (a path, ``s3://...``)."""


@dataclass
class PreparedDataset:
    """The validated, de-duplicated and split data of one recipe and taxonomy version."""

    frame: pd.DataFrame
    labels: list[str]
    fingerprint: str
    stats: dict = field(default_factory=dict)
    review: pd.DataFrame | None = None
    """Rows a taxonomy split could not decide: ``text, old_label, candidates``."""

    def split(self, name: str) -> pd.DataFrame:
        return self.frame[self.frame["split"] == name].reset_index(drop=True)


def split_of(text_sha256: str, validation_fraction: float, test_fraction: float) -> str:
    """Deterministic split from the hash of the normalized text."""
    bucket = int(text_sha256[:15], 16) / float(16**15)
    if bucket < test_fraction:
        return "test"
    if bucket < test_fraction + validation_fraction:
        return "validation"
    return "train"


def read_table(uri: str, fmt: str, *, read: ReadBytes | None = None) -> pd.DataFrame:
    """Read a CSV (strict UTF-8) or Parquet file: a local path, or whatever ``read`` reads
    (``modelops.lifecycle.dataset.read_source`` also reads ``s3://``)."""
    data = (read or read_local)(uri)
    if fmt == "parquet":
        try:
            return pd.read_parquet(io.BytesIO(data))
        except Exception as exc:
            raise InputError(uri, None, f"not a readable Parquet file ({exc})") from None
    text = decode_text(uri, data)
    if "\0" in text:
        line = text[: text.index("\0")].count("\n") + 1
        raise InputError(uri, f"line {line}", "a NUL byte: not a text CSV file")
    try:
        table = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, csv.Error) as exc:
        raise InputError(uri, None, f"not a readable CSV file ({exc})") from None
    lines = csv_record_lines(text)
    if len(lines) == len(table):
        table.attrs["lines"] = lines
    return table


def csv_record_lines(text: str) -> list[int]:
    """The line on which each data record of a CSV text starts (a quoted field may span
    lines, so record ``i`` is not always on line ``i + 2``); blank lines are skipped as
    pandas skips them."""
    reader = csv.reader(io.StringIO(text, newline=""))
    starts, last = [], 0
    try:
        for row in reader:
            if row:
                starts.append(last + 1)
            last = reader.line_num
    except csv.Error:
        return []
    return starts[1:]  # the header is not a record


def read_local(uri: str) -> bytes:
    """The bytes of a local file; an ``s3://`` source is read through the platform
    (``modelops.lifecycle.dataset.read_source``): this room builds no S3 client."""
    if uri.startswith("s3://"):
        raise InputError(uri, None, "an s3:// source is read through the platform's S3 access")
    try:
        return Path(uri).read_bytes()
    except FileNotFoundError:
        raise InputError(uri, None, "file not found") from None


def validate_rows(
    table: pd.DataFrame,
    *,
    source: str,
    fmt: str,
    text_column: str,
    label_column: str,
    labels: Sequence[str],
    max_text_chars: int,
) -> pd.DataFrame:
    """Check columns and every row; return ``text``/``label`` columns, cleaned.

    Raises InputError naming the file and the first bad line or row, with the count
    of the others.
    """
    missing = [c for c in (text_column, label_column) if c not in table.columns]
    if missing:
        raise InputError(
            source,
            f"column {missing[0]!r}",
            f"missing (columns present: {', '.join(map(str, table.columns)) or 'none'})",
        )
    if table.empty:
        raise InputError(source, None, "no data rows")
    allowed = set(labels)
    problems: list[tuple[int, str, str]] = []
    texts, out_labels = [], []
    lines = table.attrs.get("lines") or [i + 2 for i in range(len(table))]
    for i, (raw_text, raw_label) in enumerate(
        zip(table[text_column].tolist(), table[label_column].tolist(), strict=True)
    ):
        where = f"line {lines[i]}" if fmt == "csv" else f"row {i + 1}"
        text = clean_text(raw_text) if isinstance(raw_text, str) else ""
        label = _label_text(raw_label)
        if not isinstance(raw_text, str) and not _is_missing(raw_text):
            problems.append(
                (i, where, f"column {text_column!r} is not text ({type(raw_text).__name__})")
            )
        elif label is None:
            problems.append(
                (i, where, f"column {label_column!r} is not text ({type(raw_label).__name__})")
            )
        elif "\0" in text or "\0" in label:
            problems.append((i, where, "a NUL character"))
        elif not text:
            problems.append((i, where, f"column {text_column!r} is empty"))
        elif len(text) > max_text_chars:
            problems.append((i, where, f"text has {len(text)} characters (max {max_text_chars})"))
        elif not label:
            problems.append((i, where, f"column {label_column!r} is empty"))
        elif label not in allowed:
            problems.append((i, where, f"label {label!r} is not in the taxonomy"))
        texts.append(text)
        out_labels.append(label)
    if problems:
        _, where, message = problems[0]
        if len(problems) > 1:
            others = ", ".join(w for _, w, _ in problems[1:_MAX_REPORTED])
            more = "" if len(problems) <= _MAX_REPORTED else ", ..."
            message += f" (and {len(problems) - 1} more bad rows: {others}{more})"
        raise InputError(source, where, message)
    return pd.DataFrame({"text": texts, "label": out_labels})


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _label_text(value: object) -> str | None:
    """A label cell as text: strings stripped, integers written out, missing as empty;
    None for anything else (a float, bytes, a list)."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_):
        return str(value)
    return "" if _is_missing(value) else None


def prepare_dataset(
    loaded: LoadedRecipe,
    *,
    read: ReadBytes | None = None,
    mapping: LabelMapping | None = None,
    extra_rows: pd.DataFrame | None = None,
) -> PreparedDataset:
    """Read every source of a recipe (with ``read``; default: local files only) and build
    its validated, split dataset.

    Rows are validated against the taxonomy version the data is labelled in; with a
    ``mapping`` they are then relabelled into its target version: rows a split rule
    cannot decide go to the review queue, rows of retired labels leave. ``extra_rows``
    (``text``, ``label`` in the target version: labelled production feedback) join after
    relabelling; rows whose label the version does not have are left out and counted.
    """
    settings = loaded.recipe.data
    labels = loaded.taxonomy.label_names
    parts = []
    for source, uri in zip(settings.sources, loaded.source_uris(), strict=True):
        fmt = source.resolved_format
        table = read_table(uri, fmt, read=read)
        parts.append(
            validate_rows(
                table,
                source=uri,
                fmt=fmt,
                text_column=settings.text_column,
                label_column=settings.label_column,
                labels=labels,
                max_text_chars=settings.max_text_chars,
            )
        )
        log.info("read %d rows from %s", len(table), uri)
    rows = pd.concat(parts, ignore_index=True)
    if len(rows) > settings.max_rows:
        raise InputError(
            loaded.path,
            "data.max_rows",
            f"the sources hold {len(rows)} rows (max {settings.max_rows})",
        )
    review, relabel_stats = None, {}
    if mapping is not None:
        rows, review, retired = mapping.map_frame(rows)
        labels = list(mapping.target_labels)
        relabel_stats = {
            "relabelled_from": mapping.source,
            "mapping_fingerprint": mapping.fingerprint(),
            "review_rows": len(review),
            "retired_rows": len(retired),
        }
    if extra_rows is not None and len(extra_rows):
        known = extra_rows["label"].isin(labels)
        relabel_stats["feedback_rows"] = int(known.sum())
        relabel_stats["feedback_rows_unknown_label"] = int((~known).sum())
        extra = extra_rows[known][["text", "label"]].copy()
        extra["text"] = [clean_text(t) for t in extra["text"]]
        rows = pd.concat([rows, extra[extra["text"] != ""]], ignore_index=True)
    dataset = dataset_from_rows(
        rows,
        labels=labels,
        validation_fraction=settings.validation_fraction,
        test_fraction=settings.test_fraction,
        source=f"{loaded.path} (sources: {', '.join(loaded.source_uris())})",
    )
    dataset.stats.update(relabel_stats)
    dataset.review = review
    return dataset


def dataset_from_rows(
    rows: pd.DataFrame,
    *,
    labels: Sequence[str],
    validation_fraction: float,
    test_fraction: float,
    source: str | None = None,
) -> PreparedDataset:
    """De-duplicate on normalized text, split by its hash, fingerprint the content.

    ``source`` names the input in errors (the recipe and its data files).

    Copies with the same label collapse to the first; texts that appear with
    different labels are dropped altogether and counted as conflicts.
    """
    frame = rows[["text", "label"]].copy()
    frame["text_sha256"] = [
        sha256_bytes(normalize_text(t).encode("utf-8")) for t in frame["text"].tolist()
    ]
    label_sets = frame.groupby("text_sha256")["label"].nunique()
    conflicted = set(label_sets[label_sets > 1].index)
    n_conflicts = int(frame["text_sha256"].isin(conflicted).sum())
    frame = frame[~frame["text_sha256"].isin(conflicted)]
    before = len(frame)
    frame = frame.drop_duplicates("text_sha256", keep="first")
    frame["split"] = [
        split_of(h, validation_fraction, test_fraction) for h in frame["text_sha256"].tolist()
    ]
    frame = frame.sort_values("text_sha256", kind="stable").reset_index(drop=True)[COLUMNS]
    stats = {
        "rows_read": int(len(rows)),
        "duplicates_dropped": int(before - len(frame)),
        "conflicting_rows_dropped": n_conflicts,
        "rows": int(len(frame)),
        **{f"{s}_rows": int((frame["split"] == s).sum()) for s in SPLITS},
        "label_counts": {k: int(v) for k, v in frame["label"].value_counts().sort_index().items()},
    }
    if stats["train_rows"] == 0 or stats["test_rows"] == 0:
        raise InputError(
            source or "(dataset)",
            "data",
            f"too few rows to split ({len(frame)} after de-duplication)",
        )
    return PreparedDataset(
        frame=frame, labels=list(labels), fingerprint=fingerprint(frame, labels), stats=stats
    )


def fingerprint(frame: pd.DataFrame, labels: Sequence[str]) -> str:
    """Content hash of a dataset: its label set and sorted (hash, split, label) rows."""
    body = "\n".join(labels) + "\n--\n"
    ordered = frame.sort_values("text_sha256", kind="stable")
    body += "".join(
        f"{h}\t{s}\t{lab}\t{t}\n"
        for h, s, lab, t in zip(
            ordered["text_sha256"],
            ordered["split"],
            ordered["label"],
            ordered["text"],
            strict=True,
        )
    )
    return sha256_bytes(body.encode("utf-8"))


def to_parquet_bytes(dataset: PreparedDataset) -> bytes:
    buffer = io.BytesIO()
    table = dataset.frame.copy()
    table.attrs = {}
    table.to_parquet(buffer, index=False)
    return buffer.getvalue()


def from_parquet_bytes(
    data: bytes, labels: Sequence[str], expected_fingerprint: str, source: str = "(dataset)"
) -> PreparedDataset:
    """Load a stored dataset and prove it is the one recorded; ``source`` (its URI)
    names it in errors."""
    try:
        frame = pd.read_parquet(io.BytesIO(data))
    except Exception as exc:
        raise InputError(source, None, f"not a readable Parquet file ({exc})") from None
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(source, f"column {missing[0]!r}", "missing from the stored dataset")
    frame = frame[COLUMNS]
    found = fingerprint(frame, labels)
    if found != expected_fingerprint:
        raise InputError(
            source, "dataset", f"fingerprint {found} != recorded {expected_fingerprint}"
        )
    stats = {f"{s}_rows": int((frame["split"] == s).sum()) for s in SPLITS}
    return PreparedDataset(frame=frame, labels=list(labels), fingerprint=found, stats=stats)


def incremental_split(
    dataset: PreparedDataset, previous: PreparedDataset, replay_fraction: float
) -> PreparedDataset:
    """The training set of an incremental run: every train row the previous adapter did
    not see, plus a replay sample of the ones it did (chosen by text hash, so the same
    inputs always give the same sample). Validation and test stay whole."""
    seen = set(previous.split("train")["text_sha256"])
    frame = dataset.frame
    is_train = frame["split"] == "train"
    old = frame["text_sha256"].isin(seen)
    replay = np.array([int(h[-8:], 16) / 16**8 < replay_fraction for h in frame["text_sha256"]])
    keep = ~is_train | ~old | replay
    out = frame[keep].reset_index(drop=True)
    stats = {
        **dataset.stats,
        "incremental_new_train_rows": int((is_train & ~old).sum()),
        "incremental_replay_rows": int((is_train & old & replay).sum()),
    }
    return PreparedDataset(
        frame=out, labels=dataset.labels, fingerprint=fingerprint(out, dataset.labels), stats=stats
    )


def encode_labels(frame: pd.DataFrame, labels: Sequence[str]) -> np.ndarray:
    index = {name: i for i, name in enumerate(labels)}
    return np.array([index[name] for name in frame["label"].tolist()], dtype=np.int64)
