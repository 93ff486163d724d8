"""The ``drift_retraining`` sensor: a recipe's new drift report whose retraining policy
says retrain -> that recipe's retraining job (``<recipe>__retrain``).

Each tick reads the drift reports materialized since the last event it saw, for every
recipe at once: one event-log query for the materializations after a storage id. Its
first tick starts at the end of the event log: a report from before the sensor existed
launches nothing (the per-recipe sensors it replaced acted on those).
Per recipe, as before: its newest new report only; at most one run per report (run key
``<recipe>-drift-<storage id>``, and a run tagged with that report is never launched
again, whichever sensor launched it); ``retraining.cooldown_minutes`` between launches;
the serving champion's partition retrained. ``retraining.on_drift: false`` pauses one
recipe (its reports still come out). The cursor, JSON::

    {"storage_id": <last event seen>,
     "recipes": {"<recipe>": {"storage_id": <its last report>, "launched_at": <epoch s>}}}
"""

from __future__ import annotations

import time

import dagster as dg

from modelops.config.recipe import LoadedRecipe
from modelops.defs.keys import (
    DRIFT_SENSOR,
    TAG_DRIFT_EVENT,
    TAG_MODE,
    TAG_REASON,
    TAG_REPORT,
    RecipeKeys,
)
from modelops.defs.partitions import ensure_base_request, serving_key
from modelops.defs.resources import PlatformResource
from modelops.defs.sensors.cursor import launched, read_cursor, skip_reason, write_cursor
from modelops.ml.catalog import Catalog
from modelops.stores.registry_records import AdapterVersion

PAGE = 1000
"""Materializations read per tick at most; the rest wait for the next tick."""


def build_drift_sensor(recipes: list[LoadedRecipe], jobs: dict[str, dg.JobDefinition]):
    """One sensor over the drift reports of ``recipes``; ``jobs``: each recipe's
    retraining job, by recipe name."""
    by_name = {r.name: r for r in recipes}
    report_keys = {RecipeKeys.of(name).drift_report: name for name in by_name}

    @dg.sensor(
        name=DRIFT_SENSOR,
        minimum_interval_seconds=15,
        default_status=dg.DefaultSensorStatus.RUNNING,
        jobs=[jobs[name] for name in by_name],
        description="Launches a recipe's retraining job when its drift report's retraining "
        "policy says so: at most once per report, after the recipe's "
        "retraining.cooldown_minutes. retraining.on_drift: false pauses one recipe; "
        "turning this sensor off pauses every recipe.",
    )
    def drift_retraining(context: dg.SensorEvaluationContext, platform: PlatformResource):
        state = read_cursor(context.cursor)
        seen = state.setdefault("recipes", {})
        reports, state["storage_id"] = new_reports(
            context.instance, report_keys, state.get("storage_id")
        )
        requests, why = [], {}
        now = time.time()
        for name, event in sorted(reports.items()):
            mine = seen.setdefault(name, {})
            if event.storage_id <= mine.get("storage_id", 0):
                continue
            mine["storage_id"] = event.storage_id
            loaded = by_name[name]
            reason = decide(context.instance, loaded, event, mine, now, platform)
            if reason is not None:
                why[name] = reason
                continue
            serving = platform.registry.registry.alias(name, "champion")
            if serving is None:
                why[name] = "drift, but no serving adapter to retrain"
                continue
            mine["launched_at"] = now
            requests.append(
                drift_request(context.instance, loaded, event, serving, platform.catalog.catalog)
            )
        for name, reason in sorted(why.items()):
            context.log.info(f"{name}: {reason}")
        state["recipes"] = {k: v for k, v in seen.items() if k in by_name}
        cursor = write_cursor(state)
        if requests:
            return dg.SensorResult(run_requests=requests, cursor=cursor)
        what = "no new drift report" if not why else "no retraining"
        return dg.SensorResult(skip_reason=skip_reason(what, why), cursor=cursor)

    return drift_retraining


def new_reports(
    instance: dg.DagsterInstance, report_keys: dict[dg.AssetKey, str], after: int | None
) -> tuple[dict[str, dg.EventLogRecord], int]:
    """``({recipe: its newest drift report materialized after storage id ``after``},
    the storage id to read after next time)``: one event-log query for the
    materializations after ``after``, at most :data:`PAGE`. ``after`` None (the
    sensor's first tick): none, and the end of the event log (what was there before the
    sensor existed was for the sensors before it)."""
    storage = instance.event_log_storage
    if after is None:
        try:
            return {}, storage.get_maximum_record_id() or 0
        except NotImplementedError:  # a sharded event log: start from the beginning
            after = 0
    records = storage.get_event_records(
        dg.EventRecordsFilter(dg.DagsterEventType.ASSET_MATERIALIZATION, after_cursor=after),
        limit=PAGE,
        ascending=True,
    )
    out = {}
    for record in records:  # oldest first: a recipe's newest report wins
        name = report_keys.get(record.asset_key)
        if name is not None:
            out[name] = record
    return out, records[-1].storage_id if records else after


def decide(
    instance: dg.DagsterInstance,
    loaded: LoadedRecipe,
    event: dg.EventLogRecord,
    mine: dict,
    now: float,
    platform: PlatformResource,
) -> str | None:
    """Why the recipe's new drift report ``event`` launches no retraining, or None when it
    does (a champion still needed). ``mine``: the recipe's cursor entry."""
    if not loaded.recipe.retraining.on_drift:
        return "drift reports launch no retraining (retraining.on_drift: false)"
    metadata = event.asset_materialization.metadata
    if "launched_at" not in mine and not_retraining(metadata, {}, loaded, now) is None:
        # no launch recorded here (a new cursor): the cooldown counts from the last
        # retraining a drift report launched, as the runs say
        mine["launched_at"] = last_drift_launch(instance, loaded.name)
    why = not_retraining(metadata, mine, loaded, now)
    if why is None and launched(instance, drift_run_key(loaded.name, event.storage_id)):
        return f"retraining for drift report {event.storage_id} already launched"
    return why


def is_drifted(metadata) -> bool:
    drifted = metadata.get("drifted")
    return drifted is not None and bool(drifted.value)


def not_retraining(metadata, state: dict, loaded: LoadedRecipe, now: float) -> str | None:
    """Why a new drift report (its materialization ``metadata``) launches no retraining,
    or None when it does: no drift, a policy that only warns, or the cooldown since the
    recipe's last launch (``state["launched_at"]``)."""
    if not is_drifted(metadata):
        return "latest drift report: no drift"
    # The retraining policy's decision; reports from before it carry none: drift retrains.
    retrain = metadata.get("retrain")
    if retrain is not None and not retrain.value:
        return (
            "latest drift report: the data moved, but the retraining policy does not act "
            "(warning only)"
        )
    cooldown = loaded.recipe.retraining.cooldown_minutes
    wait = state.get("launched_at", 0) + cooldown * 60 - now
    if wait > 0:
        return f"drift, but in cooldown for {wait / 60:.1f} more minutes"
    return None


def last_drift_launch(instance: dg.DagsterInstance, recipe: str) -> float:
    """When the newest retraining run of ``recipe`` that a drift report launched was
    created (epoch seconds), 0 when there is none."""
    records = instance.get_run_records(
        filters=dg.RunsFilter(job_name=RecipeKeys.of(recipe).retrain_job), limit=50
    )
    for record in records:  # newest first
        if TAG_DRIFT_EVENT in record.dagster_run.tags:
            return record.create_timestamp.timestamp()
    return 0.0


def drift_run_key(recipe: str, storage_id: int) -> str:
    return f"{recipe}-drift-{storage_id}"


def drift_request(
    instance: dg.DagsterInstance,
    loaded: LoadedRecipe,
    event,
    serving: AdapterVersion,
    catalog: Catalog,
) -> dg.RunRequest:
    """The retraining run of a drift report ``event``: the serving champion's taxonomy
    version on its base, one run per report (its run key)."""
    metadata = event.asset_materialization.metadata
    key = serving_key(loaded, serving, catalog)  # its version on its base
    request = dg.RunRequest(
        run_key=drift_run_key(loaded.name, event.storage_id),
        job_name=RecipeKeys.of(loaded.name).retrain_job,
        partition_key=key,
        tags={
            TAG_REASON: f"drift: {metadata['fired'].value}"[:200],
            TAG_MODE: loaded.recipe.retraining.mode,
            TAG_DRIFT_EVENT: str(event.storage_id),
            TAG_REPORT: str(metadata["report"].value)[:200],
        },
    )
    missing = ensure_base_request(instance, serving.base_model)
    if missing is not None:  # a champion from before bases were a partition dimension
        instance.add_dynamic_partitions(missing.partitions_def_name, list(missing.partition_keys))
    return request
