"""Reading a landing batch file: its rows checked, within the recipe's caps.

A file has a ``text`` column and may have ``id`` and ``label`` (see
:mod:`modelops.serving.batch_scoring`). Every check that refuses a file raises an
:class:`InputError` naming the file, the line (CSV) or row (Parquet) and the reason; the
caps (``monitoring.landing_limits``) are checked before the file is loaded: Parquet's
footer (row count, uncompressed sizes) before any data, its decoded row batches while
reading, CSV rows while parsing.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from modelops.config.errors import InputError
from modelops.config.monitoring import LandingLimits
from modelops.domain.echo import echo
from modelops.domain.text import clean_text, decode_text
from modelops.stores.db.orm import MAX_EXTERNAL_ID_CHARS
from modelops.stores.production_log import external_id_text

FORMATS = {".csv": "csv", ".parquet": "parquet"}
TEXT, ID, LABEL = "text", "id", "label"
COLUMNS = (TEXT, ID, LABEL)
_MAX_REPORTED = 5
_MAX_LABEL_CHARS = 200  # the log's column width
_PARQUET_BATCH_ROWS = 1024


@dataclass(frozen=True)
class Batch:
    """The rows of a batch file, checked: one entry per row in each list."""

    texts: list[str]
    """Cleaned as the model sees them."""
    labels: list[str | None]
    """True labels; None where there is none."""
    ids: list[str | None]
    """The sender's row references (``id`` column); None where there is none."""


def read_batch(name: str, data: bytes, limits: LandingLimits = LandingLimits()) -> Batch:
    """The checked rows of the batch file ``name`` whose content is ``data``.

    CSV is decoded as strict UTF-8 and read with the ``csv`` module, so errors name the
    real line; wholly blank lines are skipped. Parquet rows are numbered from 1. Over
    ``limits`` (rows; Parquet: bytes uncompressed or decoded) the file is refused
    before more of it is loaded. Column names are echoed cut and clean.
    """
    shown = echo(name)
    fmt = FORMATS.get(Path(name).suffix.lower())
    if fmt is None:
        raise InputError(shown, None, f"unsupported file type (expected {', '.join(FORMATS)})")
    if fmt == "csv":
        columns, rows = _csv_rows(shown, data, limits)
    else:
        columns, rows = _parquet_rows(shown, data, limits)
    _check_columns(shown, columns)
    if not rows:
        raise InputError(shown, None, "no data rows")
    problems: list[tuple[str, str]] = []
    batch = Batch([], [], [])
    for where, row in rows:
        raw, raw_label = row[TEXT], row.get(LABEL)
        text = clean_text(raw) if isinstance(raw, str) else ""
        label = None if _missing(raw_label) else (str(raw_label).strip() or None)
        ref = external_id_text(row.get(ID))
        if not text:
            kind = "empty" if _missing(raw) or isinstance(raw, str) else "not text"
            problems.append((where, f"column {TEXT!r} is {kind}"))
        elif any("\0" in v for v in (text, label or "", ref or "")):
            problems.append((where, "a NUL character (no database stores it)"))
        elif label is not None and len(label) > _MAX_LABEL_CHARS:
            problems.append((where, f"label has {len(label)} characters (max {_MAX_LABEL_CHARS})"))
        elif ref is not None and len(ref) > MAX_EXTERNAL_ID_CHARS:
            problems.append((where, f"id has {len(ref)} characters (max {MAX_EXTERNAL_ID_CHARS})"))
        batch.texts.append(text)
        batch.labels.append(label)
        batch.ids.append(ref)
    if problems:
        where, message = problems[0]
        if len(problems) > 1:
            others = ", ".join(w for w, _ in problems[1:_MAX_REPORTED])
            more = ", ..." if len(problems) > _MAX_REPORTED else ""
            message += f" (and {len(problems) - 1} more bad rows: {others}{more})"
        raise InputError(shown, where, message)
    return batch


def _check_columns(shown: str, columns: list[str]) -> None:
    """The header: ``text``, optionally ``id`` and ``label``, each once. A bad header is
    echoed (the first line of whatever file this is) cut to 200 characters, clean."""
    if TEXT not in columns:
        present = echo(", ".join(columns) or "none")
        raise InputError(shown, f"column {TEXT!r}", f"missing (columns present: {present})")
    for i, column in enumerate(columns):
        if column not in COLUMNS:
            raise InputError(
                shown, f"column {echo(column)!r}", f"unexpected (allowed: {', '.join(COLUMNS)})"
            )
        if column in columns[:i]:
            raise InputError(shown, f"column {column!r}", "appears twice")


Rows = list[tuple[str, dict[str, Any]]]
"""``[(where, {column: value})]``: where is ``line N`` (CSV) or ``row N`` (Parquet)."""


def _csv_rows(name: str, data: bytes, limits: LandingLimits) -> tuple[list[str], Rows]:
    text = decode_text(name, data)
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    rows: Rows = []
    line = 1  # where the next record starts
    try:
        for record in reader:
            where, line = f"line {line}", reader.line_num + 1
            if not any(field.strip() for field in record):
                continue  # a blank line
            if header is None:
                header = [field.strip() for field in record]
                _check_columns(name, header)  # before any row is kept
            elif len(record) != len(header):
                raise InputError(
                    name, where, f"has {len(record)} fields, the header has {len(header)}"
                )
            elif len(rows) >= limits.max_rows:
                raise InputError(name, where, _over_rows(f"more than {limits.max_rows}", limits))
            else:
                rows.append((where, dict(zip(header, record, strict=True))))
    except csv.Error as exc:
        raise InputError(name, f"line {line}", f"not a readable CSV file ({exc})") from None
    return header or [], rows


def _over_rows(rows: str, limits: LandingLimits) -> str:
    return (
        f"too many rows: {rows}, over the cap of {limits.max_rows} "
        "(monitoring.landing_limits.max_rows)"
    )


def _parquet_rows(name: str, data: bytes, limits: LandingLimits) -> tuple[list[str], Rows]:
    """Footer first: columns, row count and uncompressed size are checked before any
    data is read; then row batches, refused once their decoded size passes the cap."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(pa.BufferReader(data))
        meta = parquet.metadata
        index = (parquet.schema_arrow.pandas_metadata or {}).get("index_columns", [])
        columns = [str(c) for c in parquet.schema_arrow.names if c not in index]
        uncompressed = sum(
            meta.row_group(g).column(c).total_uncompressed_size
            for g in range(meta.num_row_groups)
            for c in range(meta.num_columns)
        )
    except Exception as exc:  # pyarrow raises many kinds
        raise InputError(name, None, f"not a readable Parquet file ({echo(exc)})") from None
    _check_columns(name, columns)
    if meta.num_rows > limits.max_rows:
        raise InputError(name, None, _over_rows(str(meta.num_rows), limits))
    if uncompressed > limits.max_bytes:
        raise InputError(name, None, _over_bytes(f"{uncompressed} bytes uncompressed", limits))
    frames, decoded = [], 0
    try:
        for batch in parquet.iter_batches(batch_size=_PARQUET_BATCH_ROWS, columns=columns):
            # Dictionary columns decoded: one short value repeated is no bomb's hiding place.
            plain = [
                a.dictionary_decode() if pa.types.is_dictionary(a.type) else a
                for a in batch.columns
            ]
            decoded += sum(a.nbytes for a in plain)
            if decoded > limits.max_bytes:
                raise InputError(name, None, _over_bytes(f"over {decoded} bytes decoded", limits))
            frames.append(pa.RecordBatch.from_arrays(plain, names=columns).to_pandas())
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InputError(name, None, f"not a readable Parquet file ({echo(exc)})") from None
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    table.columns = columns
    return columns, [(f"row {i + 1}", r) for i, r in enumerate(table.to_dict("records"))]


def _over_bytes(size: str, limits: LandingLimits) -> str:
    return (
        f"too large: {size}, over the cap of {limits.max_bytes} bytes "
        "(monitoring.landing_limits.max_bytes)"
    )


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA
