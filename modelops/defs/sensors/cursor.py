"""What the sensors over every recipe share: a JSON cursor with an entry per recipe, the
check that a run key was already launched, and a skip reason that names a few recipes."""

from __future__ import annotations

import json

import dagster as dg

RUN_KEY_TAG = "dagster/run_key"


def read_cursor(raw: str | None) -> dict:
    """The sensor's JSON cursor as a dict; ``{}`` when there is none (the first tick) or
    when it is not a JSON object (a cursor of another sensor, or damaged: start afresh)."""
    if not raw:
        return {}
    try:
        state = json.loads(raw)
    except ValueError:
        return {}
    return state if isinstance(state, dict) else {}


def write_cursor(state: dict) -> str:
    return json.dumps(state, sort_keys=True, separators=(",", ":"))


def launched(instance: dg.DagsterInstance, run_key: str) -> bool:
    """Whether a run with this run key exists, whatever sensor launched it. Dagster skips
    a run key only for the sensor that launched it; this also covers the per-recipe
    sensors these replaced (``<recipe>__landing``, ``__production_window``, ``__drift``),
    whose keys are the same. Asked only for a run about to be requested."""
    return bool(instance.get_runs(filters=dg.RunsFilter(tags={RUN_KEY_TAG: run_key}), limit=1))


def skip_reason(what: str, why: dict[str, str], shown: int = 5) -> str:
    """``what``, then the reasons of the first ``shown`` recipes (a tick's skip reason is
    one line in the UI; the sensor's log lists them all)."""
    if not why:
        return what
    listed = "; ".join(f"{name}: {reason}" for name, reason in sorted(why.items())[:shown])
    more = f"; and {len(why) - shown} more" if len(why) > shown else ""
    return f"{what} ({listed}{more})"[:1000]
