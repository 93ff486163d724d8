"""Prometheus metrics of the HTTP service, on a registry of its own (one per app).

Counts that only grow are :class:`~prometheus_client.Counter` s named ``*_total`` (the
name they are exported under); what goes up and down is a gauge."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServingMetrics:
    """Requests, latency, batch sizes, loaded adapters, the log's backlog and drops, the
    request queue and the requests refused."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._traffic(self.registry)
        self._memory_and_log(self.registry)
        self._queue_and_refusals(self.registry)

    def _traffic(self, r: CollectorRegistry) -> None:
        """Requests, their latency, texts scored, batches, adapter swaps."""
        self.requests = Counter(
            "modelops_requests_total",
            "HTTP requests by route and status",
            ["route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "modelops_request_seconds",
            "Request latency",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.texts = Counter(
            "modelops_predicted_texts_total", "Texts scored", ["recipe"], registry=r
        )
        self.batch_texts = Histogram(
            "modelops_batch_texts",
            "Texts per scored batch (one adapter, one pass)",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.batch_requests = Histogram(
            "modelops_batch_requests",
            "Requests merged into one scored batch",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.swaps = Counter(
            "modelops_adapter_swaps_total",
            "Serving adapter changes picked up",
            ["recipe"],
            registry=r,
        )

    def _memory_and_log(self, r: CollectorRegistry) -> None:
        """What is loaded, the production log's backlog, and what was dropped."""
        self.adapters = Gauge("modelops_adapters_loaded", "Adapters in memory", registry=r)
        self.bases = Gauge("modelops_bases_loaded", "Base models in memory", registry=r)
        self.backlog = Gauge(
            "modelops_log_backlog_rows",
            "Rows not yet in the production log (memory + disk)",
            registry=r,
        )
        self.spooled = Gauge(
            "modelops_log_spooled_rows", "Rows waiting in the on-disk buffer", registry=r
        )
        self.dropped = Counter(
            "modelops_log_dropped_rows_total",
            "Rows dropped because the buffer was full",
            registry=r,
        )
        self.invalid = Counter(
            "modelops_log_invalid_rows_total",
            "Rows the production log's writer dropped because they failed their checks",
            registry=r,
        )
        self.shadow_dropped = Counter(
            "modelops_shadow_dropped_jobs_total",
            "Shadow scorings skipped (queue full)",
            registry=r,
        )

    def _queue_and_refusals(self, r: CollectorRegistry) -> None:
        """The request queue (its length, its bound, the requests it turned away) and
        the requests the gate refused (Host, token, content type)."""
        self.queue = Gauge("modelops_queue_requests", "Requests waiting to be scored", registry=r)
        self.queue_limit = Gauge(
            "modelops_queue_limit_requests",
            "Requests that may wait to be scored (--max-queue)",
            registry=r,
        )
        self.busy = Counter(
            "modelops_queue_full_total",
            "Requests answered 503 (Retry-After) because the queue was full",
            registry=r,
        )
        self.refused = Counter(
            "modelops_refused_requests_total",
            "Requests refused before any route: wrong Host, missing or wrong token, "
            "a body that is not JSON",
            ["reason"],
            registry=r,
        )

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format (what ``/metrics`` answers)."""
        return generate_latest(self.registry)

    def watch(self, **sources: Callable[[], float]) -> None:
        """Gauges read when scraped: ``adapters=lambda: ...`` and so on."""
        for name, fn in sources.items():
            getattr(self, name).set_function(fn)

    def observe_batch(self, texts: int, requests: int) -> None:
        self.batch_texts.observe(texts)
        self.batch_requests.observe(requests)
