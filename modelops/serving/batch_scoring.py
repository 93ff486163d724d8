"""The landing zone: batch files of production texts, scored by the serving adapter and
written to the production log.

The landing location is a local directory or an S3 prefix (``s3://bucket/prefix``), with
one folder per recipe and the same layout and behaviour on both
(:mod:`modelops.stores.landing`)::

    <landing>/<recipe>/incoming/    drop files here (CSV or Parquet)
    <landing>/<recipe>/processed/   scored and logged
    <landing>/<recipe>/rejected/    refused, each with <name>.error.txt beside it
    <landing>/<recipe>/quarantine/  the scorer crashed on it max_failures times; with its note

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

Files are hostile (see :mod:`modelops.stores.landing` and docs/security.md): only
regular files are read; the recipe's ``monitoring.landing_limits`` caps a file's bytes
(checked from its size before it is read; for Parquet also its data uncompressed, from
the footer, and decoded, while reading) and rows (Parquet: the footer's row count before
reading; CSV: counted while parsing), so a compression or row bomb is refused without
being loaded. Whatever of a file is echoed (its name, a header field) is cut to 200
characters and stripped of control characters and terminal escapes. A scorer crash on a
file (any error of reading or scoring it that is not the file's known fault, or the
process dying while on it: each attempt is recorded in ``attempts/`` before it starts)
counts as a failure; the file stays waiting and the pass goes on with the others, and
after ``max_failures`` it is moved to ``quarantine/`` with a note.

Writers should create files under a name starting with ``.`` or ending in ``.tmp`` or
``.part`` and rename them when complete: such names are not picked up (on S3, upload
under the final name: an object appears whole, or copy it from a temporary name). One
process at a time should process a recipe's landing folder.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelops.config.errors import InputError, ModelopsError
from modelops.config.fingerprint import sha256_json
from modelops.config.monitoring import LandingLimits
from modelops.domain.echo import echo
from modelops.serving.batch_files import FORMATS, Batch, read_batch  # noqa: F401 (re-exported)
from modelops.serving.predictor import Predictor
from modelops.stores.landing import (
    INCOMING,
    PROCESSED,
    QUARANTINE,
    LandingLocation,
    name_problem,
    open_landing,
    read_local_file,
)
from modelops.stores.production_log import ProductionLog

_MAX_ERROR_CHARS = 1000  # of an error echoed in a note, a log line or metadata


@dataclass(frozen=True)
class BatchResult:
    """One scored and logged file."""

    file: str
    rows: int
    feedback_rows: int
    batch_id: str
    already_logged: bool = False
    """True when the batch was in the log already: nothing was logged this time."""
    out_of_scope_rows: int | None = None
    """Rows flagged out of scope (each logged with its ``oos_score`` and ``out_of_scope``);
    None when the adapter has no out-of-scope model or nothing was scored."""


@dataclass(frozen=True)
class Rejection:
    """One refused file: where it went and why."""

    file: str
    error: str
    path: str
    """Where the file is now (under ``rejected/`` or ``quarantine/``, a path or an
    ``s3://`` URI); the note is ``path + .error.txt``."""


@dataclass(frozen=True)
class Failure:
    """A file the scorer crashed on this pass: it stays waiting until ``max_failures``."""

    file: str
    error: str
    failures: int
    """Failed attempts so far, this one included."""


class ScoringCrash(Exception):
    """Reading or scoring a file failed for a reason that is not a known fault of the
    file nor of a store: counted against the file."""


@dataclass
class LandingReport:
    """What one pass over a recipe's ``incoming/`` folder did."""

    processed: list[BatchResult] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    quarantined: list[Rejection] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)

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
            "quarantined": [asdict(r) for r in self.quarantined],
            "failed": [asdict(f) for f in self.failed],
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
            "out_of_scope_rows": sum(b.out_of_scope_rows or 0 for b in self.processed),
            "rejected": [r.error for r in self.rejected],
            "files_quarantined": len(self.quarantined),
            "quarantined": [r.error for r in self.quarantined],
            "files_failed": len(self.failed),
            "failed": [f"{f.error} (attempt {f.failures})" for f in self.failed],
        }

    def summary_lines(self) -> list[str]:
        """One line per file, for a log."""
        lines = []
        for b in self.processed:
            what = "already logged" if b.already_logged else "logged"
            flagged = "" if b.out_of_scope_rows is None else f", {b.out_of_scope_rows} out of scope"
            lines.append(
                f"{b.file}: {what}, {b.rows} rows, {b.feedback_rows} with a label{flagged}"
            )
        lines.extend(f"rejected {r.error}" for r in self.rejected)
        lines.extend(f"quarantined {r.error}" for r in self.quarantined)
        lines.extend(f"failed (attempt {f.failures}) {f.error}" for f in self.failed)
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


def score_file(
    predictor: Predictor,
    path: str | Path,
    *,
    log: ProductionLog,
    limits: LandingLimits = LandingLimits(),
) -> BatchResult:
    """Read and check a local batch file, score it, log its predictions and feedback in
    one transaction. Raises :class:`InputError` (naming the file, line or row) for a bad
    file, one that is not a regular file or is over ``limits``, before anything is
    logged. Does not move the file."""
    path = Path(path)
    data = read_local_file(path, limits.max_bytes)
    return score_batch(predictor, path.name, data, log=log, limits=limits)


def score_batch(
    predictor: Predictor,
    name: str,
    data: bytes,
    *,
    log: ProductionLog,
    limits: LandingLimits = LandingLimits(),
) -> BatchResult:
    """:func:`score_file` of the content ``data`` of a file called ``name``. An error of
    reading or scoring that is neither an :class:`InputError` nor a store's
    :class:`ModelopsError` is raised as :class:`ScoringCrash`."""
    with _crashes(name):
        batch = read_batch(name, data, limits)
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
    with _crashes(name):
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
    flags = [p.out_of_scope for p in predictions]
    flagged = None if not flags or None in flags else sum(flags)
    return BatchResult(name, len(texts), feedback_rows, batch_id, out_of_scope_rows=flagged)


@contextlib.contextmanager
def _crashes(name: str) -> Iterator[None]:
    try:
        yield
    except ModelopsError:  # the file's fault (InputError) or a store's: as it is
        raise
    except Exception as exc:
        what = f"{type(exc).__name__}: {exc}"
        raise ScoringCrash(f"{echo(name)}: the scorer crashed ({echo(what, 500)})") from exc


def process_landing(
    predictor: Predictor,
    landing: str | Path | LandingLocation,
    recipe: str,
    *,
    log: ProductionLog,
    s3_endpoint_url: str | None = None,
    limits: LandingLimits = LandingLimits(),
) -> LandingReport:
    """Score every pending file of ``recipe``: good ones are logged and moved to
    ``processed/``, bad ones moved to ``rejected/`` with an error note, and ones the
    scorer crashed on ``limits.max_failures`` times to ``quarantine/``. ``landing`` is a
    directory, ``s3://bucket[/prefix]`` (on ``s3_endpoint_url``, default AWS) or an open
    location of ``recipe``. Errors of the stores (database, S3) propagate and leave the
    file waiting, its attempt not counted."""
    if recipe != predictor.recipe:
        raise InputError(
            None, "recipe", f"{recipe!r} but the predictor serves {predictor.recipe!r}"
        )
    location = _location(landing, recipe, s3_endpoint_url)
    report = LandingReport()
    for name in location.pending():
        _process_one(predictor, location, name, log=log, limits=limits, report=report)
    return report


def _process_one(
    predictor: Predictor,
    location: LandingLocation,
    name: str,
    *,
    log: ProductionLog,
    limits: LandingLimits,
    report: LandingReport,
) -> None:
    failures, last_error = location.failures(name)
    if failures >= limits.max_failures:
        _quarantine(location, name, failures, last_error, report)
        return
    try:
        problem = name_problem(name)
        if problem:
            raise InputError(echo(name), None, f"refused name ({problem})")
        # Recorded first: a process that dies on this file has counted the attempt.
        location.record_failures(name, failures + 1, "the scoring process stopped on it")
        data = location.read(name, limits.max_bytes)
        result = score_batch(predictor, name, data, log=log, limits=limits)
    except InputError as exc:
        error = echo(exc, _MAX_ERROR_CHARS)
        path = location.reject(name, _note(name, exc))
        report.rejected.append(Rejection(file=echo(name), error=error, path=path))
        return
    except ScoringCrash as exc:
        location.record_failures(name, failures + 1, str(exc))
        if failures + 1 >= limits.max_failures:
            _quarantine(location, name, failures + 1, str(exc), report)
        else:
            report.failed.append(Failure(echo(name), echo(exc, _MAX_ERROR_CHARS), failures + 1))
        return
    except BaseException:  # a store's error, an interrupt: this attempt does not count
        location.record_failures(name, failures, last_error)
        raise
    location.clear_failures(name)  # first: a crash before the move leaves no stale count
    location.move(name, PROCESSED)
    report.processed.append(result)


def _quarantine(
    location: LandingLocation, name: str, failures: int, last_error: str, report: LandingReport
) -> None:
    error = echo(
        f"{echo(name)}: quarantined after {failures} failed scoring attempts "
        f"(monitoring.landing_limits.max_failures); last: {last_error}",
        _MAX_ERROR_CHARS,
    )
    note = (
        f"{error}\n\n"
        f"file: {echo(name)}\n"
        f"failures: {failures}\n"
        f"last_error: {echo(last_error, _MAX_ERROR_CHARS)}\n"
        f"quarantined_at: {datetime.now(UTC).isoformat()}\n"
    )
    path = location.reject(name, note, QUARANTINE)
    report.quarantined.append(Rejection(file=echo(name), error=error, path=path))


def _note(name: str, error: InputError) -> str:
    return (
        f"{echo(error, _MAX_ERROR_CHARS)}\n\n"
        f"file: {echo(name)}\n"
        f"where: {echo(error.where or '(whole file)')}\n"
        f"reason: {echo(error.message, _MAX_ERROR_CHARS)}\n"
        f"rejected_at: {datetime.now(UTC).isoformat()}\n"
    )
