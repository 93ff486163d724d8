"""Drift decisions on accumulated evidence: anytime-valid sequential tests over a
champion's whole time in service, updated row by row, kept as JSON.

One window of 200 rows carries about 1.3 points of noise on the estimated accuracy, so a
steady drop just below the retraining policy crosses it by chance now and then, while a
small persistent share of unknown requests never shows in one window. The tests here add
up the rows of every window since the serving champion started (each row once: ids above
``last_id``), with one error rate, ``alpha`` (``monitoring.evidence_alpha``), for the
champion's lifetime:

- ``novelty``: per-row out-of-scope scores ranked among the calibration rows' and the
  earlier rows' (H0: traffic is exchangeable with the calibration rows; a conformal test
  martingale, ``modelops.monitoring.novelty_ranks``); for an out-of-scope model stored
  without its rank reference, or the frozen base's novelty, per-row flags against the
  null flag rate ``p0`` (H0: the flag rate is at most ``p0``);
- ``policy_drop``: per-row calibrated probability of being right (H0: its mean is at
  least the reference accuracy's lower bound minus ``retraining.min_estimated_drop``, or
  ``monitoring.min_estimated_accuracy`` if higher); the only one that retrains under
  ``trigger: impact``;
- ``any_drop``: the same values (H0: the mean is at least the reference's lower bound),
  which only warns;
- ``drift``: the window's drift signals, each a p-value among its calibration's null
  windows, p-to-e calibrated, averaged over the signals, and multiplied across disjoint
  windows (bet on, ``modelops.monitoring.betting``).

Each test is a test supermartingale (a mixture of bets, ``betting.mixture_update``): under
its null it ever reaches ``1 / alpha_test`` with probability at most ``alpha_test``
(Ville's inequality), whenever it is looked at. ``alpha`` is split by :data:`SHARES`; the
reference accuracy is itself an estimate on ``reference_rows`` validation rows, so its
one-sided Clopper-Pearson lower bound at the ``reference`` share stands in for it. By the
union bound, a champion whose traffic meets every null raises any alarm with probability
at most ``alpha`` over its whole life. The drift test's p-values are valid as far as the
calibration's null windows stand for clean production windows (as for the thresholds);
the novelty test on ranks needs no bound (its p-values are exactly uniform under
exchangeability); on flags it takes ``p0`` as given (an upper bound of the out-of-scope
model's in-scope rate).

A crossed test stays crossed until the state is reset: a new serving champion, or new
settings (the nulls changed). The report gives a confidence sequence (level
``1 - alpha``, its own guarantee) for the accumulated estimated accuracy.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from modelops.config.errors import InputError
from modelops.monitoring import betting, novelty_ranks
from modelops.monitoring.evidence_settings import (  # noqa: F401 (re-exported)
    SHARES,
    TESTS,
    WHAT,
    EvidenceSettings,
)

_SOURCE = "evidence"
_MAX_LOG = 700.0  # exp() of more overflows a float


def _iso(at: datetime | str) -> str:
    return at if isinstance(at, str) else at.isoformat()


def _bets(test: str, null: float) -> np.ndarray:
    if test == "novelty":
        return betting.rate_bets(null)
    if test == "drift":
        return betting.e_value_bets()
    return betting.mean_bets(null)


@dataclass
class TestEvidence:
    """One test's wealth (a log per bet of its grid) and whether it ever crossed."""

    null: float
    alpha: float
    log_wealth: list[float]
    observations: int = 0
    log_e: float = 0.0
    max_log_e: float = 0.0
    crossed: bool = False
    crossed_at: str | None = None
    crossed_at_id: int | None = None

    @property
    def needed(self) -> float:
        """The e-value that rejects the null: ``1 / alpha``."""
        return 1.0 / self.alpha

    @property
    def e_value(self) -> float:
        return math.exp(min(self.log_e, _MAX_LOG))

    def bet(self, test: str, gains: np.ndarray, ids: np.ndarray, at: str) -> None:
        """Add ``gains`` (their null mean is at most 0), ``ids`` the row (or window) of each."""
        if len(gains) == 0:
            return
        wealth, path = betting.mixture_update(
            np.asarray(self.log_wealth), _bets(test, self.null), gains
        )
        self._record(wealth, path, ids, at)

    def bet_p_values(self, p: np.ndarray, ids: np.ndarray, at: str) -> None:
        """Add p-values that are uniform under the null (``betting.p_value_update``)."""
        if len(p) == 0:
            return
        wealth, path = betting.p_value_update(np.asarray(self.log_wealth), p)
        self._record(wealth, path, ids, at)

    def _record(self, wealth: np.ndarray, path: np.ndarray, ids: np.ndarray, at: str) -> None:
        self.log_wealth = [float(v) for v in wealth]
        self.observations += len(path)
        self.log_e = float(path[-1])
        self.max_log_e = max(self.max_log_e, float(path.max()))
        over = np.flatnonzero(path >= math.log(self.needed))
        if over.size and not self.crossed:
            self.crossed, self.crossed_at, self.crossed_at_id = True, at, int(ids[over[0]])


@dataclass
class EvidenceState:
    """The evidence accumulated for one serving champion (JSON: :meth:`to_dict`)."""

    adapter_id: int
    since: str
    first_id: int
    last_id: int
    rows: int = 0
    windows: int = 0
    settings: dict[str, Any] | None = None
    tests: dict[str, TestEvidence] = field(default_factory=dict)
    accuracy: dict[str, float] = field(default_factory=betting.cs_fresh)
    drift_last_id: int = 0
    """The last id of the last window the drift test counted (its windows are disjoint)."""
    novelty_counts: list[int] | None = None
    """The novelty test on ranks: the count per score bin of the calibration rows and every
    row counted since (``novelty_ranks``)."""
    updated_at: str | None = None
    note: str = ""
    """Why this evidence started (a new champion, new settings)."""

    @classmethod
    def fresh(
        cls, adapter_id: int, first_id: int, started_at: datetime | str, note: str = ""
    ) -> EvidenceState:
        """No evidence yet for ``adapter_id``: rows from ``first_id`` on will count."""
        return cls(int(adapter_id), _iso(started_at), int(first_id), int(first_id) - 1, note=note)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["tests"] = {name: asdict(test) for name, test in self.tests.items()}
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EvidenceState:
        try:
            values = dict(d)
            values["tests"] = {k: TestEvidence(**v) for k, v in d.get("tests", {}).items()}
            return cls(**values)
        except (TypeError, ValueError, AttributeError) as exc:
            raise InputError(_SOURCE, "state", f"is not stored evidence: {exc}") from exc

    def under(self, settings: EvidenceSettings, first_id: int, at: datetime | str):
        """This evidence to go on with under ``settings``; a fresh one from ``first_id``
        when its settings differ (the tests' nulls moved: old wealth does not carry over)."""
        wanted = settings.to_dict()
        if self.settings is None or self.settings == wanted:
            return copy.deepcopy(self)
        changed = sorted(k for k in wanted if self.settings.get(k) != wanted[k])
        note = "settings changed (" + ", ".join(changed) + "): evidence restarted"
        return EvidenceState.fresh(self.adapter_id, first_id, at, note=note)

    def update(
        self,
        settings: EvidenceSettings,
        *,
        ids: Sequence[int],
        at: datetime | str,
        flags: np.ndarray | None = None,
        correct: np.ndarray | None = None,
        window_e: float | None = None,
        oos_bins: np.ndarray | None = None,
        rank_counts: np.ndarray | None = None,
    ) -> EvidenceState:
        """A new state with the rows whose id is above ``last_id`` added: ``flags`` (per-row
        out-of-scope flags) to ``novelty``, ``correct`` (per-row probability of being right)
        to ``policy_drop``, ``any_drop`` and the accuracy's confidence sequence. The window's
        drift e-value ``window_e`` counts only when every id is new to the drift test.
        Under ``settings.novelty_reference`` the novelty test takes ``oos_bins`` (each row's
        out-of-scope score bin, ``novelty_ranks.bins_of``) instead of ``flags``; its first
        window also needs ``rank_counts``, the calibration rows' counts it starts from."""
        ids = np.asarray(ids, dtype=np.int64)
        order = np.argsort(ids, kind="stable")
        ids = ids[order]
        fresh_ids = ids[ids > self.last_id]
        state = self.under(settings, int(fresh_ids[0]) if fresh_ids.size else self.first_id, at)
        state._start(settings)
        when = _iso(at)
        new = ids > state.last_id
        ranks = bool(settings.novelty_reference)
        if ranks and oos_bins is not None and "novelty" in state.tests:
            state._bet_ranks(oos_bins, order, new, ids, rank_counts, when)
        if not ranks and flags is not None and "novelty" in state.tests:
            chosen = _known(flags, order, new, "flags")
            if not np.isin(chosen[~np.isnan(chosen)], (0.0, 1.0)).all():
                raise InputError(_SOURCE, "flags", "must be booleans (or null where unknown)")
            test, keep = state.tests["novelty"], ~np.isnan(chosen)
            test.bet("novelty", chosen[keep] - test.null, ids[new][keep], when)
        if correct is not None:
            values = _known(correct, order, new, "correct")
            keep = ~np.isnan(values)
            values = np.clip(values[keep], 0.0, 1.0)
            for name in ("policy_drop", "any_drop"):
                if name in state.tests:
                    test = state.tests[name]
                    test.bet(name, test.null - values, ids[new][keep], when)
            state.accuracy = betting.cs_update(state.accuracy, values, settings.alpha)
        if window_e is not None and not window_e >= 0:
            raise InputError(_SOURCE, "window_e", f"must be an e-value >= 0, got {window_e!r}")
        counts = window_e is not None and ids.size and ids[0] > state.drift_last_id
        if counts and "drift" in state.tests:
            state.tests["drift"].bet("drift", np.array([window_e - 1.0]), ids[-1:], when)
            state.drift_last_id = int(ids[-1])
        if new.any():
            state.rows += int(new.sum())
            state.windows += 1
            state.last_id = int(ids[new][-1])
        state.updated_at = when
        return state

    def _bet_ranks(self, bins, order, new, ids, reference_counts, when: str) -> None:
        chosen = _known(bins, order, new, "oos_bins")
        keep = ~np.isnan(chosen)
        if self.novelty_counts is None:
            if reference_counts is None:
                raise InputError(_SOURCE, "rank_counts", "are needed to start the rank test")
            self.novelty_counts = [int(c) for c in reference_counts]
        bins = chosen[keep]
        size = len(self.novelty_counts)
        if not ((bins == np.round(bins)) & (bins >= 0) & (bins < size)).all():
            raise InputError(_SOURCE, "oos_bins", f"must be whole bins in 0..{size - 1}")
        kept = ids[new][keep]
        p, counts = novelty_ranks.sequential_p_values(
            np.asarray(self.novelty_counts),
            bins.astype(np.int64),
            novelty_ranks.row_uniforms(kept, self.adapter_id),
        )
        self.novelty_counts = counts.tolist()
        self.tests["novelty"].bet_p_values(p, kept, when)

    def _start(self, settings: EvidenceSettings) -> None:
        if self.settings is not None:
            return
        self.settings = settings.to_dict()
        for name, null in settings.nulls().items():
            if null is not None:
                size = len(_bets(name, null))
                if name == "novelty" and settings.novelty_reference:
                    size = betting.p_value_bet_count()
                self.tests[name] = TestEvidence(null, settings.alpha_of(name), [0.0] * size)

    def crossed(self) -> list[str]:
        """The tests whose evidence crossed ``1 / alpha_test``, in :data:`TESTS` order."""
        return [name for name in TESTS if name in self.tests and self.tests[name].crossed]

    def estimate(self) -> tuple[float, float, float] | None:
        """The accumulated estimated accuracy and its confidence sequence, or None. The
        estimate is the sequence's centre, the bet-weighted mean of the rows (earlier rows
        weigh more; on a steady stream it is the plain mean, :meth:`row_mean`): when the
        accuracy moved, the plain mean can lie outside the sequence."""
        sums = self.accuracy
        if not sums["n"]:
            return None
        return sums["sum_lam_x"] / sums["sum_lam"], sums["low"], sums["high"]

    def row_mean(self) -> float | None:
        """The plain mean of the rows' estimated accuracy."""
        return self.accuracy["sum"] / self.accuracy["n"] if self.accuracy["n"] else None

    def summary(self) -> dict[str, Any]:
        """What a report shows: how much evidence, since when, each test's e-value."""
        estimate = self.estimate()
        settings = EvidenceSettings(**self.settings) if self.settings else None
        return {
            "adapter_id": self.adapter_id,
            "since": self.since,
            "first_id": self.first_id,
            "last_id": self.last_id,
            "rows": self.rows,
            "windows": self.windows,
            "alpha": None if settings is None else settings.alpha,
            "reference_low": None if settings is None else settings.reference_low,
            "accuracy": None if estimate is None else estimate[0],
            "accuracy_low": None if estimate is None else estimate[1],
            "accuracy_high": None if estimate is None else estimate[2],
            "accuracy_row_mean": self.row_mean(),
            "crossed": self.crossed(),
            "tests": {
                name: {
                    "e_value": test.e_value,
                    "needed": test.needed,
                    "null": test.null,
                    "observations": test.observations,
                    "crossed": test.crossed,
                    "crossed_at": test.crossed_at,
                }
                for name, test in self.tests.items()
            },
        }

    def sentence(self) -> str:
        """One sentence: how much evidence accumulated, since when, and what it shows."""
        head = f"Evidence since {self.since} (adapter {self.adapter_id}): {self.rows} rows in "
        head += f"{self.windows} window(s)"
        estimate = self.estimate()
        if estimate is not None:
            level = "" if not self.settings else f" ({1 - self.settings['alpha']:.0%} CS)"
            head += f", estimated accuracy {estimate[0]:.3f} [{estimate[1]:.3f}, "
            head += f"{estimate[2]:.3f}]{level}, mean of the rows {self.row_mean():.3f}"
        parts = [
            f"{name} e={test.e_value:.3g}/{test.needed:.3g}" + (" CROSSED" if test.crossed else "")
            for name, test in self.tests.items()
        ]
        return head + ("; " + ", ".join(parts) if parts else "") + "."


def _known(values: Any, order: np.ndarray, new: np.ndarray, name: str) -> np.ndarray:
    """Per-row values in id order, the new rows only, NaN where unknown (None)."""
    array = np.asarray(
        [np.nan if pd.isna(v) else float(v) for v in np.asarray(values, dtype=object)]
    )
    if array.shape != order.shape:
        raise InputError(_SOURCE, name, f"has {array.size} values for {order.size} ids")
    return array[order][new]


def signals_e_value(
    scores: Mapping[str, float], null_scores: Mapping[str, Sequence[float]], signals: Sequence[str]
) -> tuple[float | None, dict[str, float]]:
    """The window's drift e-value: each signal's rank p-value among its calibration's null
    scores, p-to-e calibrated, averaged over ``signals`` (those scored and calibrated).
    Returns it (None without a signal) and the p-values."""
    chosen = [s for s in signals if s in scores and s in null_scores and len(null_scores[s])]
    p = {s: betting.conformal_p_value(scores[s], np.asarray(null_scores[s])) for s in chosen}
    if not p:
        return None, p
    return float(np.mean(betting.p_to_e(np.array(list(p.values()))))), p
