"""The landing zone: batch files of production texts, scored by the serving adapter and
written to the production log.

Layout, one folder per recipe under the landing directory::

    <landing>/<recipe>/incoming/    drop files here (CSV or Parquet)
    <landing>/<recipe>/processed/   scored and logged
    <landing>/<recipe>/rejected/    refused, each with <name>.error.txt beside it

A file has a ``text`` column and may have ``id`` (the sender's row reference; not
stored) and ``label`` (a true label: logged as feedback on that row's prediction; an
empty cell means none). Any other column, an empty file, a file that is not strict
UTF-8 or not readable, a row without its text or with a ragged number of fields is
rejected whole, with a note naming the file, the line (CSV) or row (Parquet) and the
reason; nothing of it is logged. Wholly blank CSV lines are skipped.

A good file's predictions and feedback are logged in one transaction, and the file moves
to ``processed/`` only after the commit. Its batch id is a hash of its name and rows:
a file already logged (a crash between the commit and the move, or the same file
delivered twice) is moved without being logged again. Errors that are not the file's
fault (database, model) propagate and leave the file in ``incoming/`` for the next run.

Writers should create files under a name starting with ``.`` or ending in ``.tmp`` or
``.part`` and rename them when complete: such names are not picked up. Only local
directories are supported (not S3 prefixes). One process at a time should process a
recipe's landing folder.
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

from modelops.core.dataset import clean_text
from modelops.core.fingerprint import sha256_json
from modelops.errors import InputError
from modelops.predictor import Predictor
from modelops.stores.production_log import ProductionLog

INCOMING, PROCESSED, REJECTED = "incoming", "processed", "rejected"
FORMATS = {".csv": "csv", ".parquet": "parquet"}
TEXT, ID, LABEL = "text", "id", "label"
COLUMNS = (TEXT, ID, LABEL)
NOTE_SUFFIX = ".error.txt"
_PARTIAL = (".tmp", ".part")
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
    """Where the file is now (under ``rejected/``); the note is ``path + .error.txt``."""


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
    """``<landing>/<recipe>``: a local directory (S3 prefixes are not supported)."""
    if str(landing).startswith("s3://"):
        raise InputError(str(landing), None, "the landing zone must be a local directory")
    return Path(landing) / recipe


def pending_files(landing: str | Path, recipe: str) -> list[Path]:
    """Files waiting in ``<landing>/<recipe>/incoming/``, by name; files still being
    written (``.name``, ``*.tmp``, ``*.part``) are left alone."""
    incoming = recipe_dir(landing, recipe) / INCOMING
    if not incoming.is_dir():
        return []
    return sorted(
        p
        for p in incoming.iterdir()
        if p.is_file() and not p.name.startswith(".") and not p.name.endswith(_PARTIAL)
    )


def score_file(predictor: Predictor, path: str | Path, *, log: ProductionLog) -> BatchResult:
    """Read and check a batch file, score it, log its predictions and feedback in one
    transaction. Raises :class:`InputError` (naming the file, line or row) for a bad
    file, before anything is logged. Does not move the file."""
    path = Path(path)
    texts, labels = read_batch(path)
    content = {"recipe": predictor.recipe, "file": path.name, "texts": texts, "labels": labels}
    batch_id = sha256_json(content)[:32]
    feedback_rows = sum(label is not None for label in labels)
    if log.batch_logged(predictor.recipe, batch_id):
        return BatchResult(path.name, len(texts), feedback_rows, batch_id, already_logged=True)
    predictions = predictor.score(texts)
    records = predictor.records(
        texts, predictions, source=f"batch:{path.name}"[:200], batch_id=batch_id, true_labels=labels
    )
    log.log_predictions(records)
    return BatchResult(path.name, len(texts), feedback_rows, batch_id)


def process_landing(
    predictor: Predictor, landing: str | Path, recipe: str, *, log: ProductionLog
) -> LandingReport:
    """Score every pending file of ``recipe``: good ones are logged and moved to
    ``processed/``, bad ones moved to ``rejected/`` with an error note."""
    if recipe != predictor.recipe:
        raise InputError(
            None, "recipe", f"{recipe!r} but the predictor serves {predictor.recipe!r}"
        )
    root = recipe_dir(landing, recipe)
    report = LandingReport()
    for path in pending_files(landing, recipe):
        try:
            result = score_file(predictor, path, log=log)
        except InputError as exc:
            report.rejected.append(_reject(path, root / REJECTED, exc))
            continue
        _move(path, root / PROCESSED)
        report.processed.append(result)
    return report


# --------------------------------------------------------------------------- reading


def read_batch(path: Path) -> tuple[list[str], list[str | None]]:
    """The cleaned texts of a batch file and its labels (None where there is none).

    CSV is decoded as strict UTF-8 and read with the ``csv`` module, so errors name the
    real line; wholly blank lines are skipped. Parquet rows are numbered from 1.
    """
    name = path.name
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(name, None, f"unsupported file type (expected {', '.join(FORMATS)})")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(name, None, f"cannot read the file ({exc.strerror or exc})") from None
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
    texts, labels = [], []
    for where, row in rows:
        raw, raw_label = row[TEXT], row.get(LABEL)
        text = clean_text(raw) if isinstance(raw, str) else ""
        label = None if _missing(raw_label) else (str(raw_label).strip() or None)
        if not text:
            kind = "empty" if _missing(raw) or isinstance(raw, str) else "not text"
            problems.append((where, f"column {TEXT!r} is {kind}"))
        elif label is not None and len(label) > _MAX_LABEL_CHARS:
            problems.append((where, f"label has {len(label)} characters (max {_MAX_LABEL_CHARS})"))
        texts.append(text)
        labels.append(label)
    if problems:
        where, message = problems[0]
        if len(problems) > 1:
            others = ", ".join(w for w, _ in problems[1:_MAX_REPORTED])
            more = ", ..." if len(problems) > _MAX_REPORTED else ""
            message += f" (and {len(problems) - 1} more bad rows: {others}{more})"
        raise InputError(name, where, message)
    return texts, labels


Rows = list[tuple[str, dict[str, Any]]]
"""``[(where, {column: value})]``: where is ``line N`` (CSV) or ``row N`` (Parquet)."""


def _csv_rows(name: str, data: bytes) -> tuple[list[str], Rows]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(name, f"line {line}", f"not valid UTF-8 (byte {exc.start})") from None
    if not text.strip():
        raise InputError(name, None, "the file is empty")
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


# --------------------------------------------------------------------------- moving


def _free_path(directory: Path, name: str) -> Path:
    """``directory/name``, or ``stem.N.suffix`` when taken (nothing is overwritten)."""
    directory.mkdir(parents=True, exist_ok=True)
    candidate, n = directory / name, 0
    stem, suffix = Path(name).stem, Path(name).suffix
    while candidate.exists() or Path(f"{candidate}{NOTE_SUFFIX}").exists():
        n += 1
        candidate = directory / f"{stem}.{n}{suffix}"
    return candidate


def _move(path: Path, directory: Path) -> Path:
    target = _free_path(directory, path.name)
    path.rename(target)
    return target


def _reject(path: Path, directory: Path, error: InputError) -> Rejection:
    """Write the note, then move the file beside it (a crash in between loses nothing:
    the file is still in incoming/ and is rejected again)."""
    target = _free_path(directory, path.name)
    note = Path(f"{target}{NOTE_SUFFIX}")
    note.write_text(
        f"{error}\n\n"
        f"file: {path.name}\n"
        f"where: {error.where or '(whole file)'}\n"
        f"reason: {error.message}\n"
        f"rejected_at: {datetime.now(UTC).isoformat()}\n",
        encoding="utf-8",
    )
    path.rename(target)
    return Rejection(file=path.name, error=str(error), path=str(target))
