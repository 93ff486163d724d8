"""The inference cost the ``gain_worth_cost`` gate weighs (``modelops.domain.cost_gate``):
the candidate and the champion timed in one process, on the same texts, in interleaved
rounds, so both are measured on the same machine under the same load. The training step
does it for a champion on the candidate's base (``modelops.lifecycle.candidate_scores``,
both adapters on the base in memory); :func:`measure_pair` does it in the evaluation for
any other champion, loading both.

:func:`measure_inference` is the meter: after one warm-up batch each, every round scores
one batch of :data:`LATENCY_BATCH` test texts with each model (the order alternating from
round to round), timed around scoring only; the memory is the bytes of each loaded model's
weights and buffers. :func:`measure_pair` hands the loaded adapters to a meter, any
callable of the same signature (``InferenceMeter``): tests give one that derives the cost
from the loaded models without timing them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from modelops.domain.cost_gate import CostEvidence, InferenceCost
from modelops.lifecycle.cost import LATENCY_BATCH
from modelops.lifecycle.fetch import LoadedAdapter, loaded_adapters
from modelops.lifecycle.platform import Platform

TIMING_ROUNDS = 16
"""Rounds per measurement: with 16, the 95 % lower bound of the cost ratio is the 5th
smallest of the per-round ratios (``cost_gate.cost_ratio``)."""

InferenceMeter = Callable[[Mapping[str, LoadedAdapter], list[str], int], dict[str, InferenceCost]]
"""``meter(models, texts, max_length)``: the inference cost of each named model, measured
on ``texts`` (the same rounds for every model)."""


def model_bytes(loaded: LoadedAdapter) -> int:
    """Bytes of the loaded model's parameters and buffers (base, adapter and head)."""
    model = loaded.model
    tensors = [*model.parameters(), *model.buffers()]
    return int(sum(t.numel() * t.element_size() for t in tensors))


def timing_batches(texts: list[str], rounds: int) -> list[list[str]]:
    """``rounds`` batches of :data:`LATENCY_BATCH` texts, taken in order and starting
    over when ``texts`` runs out (fewer texts than a batch: the batch is all of them)."""
    if not texts:
        raise ValueError("inference cost: no texts to time")
    size = min(LATENCY_BATCH, len(texts))
    return [[texts[(r * size + i) % len(texts)] for i in range(size)] for r in range(rounds)]


def measure_inference(
    models: Mapping[str, LoadedAdapter],
    texts: list[str],
    max_length: int,
    *,
    rounds: int = TIMING_ROUNDS,
) -> dict[str, InferenceCost]:
    """Time every model on the same batches of ``texts``, interleaved; seconds per 32 texts
    per round, and each model's memory."""
    names = list(models)
    batches = timing_batches(texts, rounds)
    scale = LATENCY_BATCH / len(batches[0])
    for name in names:  # first calls allocate and tune: not timed
        models[name].predict_proba(batches[0], max_length)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for r, batch in enumerate(batches):
        for name in names if r % 2 == 0 else reversed(names):
            started = time.perf_counter()
            models[name].predict_proba(batch, max_length)
            seconds[name].append((time.perf_counter() - started) * scale)
    return {name: InferenceCost(tuple(seconds[name]), model_bytes(models[name])) for name in names}


@dataclass(frozen=True)
class ComparedRows:
    """The test rows the champion was compared on: truth and each model's predictions."""

    y: np.ndarray
    candidate_pred: np.ndarray
    champion_pred: np.ndarray
    n_labels: int


def measure_pair(
    platform: Platform,
    candidate,
    champion,
    texts: list[str],
    max_length: int,
    rows: ComparedRows,
    meter: InferenceMeter | None = None,
) -> CostEvidence:
    """Load the ``candidate`` and ``champion`` adapters (registry versions) here and
    measure both with ``meter`` (default :func:`measure_inference`) on ``texts``."""
    meter = meter or measure_inference
    with loaded_adapters(platform, {"candidate": candidate, "champion": champion}) as models:
        measured = meter(models, texts, max_length)
    how = (
        f"both loaded in this evaluation, timed in {len(measured['candidate'].seconds_per_32)} "
        f"interleaved rounds on the same batches of {min(LATENCY_BATCH, len(texts))} test texts"
    )
    return CostEvidence(
        candidate=measured["candidate"],
        champion=measured["champion"],
        y=rows.y,
        candidate_pred=rows.candidate_pred,
        champion_pred=rows.champion_pred,
        n_labels=rows.n_labels,
        how=how,
    )
