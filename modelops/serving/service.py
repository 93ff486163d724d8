"""The serving runtime behind the HTTP app: which recipes are served, the shared model
pool, the micro-batcher, the registry watcher and the production-log buffer.

The watcher asks the registry every ``poll_s`` seconds which adapter each recipe's
``serving`` alias names (and, for recipes with ``serving: {shadow: true}``, its newest
candidate); a new one is loaded beside the old one and then routed to, so a promotion
or a rollback is picked up within seconds, with no restart and no request failed or
answered by a mix of adapters. When the registry cannot be reached the routes stay as
they are.

Readiness says why a recipe waits in fixed words that name no host, user, path or URI;
what went wrong in full is kept apart for the log (:mod:`modelops.serving.readiness`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from modelops.config.errors import InputError, NotFoundError
from modelops.config.recipe import load_recipes
from modelops.lifecycle.platform import Platform
from modelops.serving.batching import MicroBatcher, QueueFull
from modelops.serving.metrics import ServingMetrics
from modelops.serving.model_pool import ModelPool, Scored, SharedBaseAdapter
from modelops.serving.prediction_buffer import LogBuffer
from modelops.serving.ranking import ranked
from modelops.serving.readiness import RegistryDown, Waiting
from modelops.serving.schemas import Limits, PredictRequest, RequestError, check_labels
from modelops.stores.db.engine import masked_url
from modelops.stores.production_log import PredictionRecord, text_sha256
from modelops.stores.registry_records import CANDIDATE, SERVING
from modelops.stores.serving_log import (
    FEEDBACK,
    INVALID,
    PREDICTION,
    SHADOW,
    ServingLog,
    service_prediction_id,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeConfig:
    """How the service runs; every field has a sane default."""

    recipes: tuple[str, ...] = ()
    """Recipes to serve; empty: every recipe in the recipes folder."""
    poll_s: float = 2.0
    """How often the registry is asked whether a serving alias moved."""
    max_batch: int = 64
    """Texts the batcher gathers from queued requests into one round."""
    score_batch: int = 32
    """Texts per forward pass: a round's texts are sorted by length and scored in chunks
    of this many, each padded to its own longest text."""
    max_wait_s: float = 0.002
    max_queue: int = 128
    """Requests that may wait to be scored; one more is answered 503 with Retry-After."""
    retry_after_s: int = 1
    """What that 503's ``Retry-After`` says, in seconds."""
    limits: Limits = field(default_factory=Limits)
    buffer_dir: Path | None = None
    """The on-disk log buffer (default ``<MODELOPS_HOME>/serve-buffer``)."""
    max_spool_rows: int = 100_000
    max_memory_rows: int = 10_000
    retry_s: float = 2.0
    redact_text: bool = False
    """Log texts' sha256 and length only."""


class ServingService:
    """See the module docstring. ``start`` loads nothing itself: the watcher's first
    pass does, so the process answers ``/healthz`` at once and ``/readyz`` when loaded."""

    def __init__(self, platform: Platform, config: ServeConfig | None = None):
        self.platform = platform
        self.config = config = config or ServeConfig()
        self.shadow = self._recipes(config.recipes)
        self.pool = ModelPool(platform, batch_size=config.score_batch)
        self.metrics = ServingMetrics()
        self.batcher = MicroBatcher(
            self.pool,
            max_batch=config.max_batch,
            max_wait_s=config.max_wait_s,
            max_queue=config.max_queue,
            on_batch=self.metrics.observe_batch,
            on_shadow_drop=self.metrics.shadow_dropped.inc,
        )
        self.log = ServingLog(platform.settings.database_url)
        self.buffer = LogBuffer(
            config.buffer_dir or platform.settings.home / "serve-buffer",
            self._write_log,
            max_memory_rows=config.max_memory_rows,
            max_spool_rows=config.max_spool_rows,
            retry_s=config.retry_s,
            on_drop=self.metrics.dropped.inc,
        )
        self.waiting = Waiting(self.shadow)
        """The recipes without an adapter yet, and why."""
        self.metrics.watch(
            adapters=lambda: len(self.pool.loaded()),
            bases=lambda: len(self.pool.bases()),
            backlog=lambda: self.buffer.backlog,
            spooled=lambda: self.buffer.spooled,
            queue=self.batcher.waiting,
        )
        self.metrics.queue_limit.set(config.max_queue)
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    def _recipes(self, wanted: Sequence[str]) -> dict[str, bool]:
        """recipe name -> whether it runs a shadow candidate."""
        found = {
            r.name: r.recipe.serving.shadow
            for r in load_recipes(self.platform.settings.recipes_dir)
        }
        for name in wanted:
            if name not in found:
                raise InputError(
                    None, "--recipe", f"no recipe {name!r} in {self.platform.settings.recipes_dir}"
                )
        return {n: s for n, s in found.items() if not wanted or n in wanted}

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        self.buffer.start()
        self.batcher.start()
        self._stop.clear()
        self._watcher = threading.Thread(target=self._watch, name="registry-watcher", daemon=True)
        self._watcher.start()

    def stop(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(30)
        self.batcher.stop()
        self.buffer.stop()
        self.log.close()
        self.platform.registry.close()

    def _write_log(self, rows: list[dict[str, Any]]) -> dict[str, int]:
        """The log buffer's writer: one transaction; rows that fail their checks are
        dropped there and counted here."""
        counts = self.log.write(rows)
        if counts[INVALID]:
            self.metrics.invalid.inc(counts[INVALID])
        return counts

    def ready(self) -> bool:
        return not self.waiting

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Whether every served recipe has its adapter, and what ``/readyz`` says: in
        fixed words, naming no host, user, path or URI (:attr:`waiting` keeps what
        went wrong, for the log)."""
        if self.ready():
            return True, {"status": "ready", "routes": dict(self.batcher.routes)}
        return False, {
            "status": "waiting",
            "error": "not every served recipe has its adapter loaded",
            "waiting": dict(self.waiting.reasons),
        }

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.sync()
            self._stop.wait(self.config.poll_s)

    def sync(self) -> None:
        """One look at the registry: route each recipe to its serving adapter (and its
        shadow candidate), loading what is new."""
        for recipe, shadow in self.shadow.items():
            try:
                self._sync_recipe(recipe, shadow)
            except Exception as exc:  # registry or store unreachable: keep what serves
                logger.warning("recipe %s: cannot load its adapter (%s)", recipe, exc)
                if recipe in self.waiting:
                    self.waiting.failed(recipe, exc)

    def _sync_recipe(self, recipe: str, shadow: bool) -> None:
        registry = self.platform.registry
        try:
            version = registry.alias(recipe, SERVING)
        except Exception as exc:
            where = masked_url(self.platform.settings.database_url)
            raise RegistryDown(f"registry {where}: {exc}") from exc
        if version is None:
            self.waiting.no_adapter(recipe)
            return
        if self.batcher.routes.get(recipe) != version.id:
            self._route(recipe, version, self.batcher.set_route)
            self.metrics.swaps.labels(recipe).inc()
            logger.info("recipe %s: adapter %s answers now", recipe, version.id)
        self.waiting.loaded(recipe)
        candidate = registry.alias(recipe, CANDIDATE) if shadow else None
        if candidate is not None and (candidate.id == version.id or candidate.id < version.id):
            candidate = None  # only a candidate newer than what serves is worth a shadow
        if candidate is None:
            if self.batcher.shadows.get(recipe) is not None:
                self.batcher.set_shadow(recipe, None)
        elif self.batcher.shadows.get(recipe) != candidate.id:
            self._route(recipe, candidate, self.batcher.set_shadow)
            logger.info("recipe %s: candidate %s scores in shadow", recipe, candidate.id)

    def _route(self, recipe: str, version, setter) -> None:
        for _ in range(3):  # the worker may unload it between load and route: load again
            if setter(recipe, self.pool.load(version)):
                return
        raise RuntimeError(f"adapter {version.id} could not be routed")

    # ----------------------------------------------------------------- requests

    def _served(self, recipe: str) -> str:
        if recipe not in self.shadow:
            raise RequestError(404, "recipe", f"recipe {recipe!r} is not served here")
        return recipe

    def _busy(self) -> RequestError:
        """The 503 of a request that finds the queue full (counted)."""
        self.metrics.busy.inc()
        wait, queue = self.config.retry_after_s, self.config.max_queue
        message = f"busy: {queue} requests wait to be scored; retry in {wait} s"
        return RequestError(503, None, message, headers={"Retry-After": str(wait)})

    async def predict(
        self,
        recipe: str,
        read: Callable[[], Awaitable[PredictRequest]],
        request_id: str,
        client_request_id: str | None = None,
    ) -> dict[str, Any]:
        """Answer a predict request for ``recipe``: ``read()`` gives its checked body
        (read while the batcher knows a request is on its way, so that it may wait for
        it to share a batch); the texts are scored by the recipe's serving adapter of
        that moment. A recipe not served here is a 404, one without an adapter a 503,
        and so is one that finds the queue full (with ``Retry-After``).
        ``request_id``: the server's id of the request (its predictions' ids derive from
        it); ``client_request_id``: the client's ``X-Request-ID``, stored beside it."""
        self._served(recipe)
        if self.batcher.full():  # before reading the body: shed load cheaply
            raise self._busy()
        with self.batcher.incoming():
            request = await read()
            try:
                adapter, future = self.batcher.submit(recipe, request.texts)
            except NotFoundError as exc:
                raise RequestError(503, "recipe", str(exc)) from None
            except QueueFull:
                raise self._busy() from None
        scored = await asyncio.wrap_future(future)
        answer = self.answer(recipe, request, adapter, scored, (request_id, client_request_id))
        logger.info(
            "request %s (client id %s): %s, %d texts, adapter %s",
            request_id,
            client_request_id or "-",
            recipe,
            len(request.texts),
            adapter.id,
        )
        return answer

    def answer(
        self,
        recipe: str,
        request: PredictRequest,
        adapter: SharedBaseAdapter,
        scored: Scored,
        request_ids: tuple[str, str | None],
    ) -> dict[str, Any]:
        """The response body of a scored request (``scored``: its probabilities and
        out-of-scope scores and flags); its rows go to the log buffer. ``request_ids``:
        the server's id of the request and the client's (or None)."""
        request_id, client_request_id = request_ids
        now = datetime.now(UTC)
        ids = request.ids if request.ids is not None else [None] * len(request.texts)
        predictions, rows = [], []
        probs = scored.probs
        ranking = ranked(probs, adapter.labels, request.top_k)
        for i, (text, top, ref) in enumerate(zip(request.texts, ranking, ids, strict=True)):
            oos_score, out_of_scope = scored.oos(i)
            predictions.append(
                {
                    "label": top[0]["label"],
                    "confidence": top[0]["p"],
                    "top_k": top,
                    "oos_score": oos_score,
                    "out_of_scope": out_of_scope,
                    "prediction_id": service_prediction_id(request_id, i),
                    "id": ref,
                }
            )
            record = PredictionRecord.for_text(
                text, redact=self.config.redact_text, recipe=recipe,
                taxonomy_version=adapter.version.taxonomy_version, adapter_id=adapter.id,
                predicted_label=top[0]["label"], confidence=top[0]["p"], top_k=top,
                source="api", batch_id=request_id, client_request_id=client_request_id,
                external_id=ref, at=now, base_model=adapter.base, oos_score=oos_score,
                out_of_scope=out_of_scope,
            )  # fmt: skip
            rows.append({"kind": PREDICTION, **record.to_json()})
        self.buffer.put(rows)
        self.metrics.texts.labels(recipe).inc(len(rows))
        self._shadow(recipe, request, adapter, probs, request_id, now.isoformat())
        return {
            "recipe": recipe,
            "adapter_id": adapter.id,
            "taxonomy_version": adapter.version.taxonomy_version,
            "base_model": adapter.base,
            "request_id": request_id,
            "client_request_id": client_request_id,
            "predictions": predictions,
        }

    def _shadow(self, recipe, request, champion: SharedBaseAdapter, probs, request_id, now) -> None:
        queued = self.batcher.submit_shadow(recipe, request.texts)
        if queued is None:
            return
        candidate, future = queued
        best = [top[0] for top in ranked(probs, champion.labels, 1)]

        def log(done) -> None:
            if done.cancelled() or done.exception() is not None:
                return
            cand = [top[0] for top in ranked(done.result().probs, candidate.labels, 1)]
            self.buffer.put([
                {"kind": SHADOW, "at": now, "recipe": recipe,
                 "candidate_adapter_id": candidate.id, "champion_adapter_id": champion.id,
                 "batch_id": request_id, "text_sha256": text_sha256(text),
                 "candidate_label": c["label"], "candidate_confidence": c["p"],
                 "champion_label": b["label"], "champion_confidence": b["p"]}
                for text, b, c in zip(request.texts, best, cand, strict=True)
            ])  # fmt: skip

        future.add_done_callback(log)

    async def feedback(
        self, recipe: str, read: Callable[[], Awaitable[list[dict[str, Any]]]], request_id: str
    ) -> dict[str, Any]:
        """Queue the feedback items ``read()`` gives for the log; the answer says how
        many were accepted and how many dropped (buffer full). A true label that is not
        a label of the serving adapter's taxonomy version refuses the whole request
        (422 naming it); so does a recipe with no adapter loaded (503)."""
        self._served(recipe)
        items = await read()
        self._check_labels(recipe, items)
        now = datetime.now(UTC).isoformat()
        dropped = self.buffer.put(
            [{"kind": FEEDBACK, "at": now, "recipe": recipe, "source": "api", **item}
             for item in items]
        )  # fmt: skip
        return {"accepted": len(items) - dropped, "dropped": dropped, "request_id": request_id}

    def _check_labels(self, recipe: str, items: list[dict[str, Any]]) -> None:
        adapter = self.batcher.route(recipe)
        if adapter is None:
            raise RequestError(
                503, "recipe", f"recipe {recipe!r} has no serving adapter loaded: "
                "its labels are not known yet"
            )  # fmt: skip
        check_labels(items, adapter.labels, f"taxonomy {adapter.version.taxonomy_version}")

    def adapters(self) -> dict[str, Any]:
        serving = {v: k for k, v in self.batcher.routes.items()}
        shadows = {v: k for k, v in self.batcher.shadows.items()}
        return {
            "adapters": [
                {
                    "adapter_id": a.id,
                    "recipe": a.version.recipe,
                    "taxonomy_version": a.version.taxonomy_version,
                    "base_model": a.base,
                    "labels": len(a.labels),
                    "role": "serving"
                    if a.id in serving
                    else "shadow"
                    if a.id in shadows
                    else "retiring",
                }
                for a in self.pool.loaded()
            ],
            "routes": dict(self.batcher.routes),
            "shadows": dict(self.batcher.shadows),
            "waiting": dict(self.waiting.reasons),
            "bases": [b.ref for b in self.pool.bases()],
        }
