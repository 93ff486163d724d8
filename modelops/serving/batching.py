"""Dynamic micro-batching per adapter, and the routes that say which adapter answers.

Requests hand their texts to :meth:`MicroBatcher.submit`, which picks the recipe's
serving adapter *at that moment* and queues a job. One worker thread takes the queued
jobs, groups them by adapter and scores each group on the shared base (length-sorted,
in chunks; see :meth:`ModelPool.score`). A job is scored by the adapter it was
queued with, so a response always names the adapter that produced its labels.

How long the worker waits for more: a request announces itself while its body is read
and checked (:meth:`MicroBatcher.incoming`); the worker waits (at most ``max_wait_s``,
up to ``max_batch`` texts) only while such a request is on its way. With nothing on its
way it starts at once: a lone client's request never waits for company that is not
coming, and the model is not left idle between one request and the next.

Hot swap: :meth:`MicroBatcher.set_route` points a recipe at a newly loaded adapter;
jobs queued before still finish on the old one, which is unloaded by the worker once
no job needs it and no route names it. Shadow jobs (a candidate scoring the same texts)
run only when no request is waiting, and are dropped (counted) when their queue is full.

Overload: at most ``max_queue`` requests wait to be scored; :meth:`MicroBatcher.submit`
refuses one more with :class:`QueueFull` (the HTTP service answers 503 with
``Retry-After``), so the queue and the answer time stay bounded under a flood; the
requests already queued are all scored.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from modelops.config.errors import NotFoundError
from modelops.serving.model_pool import ModelPool, SharedBaseAdapter

logger = logging.getLogger(__name__)


class QueueFull(Exception):
    """The request queue holds ``max_queue`` requests: come back later."""


@dataclass
class _Job:
    adapter: SharedBaseAdapter
    texts: list[str]
    future: Future = field(default_factory=Future)


class MicroBatcher:
    """The routes, the queues and the worker thread; see the module docstring."""

    def __init__(
        self,
        pool: ModelPool,
        *,
        max_batch: int = 64,
        max_wait_s: float = 0.002,
        max_queue: int = 128,
        max_shadow_jobs: int = 1000,
        on_batch: Callable[[int, int], None] | None = None,
        on_shadow_drop: Callable[[], None] | None = None,
    ):
        self.pool = pool
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        """Requests that may wait to be scored; one more is refused (:class:`QueueFull`)."""
        self.max_shadow_jobs = max_shadow_jobs
        self.on_batch = on_batch
        """Called with (texts, jobs) of every scored group."""
        self.on_shadow_drop = on_shadow_drop
        """Called for every shadow job dropped (queue full)."""
        self.routes: dict[str, int] = {}
        """recipe -> the adapter id that answers it."""
        self.shadows: dict[str, int] = {}
        """recipe -> the candidate adapter id that scores its traffic in shadow."""
        self.shadow_dropped = 0
        self._main: deque[_Job] = deque()
        self._shadow: deque[_Job] = deque()
        self._pending: Counter[int] = Counter()
        self._retired: set[int] = set()
        self._arriving = 0
        """Requests announced by :meth:`incoming` and not yet queued or refused."""
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- routes

    def set_route(self, recipe: str, adapter: SharedBaseAdapter) -> bool:
        """From now on ``adapter`` answers ``recipe``; False (nothing changed) when the
        adapter was unloaded meanwhile: load it again, then retry."""
        with self._cond:
            if self.pool.get(adapter.id) is not adapter:
                return False
            old = self.routes.get(recipe)
            self.routes[recipe] = adapter.id
            self._retired.discard(adapter.id)
            if old is not None and old != adapter.id:
                self._retire(old)
            return True

    def set_shadow(self, recipe: str, adapter: SharedBaseAdapter | None) -> bool:
        """``adapter`` (None: nothing) scores ``recipe``'s traffic in shadow; False as
        :meth:`set_route`."""
        with self._cond:
            if adapter is not None and self.pool.get(adapter.id) is not adapter:
                return False
            old = self.shadows.pop(recipe, None)
            if adapter is not None:
                self.shadows[recipe] = adapter.id
                self._retired.discard(adapter.id)
            if old is not None and (adapter is None or old != adapter.id):
                self._retire(old)
            return True

    def route(self, recipe: str) -> SharedBaseAdapter | None:
        adapter_id = self.routes.get(recipe)
        return self.pool.get(adapter_id) if adapter_id is not None else None

    def _retire(self, adapter_id: int) -> None:
        if adapter_id not in self.routes.values() and adapter_id not in self.shadows.values():
            self._retired.add(adapter_id)
            self._cond.notify()

    # ----------------------------------------------------------------- jobs

    @contextlib.contextmanager
    def incoming(self) -> Iterator[None]:
        """Around reading, checking and submitting one request: while any such request
        is on its way, the worker waits (at most ``max_wait_s``) for it to share a batch."""
        with self._cond:
            self._arriving += 1
        try:
            yield
        finally:
            with self._cond:
                self._arriving -= 1
                self._cond.notify()

    def submit(self, recipe: str, texts: Sequence[str]) -> tuple[SharedBaseAdapter, Future]:
        """Queue ``texts`` (cleaned) for the adapter that serves ``recipe`` now; that
        adapter and a future of what :meth:`ModelPool.score` gives for them (a
        :class:`~modelops.serving.model_pool.Scored`: probabilities, shape (len(texts),
        labels), and out-of-scope scores and flags).
        :class:`QueueFull` when ``max_queue`` requests wait already."""
        with self._cond:
            adapter = self.route(recipe)
            if adapter is None:
                raise NotFoundError(f"recipe {recipe!r} has no serving adapter loaded")
            if len(self._main) >= self.max_queue:
                raise QueueFull(f"{len(self._main)} requests wait to be scored")
            job = _Job(adapter, list(texts))
            self._pending[adapter.id] += 1
            self._main.append(job)
            self._cond.notify()
        return adapter, job.future

    def submit_shadow(
        self, recipe: str, texts: Sequence[str]
    ) -> tuple[SharedBaseAdapter, Future] | None:
        """Queue ``texts`` for the recipe's shadow candidate; None when it has none or
        the shadow queue is full (counted in :attr:`shadow_dropped`)."""
        with self._cond:
            adapter_id = self.shadows.get(recipe)
            adapter = self.pool.get(adapter_id) if adapter_id is not None else None
            if adapter is None:
                return None
            if len(self._shadow) >= self.max_shadow_jobs:
                self.shadow_dropped += 1
                if self.on_shadow_drop is not None:
                    self.on_shadow_drop()
                return None
            job = _Job(adapter, list(texts))
            self._pending[adapter.id] += 1
            self._shadow.append(job)
            self._cond.notify()
        return adapter, job.future

    def queued(self) -> int:
        """Jobs waiting (requests and shadow)."""
        return len(self._main) + len(self._shadow)

    def waiting(self) -> int:
        """Requests waiting to be scored (what ``max_queue`` bounds)."""
        return len(self._main)

    def full(self) -> bool:
        """Whether a request submitted now would be refused (:class:`QueueFull`)."""
        return len(self._main) >= self.max_queue

    # ----------------------------------------------------------------- worker

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="micro-batcher", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the queued requests (shadow jobs are dropped), then stop the worker."""
        with self._cond:
            self._stop = True
            for job in self._shadow:
                job.future.cancel()
            self._shadow.clear()
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while True:
            with self._cond:
                self._unload_retired()
                while not self._main and not self._shadow and not self._stop:
                    self._cond.wait(0.5)
                    self._unload_retired()
                if self._stop and not self._main:
                    return
                jobs = self._take()
            try:
                self._score(jobs)
            finally:
                with self._cond:
                    for job in jobs:
                        self._pending[job.adapter.id] -= 1

    def _take(self) -> list[_Job]:
        """Jobs of one round (under the lock): requests first, waiting for more up to
        ``max_wait_s`` while a request is on its way (:meth:`incoming`); shadow jobs only
        when no request waits."""
        if not self._main:
            return [self._shadow.popleft()]
        deadline = time.monotonic() + self.max_wait_s
        while (
            self._arriving > 0
            and sum(len(j.texts) for j in self._main) < self.max_batch
            and not self._stop
        ):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._cond.wait(left)
        jobs, texts = [], 0
        while self._main and (not jobs or texts + len(self._main[0].texts) <= self.max_batch):
            job = self._main.popleft()
            jobs.append(job)
            texts += len(job.texts)
        return jobs

    def _score(self, jobs: list[_Job]) -> None:
        groups: dict[int, list[_Job]] = {}
        for job in jobs:
            if job.future.set_running_or_notify_cancel():
                groups.setdefault(job.adapter.id, []).append(job)
        for group in groups.values():
            texts = [t for job in group for t in job.texts]
            try:
                scored = self.pool.score(group[0].adapter, texts)
            except Exception as exc:  # each waiting request gets the error
                logger.exception("scoring with adapter %s failed", group[0].adapter.id)
                for job in group:
                    job.future.set_exception(exc)
                continue
            if self.on_batch is not None:
                self.on_batch(len(texts), len(group))
            start = 0
            for job in group:
                job.future.set_result(scored[start : start + len(job.texts)])
                start += len(job.texts)

    def _unload_retired(self) -> None:
        """Unload the retired adapters no job needs any more (under the lock)."""
        for adapter_id in [i for i in self._retired if self._pending[i] <= 0]:
            self._retired.discard(adapter_id)
            self._pending.pop(adapter_id, None)
            self.pool.unload(adapter_id)
