"""The landing zone: batch files of production texts, scored by the serving adapter and
written to the production log.

The landing location is a local directory or an S3 prefix (``s3://bucket/prefix``), with
one folder per recipe and the same layout and behaviour on both
(:mod:`modelops.stores.landing`)::

    <landing>/<recipe>/incoming/    drop files here (CSV or Parquet)
    <landing>/<recipe>/processed/   scored and logged
    <landing>/<recipe>/rejected/    refused, each with <name>.error.txt beside it

A file has a ``text`` column and may have ``id`` (the sender's row reference, stored as
the prediction's ``external_id``, at most 200 characters) and ``label`` (a true label:
logged as feedback on that row's prediction; an empty cell means none). Any other
column, an empty file, a file that is not strict UTF-8 or not readable, a row without its
text, with a too long id or label, or with a ragged number of fields is rejected whole,
with a note naming the file, the line (CSV) or row (Parquet) and the reason; nothing of
it is logged. Wholly blank CSV lines are skipped.

A good file's predictions and feedback are logged in one transaction, and the file moves
to ``processed/`` only after the commit (on S3: copied, then deleted from ``incoming/``).
Its batch id is a hash of its name and rows: a file already logged (a crash between the
commit and the move, or the same file delivered twice) is moved without being logged
again. Errors that are not the file's fault (database, model, S3) propagate and leave
the file in ``incoming/`` for the next run.

Writers should create files under a name starting with ``.`` or ending in ``.tmp`` or
``.part`` and rename them when complete: such names are not picked up (on S3, upload
under the final name: an object appears whole, or copy it from a temporary name). One
process at a time should process a recipe's landing folder.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from modelops.config.errors import InputError
from modelops.config.fingerprint import sha256_json
from modelops.domain.text import clean_text, decode_text
from modelops.serving.predictor import Predictor
from modelops.stores.db.orm import MAX_EXTERNAL_ID_CHARS
from modelops.stores.landing import INCOMING, PROCESSED, LandingLocation, open_landing
from modelops.stores.production_log import ProductionLog, external_id_text

FORMATS = {".csv": "csv", ".parquet": "parquet"}
TEXT, ID, LABEL = "text", "id", "label"
COLUMNS = (TEXT, ID, LABEL)
_MAX_REPORTED = 5
_MAX_LABEL_CHARS = 200  # the log's column width


@dataclass(frozen=True)
class BatchResult:
    """One scored and logged file."""

    file: str
    rows: int
    feedback_rows: int
    batch_id: str
    already_logged: bool = False
    """True when the batch was in the log already: nothing was logged this time."""


@dataclass(frozen=True)
class Rejection:
    """One refused file: where it went and why."""

    file: str
    error: str
    path: str
    """Where the file is now (under ``rejected/``, a path or an ``s3://`` URI); the note
    is ``path + .error.txt``."""


@dataclass
class LandingReport:
    """What one pass over a recipe's ``incoming/`` folder did."""

    processed: list[BatchResult] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)

    @property
    def rows(self) -> int:
        """Predictions logged by this pass."""
        return sum(b.rows for b in self.processed if not b.already_logged)

    @property
    def feedback_rows(self) -> int:
        """Feedback rows logged by this pass."""
        return sum(b.feedback_rows for b in self.processed if not b.already_logged)

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-serialisable."""
        return {
            "processed": [asdict(b) for b in self.processed],
            "rejected": [asdict(r) for r in self.rejected],
            "rows": self.rows,
            "feedback_rows": self.feedback_rows,
        }

    def metadata(self) -> dict[str, Any]:
        """Counts and the rejection reasons, for a Dagster materialization."""
        return {
            "files_processed": len(self.processed),
            "files_rejected": len(self.rejected),
            "rows": self.rows,
            "feedback_rows": self.feedback_rows,
            "rejected": [r.error for r in self.rejected],
        }

    def summary_lines(self) -> list[str]:
        """One line per file, for a log."""
        lines = []
        for b in self.processed:
            what = "already logged" if b.already_logged else "logged"
            lines.append(f"{b.file}: {what}, {b.rows} rows, {b.feedback_rows} with a label")
        lines.extend(f"rejected {r.error}" for r in self.rejected)
        return lines


def recipe_dir(landing: str | Path, recipe: str) -> Path:
    """``<landing>/<recipe>`` of a local landing directory; :func:`open_landing` opens
    S3 prefixes too."""
    if str(landing).startswith("s3://"):
        raise InputError(str(landing), None, "a local landing directory is needed here, not S3")
    return Path(landing) / recipe


def _location(
    landing: str | Path | LandingLocation, recipe: str, s3_endpoint_url: str | None
) -> LandingLocation:
    if isinstance(landing, LandingLocation):
        return landing
    return open_landing(landing, recipe, s3_endpoint_url=s3_endpoint_url)


def pending_files(
    landing: str | Path | LandingLocation, recipe: str, *, s3_endpoint_url: str | None = None
) -> list[str]:
    """Files waiting in ``<landing>/<recipe>/incoming/`` (paths or ``s3://`` URIs), by
    name, from one listing; files still being written (``.name``, ``*.tmp``, ``*.part``)
    are left alone. ``landing`` is a directory, ``s3://bucket[/prefix]`` or an open
    location of ``recipe``."""
    location = _location(landing, recipe, s3_endpoint_url)
    return [location.uri_for(INCOMING, name) for name in location.pending()]


def score_file(predictor: Predictor, path: str | Path, *, log: ProductionLog) -> BatchResult:
    """Read and check a local batch file, score it, log its predictions and feedback in
    one transaction. Raises :class:`InputError` (naming the file, line or row) for a bad
    file, before anything is logged. Does not move the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(path.name, None, f"cannot read the file ({exc.strerror or exc})") from None
    return score_batch(predictor, path.name, data, log=log)


def score_batch(predictor: Predictor, name: str, data: bytes, *, log: ProductionLog) -> BatchResult:
    """:func:`score_file` of the content ``data`` of a file called ``name``."""
    batch = read_batch(name, data)
    texts, labels = batch.texts, batch.labels
    content: dict[str, Any] = {
        "recipe": predictor.recipe,
        "file": name,
        "texts": texts,
        "labels": labels,
    }
    if any(i is not None for i in batch.ids):
        content["ids"] = batch.ids  # files without ids keep the batch ids they had
    batch_id = sha256_json(content)[:32]
    feedback_rows = sum(label is not None for label in labels)
    if log.batch_logged(predictor.recipe, batch_id):
        return BatchResult(name, len(texts), feedback_rows, batch_id, already_logged=True)
    predictions = predictor.score(texts)
    records = predictor.records(
        texts,
        predictions,
        source=f"batch:{name}"[:200],
        batch_id=batch_id,
        true_labels=labels,
        external_ids=batch.ids,
    )
    log.log_predictions(records)
    return BatchResult(name, len(texts), feedback_rows, batch_id)


def process_landing(
    predictor: Predictor,
    landing: str | Path | LandingLocation,
    recipe: str,
    *,
    log: ProductionLog,
    s3_endpoint_url: str | None = None,
) -> LandingReport:
    """Score every pending file of ``recipe``: good ones are logged and moved to
    ``processed/``, bad ones moved to ``rejected/`` with an error note. ``landing`` is a
    directory, ``s3://bucket[/prefix]`` (on ``s3_endpoint_url``, default AWS) or an open
    location of ``recipe``."""
    if recipe != predictor.recipe:
        raise InputError(
            None, "recipe", f"{recipe!r} but the predictor serves {predictor.recipe!r}"
        )
    location = _location(landing, recipe, s3_endpoint_url)
    report = LandingReport()
    for name in location.pending():
        try:
            result = score_batch(predictor, name, location.read(name), log=log)
        except InputError as exc:
            path = location.reject(name, _note(name, exc))
            report.rejected.append(Rejection(file=name, error=str(exc), path=path))
            continue
        location.move(name, PROCESSED)
        report.processed.append(result)
    return report


def _note(name: str, error: InputError) -> str:
    return (
        f"{error}\n\n"
        f"file: {name}\n"
        f"where: {error.where or '(whole file)'}\n"
        f"reason: {error.message}\n"
        f"rejected_at: {datetime.now(UTC).isoformat()}\n"
    )


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Batch:
    """The rows of a batch file, checked: one entry per row in each list."""

    texts: list[str]
    """Cleaned as the model sees them."""
    labels: list[str | None]
    """True labels; None where there is none."""
    ids: list[str | None]
    """The sender's row references (``id`` column); None where there is none."""


def read_batch(name: str, data: bytes) -> Batch:
    """The checked rows of the batch file ``name`` whose content is ``data``.

    CSV is decoded as strict UTF-8 and read with the ``csv`` module, so errors name the
    real line; wholly blank lines are skipped. Parquet rows are numbered from 1.
    """
    fmt = FORMATS.get(Path(name).suffix.lower())
    if fmt is None:
        raise InputError(name, None, f"unsupported file type (expected {', '.join(FORMATS)})")
    columns, rows = _csv_rows(name, data) if fmt == "csv" else _parquet_rows(name, data)
    if TEXT not in columns:
        present = ", ".join(columns) or "none"
        raise InputError(name, f"column {TEXT!r}", f"missing (columns present: {present})")
    for i, column in enumerate(columns):
        if column not in COLUMNS:
            raise InputError(
                name, f"column {column!r}", f"unexpected (allowed: {', '.join(COLUMNS)})"
            )
        if column in columns[:i]:
            raise InputError(name, f"column {column!r}", "appears twice")
    if not rows:
        raise InputError(name, None, "no data rows")
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
        raise InputError(name, where, message)
    return batch


Rows = list[tuple[str, dict[str, Any]]]
"""``[(where, {column: value})]``: where is ``line N`` (CSV) or ``row N`` (Parquet)."""


def _csv_rows(name: str, data: bytes) -> tuple[list[str], Rows]:
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
            elif len(record) != len(header):
                raise InputError(
                    name, where, f"has {len(record)} fields, the header has {len(header)}"
                )
            else:
                rows.append((where, dict(zip(header, record, strict=True))))
    except csv.Error as exc:
        raise InputError(name, f"line {line}", f"not a readable CSV file ({exc})") from None
    return header or [], rows


def _parquet_rows(name: str, data: bytes) -> tuple[list[str], Rows]:
    try:
        table = pd.read_parquet(io.BytesIO(data))
    except Exception as exc:  # pyarrow raises many kinds
        raise InputError(name, None, f"not a readable Parquet file ({exc})") from None
    columns = [str(c) for c in table.columns]
    if len(set(columns)) < len(columns):
        return columns, []  # read_batch names the repeated column
    table.columns = columns
    return columns, [(f"row {i + 1}", r) for i, r in enumerate(table.to_dict("records"))]


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA
