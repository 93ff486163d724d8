"""What an adapter costs: training wall, CPU and GPU seconds, peak memory, inference
latency per 32 texts, adapter and base size on disk.

The training cost is measured around the training loop (:func:`measure`) and stored in
the adapter's registry metrics (``cost_*``); the latency is measured on scoring the test rows,
for the candidate and the champion on the same rows (:func:`timed_scoring`: by the training
step while the candidate is in memory, else at evaluation, :func:`timed_predict`), so the
side-by-side of a base change (``modelops.domain.side_by_side``) compares like with like.
"""

from __future__ import annotations

import contextlib
import os
import resource
import threading
import time
from collections.abc import Iterator
from pathlib import Path

LATENCY_BATCH = 32
"""Inference latency is reported per this many texts."""


def dir_bytes(path: Path | str) -> int:
    """Total size of the regular files under ``path`` (0 when it does not exist)."""
    root = Path(path)
    if root.is_file():
        return root.stat().st_size
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def _rss_bytes() -> int:
    """This process's resident set size now (Linux ``/proc``; 0 elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class _PeakSampler(threading.Thread):
    """Samples the resident set size every ``interval`` seconds; keeps the maximum."""

    def __init__(self, interval: float = 0.2):
        super().__init__(daemon=True, name="modelops-peak-rss")
        self.interval = interval
        self.peak = _rss_bytes()
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(self.interval):
            self.peak = max(self.peak, _rss_bytes())

    def stop(self) -> int:
        self._done.set()
        self.join(timeout=5)
        self.peak = max(self.peak, _rss_bytes())
        return self.peak


@contextlib.contextmanager
def measure() -> Iterator[dict]:
    """Measure the block: the dict it yields is filled on exit with ``wall_seconds``,
    ``cpu_seconds`` (this process, every thread), ``peak_rss_bytes`` (sampled during
    the block), and on a CUDA device ``gpu_seconds`` (wall time the device was in use)
    and ``peak_gpu_bytes``."""
    cuda = _cuda()
    if cuda is not None:
        cuda.reset_peak_memory_stats()
    sampler = _PeakSampler()
    sampler.start()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu0 = usage.ru_utime + usage.ru_stime
    wall0 = time.perf_counter()
    out: dict = {}
    try:
        yield out
    finally:
        if cuda is not None:
            cuda.synchronize()
        wall = time.perf_counter() - wall0
        usage = resource.getrusage(resource.RUSAGE_SELF)
        out["wall_seconds"] = wall
        out["cpu_seconds"] = usage.ru_utime + usage.ru_stime - cpu0
        out["peak_rss_bytes"] = sampler.stop()
        if cuda is not None:
            out["gpu_seconds"] = wall
            out["peak_gpu_bytes"] = int(cuda.max_memory_allocated())


def _cuda():
    """``torch.cuda`` when a CUDA device is in use here, else None."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return None
    return torch.cuda if torch.cuda.is_available() else None


def timed_predict(platform, fetched, texts: list[str], max_length: int):
    """Load ``fetched`` onto its base and score ``texts``; returns ``(probabilities,
    labels, seconds per 32 texts)``, the latency timed on scoring only (not loading)."""
    from modelops.lifecycle.fetch import load_adapter

    return timed_scoring(load_adapter(platform, fetched), texts, max_length)


def timed_scoring(loaded, texts: list[str], max_length: int):
    """Score ``texts`` with an adapter already loaded (a ``LoadedAdapter``); returns
    ``(probabilities, labels, seconds per 32 texts)``."""
    started = time.perf_counter()
    probs = loaded.predict_proba(texts, max_length)
    seconds = time.perf_counter() - started
    per_batch = seconds * LATENCY_BATCH / max(len(texts), 1)
    return probs, loaded.labels, per_batch
