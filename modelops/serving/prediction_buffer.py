"""Rows on their way to the production log: off the request path, in batches, and kept
on disk while the database is unreachable.

Requests :meth:`LogBuffer.put` JSON-able rows into memory and return at once. A writer
thread takes them in batches (``flush_rows``, or whatever came within ``flush_s``) and
hands each batch to ``write`` (one transaction). When ``write`` raises, the batch goes to
the spool: one JSON-lines file per batch under ``directory``, written atomically. While
the spool holds anything, new batches join it (rows reach the log in the order they
came), and the oldest spool file is retried every ``retry_s`` until the database
answers; a file is deleted only once its rows are written. A database that answers but
more slowly than rows come (over half of ``max_memory_rows`` waiting) also sends batches
to the spool, so memory does not fill up. A server that stops with
rows in memory spools them; the next one (same directory) replays them.

Bounds: at most ``max_memory_rows`` in memory and ``max_spool_rows`` on disk. A row
that finds its bound full is dropped and counted (:attr:`LogBuffer.dropped`, and
``on_drop``: the service's metric): predictions keep being served, and what is
already buffered is kept.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

Row = dict[str, Any]


class LogBuffer:
    """See the module docstring. ``write(rows)`` stores rows in one transaction and
    raises when it cannot (the rows are then kept and retried)."""

    def __init__(
        self,
        directory: Path,
        write: Callable[[list[Row]], None],
        *,
        max_memory_rows: int = 10_000,
        max_spool_rows: int = 100_000,
        flush_rows: int = 500,
        flush_s: float = 0.2,
        retry_s: float = 2.0,
        on_drop: Callable[[int], None] | None = None,
    ):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._write = write
        self.max_memory_rows = max_memory_rows
        self.max_spool_rows = max_spool_rows
        self.flush_rows = flush_rows
        self.flush_s = flush_s
        self.retry_s = retry_s
        self.dropped = 0
        """Rows lost because a bound was full."""
        self._on_drop = on_drop
        """Called with the number of rows each time some are dropped."""
        self.written = 0
        """Rows the database took."""
        self.database_down = False
        self._memory: deque[Row] = deque()
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._retry_at = 0.0
        self._files = sorted(self.directory.glob("*.jsonl"))
        self._spool_rows = sum(_count_lines(f) for f in self._files)
        self._seq = max((int(f.stem) for f in self._files), default=0)
        if self._spool_rows:
            logger.info(
                "log buffer: %d rows left by a previous run will be replayed", self._spool_rows
            )

    # ----------------------------------------------------------------- request side

    def put(self, rows: Sequence[Row]) -> int:
        """Queue rows for the log; how many were dropped because memory was full."""
        with self._cond:
            room = max(0, self.max_memory_rows - len(self._memory))
            kept = list(rows[:room])
            self._memory.extend(kept)
            lost = len(rows) - len(kept)
            if lost:
                self._drop(lost)
                logger.warning("log buffer: memory full, %d rows dropped", lost)
            if len(self._memory) >= self.flush_rows:
                self._cond.notify()
        return lost

    def _drop(self, rows: int) -> None:
        """Count rows lost (under ``_cond``)."""
        self.dropped += rows
        if self._on_drop is not None:
            self._on_drop(rows)

    @property
    def backlog(self) -> int:
        """Rows not yet in the database (memory and disk)."""
        return len(self._memory) + self._spool_rows

    @property
    def spooled(self) -> int:
        return self._spool_rows

    # ----------------------------------------------------------------- writer

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Write (or spool) everything in memory, then stop the writer."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._flush_memory()  # anything the thread left

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until memory is empty and the spool replayed (or ``timeout``); whether it is."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._cond:
                self._retry_at = 0.0
                self._cond.notify_all()
                if not self._memory and not self._spool_rows:
                    return True
            time.sleep(0.02)
        return False

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._stop and len(self._memory) < self.flush_rows:
                    self._cond.wait(self.flush_s)
                if self._stop:
                    return
            self._replay()
            self._flush_memory()

    def _take(self) -> list[Row]:
        with self._cond:
            n = min(self.flush_rows, len(self._memory))
            return [self._memory.popleft() for _ in range(n)]

    def _flush_memory(self) -> None:
        while True:
            batch = self._take()
            if not batch:
                return
            if self._files or time.monotonic() < self._retry_at or self._behind():
                self._spool(batch)  # keep the order: the spool goes first
            elif not self._try_write(batch):
                self._spool(batch)

    def _behind(self) -> bool:
        """Whether the database is slower than the traffic: over half the memory bound waits."""
        return len(self._memory) > self.max_memory_rows // 2

    def _replay(self) -> None:
        while self._files and time.monotonic() >= self._retry_at:
            path = self._files[0]
            try:
                rows = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line]
            except (OSError, ValueError) as exc:  # a damaged file: set aside, not retried
                logger.error("log buffer: cannot read %s (%s); moved aside", path, exc)
                path.rename(path.with_suffix(".bad"))
                rows = []
            else:
                if not self._try_write(rows):
                    return
                path.unlink()
            self._files.pop(0)
            with self._cond:
                self._spool_rows -= len(rows)
            if not self._files:
                logger.info("log buffer: spool replayed")

    def _try_write(self, rows: list[Row]) -> bool:
        try:
            self._write(rows)
        except Exception as exc:  # database unreachable (or refusing): keep the rows
            if not self.database_down:
                logger.warning("production log unavailable (%s); buffering on disk", exc)
            self.database_down = True
            self._retry_at = time.monotonic() + self.retry_s
            return False
        if self.database_down:
            logger.info("production log reachable again")
        self.database_down = False
        self.written += len(rows)
        return True

    def _spool(self, rows: list[Row]) -> None:
        room = max(0, self.max_spool_rows - self._spool_rows)
        kept, lost = rows[:room], len(rows) - min(room, len(rows))
        if lost:
            with self._cond:
                self._drop(lost)
            logger.warning(
                "log buffer: spool full (%d rows), %d rows dropped", self.max_spool_rows, lost
            )
        if not kept:
            return
        self._seq += 1
        path = self.directory / f"{self._seq:012d}.jsonl"
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            for row in kept:
                f.write(json.dumps(row, ensure_ascii=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
        self._files.append(path)
        with self._cond:
            self._spool_rows += len(kept)


def _count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())
