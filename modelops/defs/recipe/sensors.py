"""A recipe's sensors: landing files, production windows, drift reports. Sensors stay
light: they look at files, counts and metadata, never train (the retraining job and
schedule are in ``jobs.py`` and ``schedules.py``). Each takes the ``platform`` resource
and reads the one nested store it needs, opening no other."""

import json
import time
from pathlib import Path

import dagster as dg

from modelops.config.fingerprint import sha256_json
from modelops.config.recipe import LoadedRecipe
from modelops.defs.keys import (
    TAG_DRIFT_EVENT,
    TAG_LANDING,
    TAG_MODE,
    TAG_REASON,
    TAG_REPORT,
    RecipeKeys,
)
from modelops.defs.partitions import ensure_base_request, serving_key
from modelops.defs.resources import PlatformResource
from modelops.ml.catalog import Catalog
from modelops.stores.registry_records import AdapterVersion

UNFINISHED = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def build_recipe_sensors(loaded: LoadedRecipe, retrain_job) -> list[dg.SensorDefinition]:
    """Landing files -> batch scoring; enough new rows -> drift report; a drifted report
    -> retraining (one run per drift event, with a cooldown). Each tick reads counts
    and metadata only."""
    return [
        build_landing_sensor(loaded),
        build_window_sensor(loaded),
        build_drift_sensor(loaded, retrain_job),
    ]


def build_landing_sensor(loaded: LoadedRecipe) -> dg.SensorDefinition:
    name = loaded.name
    keys = RecipeKeys.of(name)

    @dg.sensor(
        name=keys.landing_sensor,
        minimum_interval_seconds=15,
        default_status=dg.DefaultSensorStatus.RUNNING,
        asset_selection=[keys.batch_scoring],
        description=f"Scores files dropped in the landing folder of {name}.",
    )
    def landing(context: dg.SensorEvaluationContext, platform: PlatformResource):
        from modelops.serving.batch_scoring import pending_files

        root = loaded.landing_root(Path(platform.runtime.home))
        # One listing of incoming/, local or S3.
        s3_endpoint_url = platform.artifact_store.s3_endpoint_url
        files = pending_files(root, name, s3_endpoint_url=s3_endpoint_url)
        if not files:
            return dg.SkipReason("no files waiting")
        busy = context.instance.get_runs(
            filters=dg.RunsFilter(tags={TAG_LANDING: name}, statuses=UNFINISHED), limit=1
        )
        if busy:
            return dg.SkipReason(f"batch scoring run {busy[0].run_id[:8]} still running")
        # The same waiting files get the same key for 10 minutes: a failed run is
        # retried after that, and never runs twice at once.
        stamp = sha256_json([sorted(str(f) for f in files), int(time.time() // 600)])[:16]
        return dg.RunRequest(
            run_key=f"{name}-landing-{stamp}",
            tags={TAG_REASON: f"{len(files)} landed files", TAG_LANDING: name},
        )

    return landing


def build_window_sensor(loaded: LoadedRecipe) -> dg.SensorDefinition:
    name = loaded.name
    keys = RecipeKeys.of(name)
    size = loaded.recipe.monitoring.window_size

    @dg.sensor(
        name=keys.window_sensor,
        minimum_interval_seconds=15,
        default_status=dg.DefaultSensorStatus.RUNNING,
        asset_selection=[keys.drift_report],
        description=f"Requests a drift report when {size} new production "
        "rows have been logged since the last one.",
    )
    def production_window(context: dg.SensorEvaluationContext, platform: PlatformResource):
        log = platform.production_log.log
        after = int(context.cursor or 0)
        new = log.count_since(name, after)
        if new < size:
            return dg.SkipReason(f"{new}/{size} new rows since id {after}")
        latest = log.latest_prediction_id(name)
        context.update_cursor(str(latest))
        return dg.RunRequest(
            run_key=f"{name}-window-{latest}",
            tags={TAG_REASON: f"{new} new production rows"},
        )

    return production_window


def build_drift_sensor(loaded: LoadedRecipe, retrain_job) -> dg.SensorDefinition:
    keys = RecipeKeys.of(loaded.name)
    retraining = loaded.recipe.retraining

    @dg.sensor(
        name=keys.drift_sensor,
        minimum_interval_seconds=15,
        default_status=dg.DefaultSensorStatus.RUNNING,
        job=retrain_job,
        description=f"Launches {retrain_job.name} ({retraining.mode}) when a drift report's "
        f"retraining policy ({retraining.trigger}) says so; at most once per report, "
        f"{retraining.cooldown_minutes} min cooldown. "
        "Turn it off to pause retraining.",
    )
    def drift(context: dg.SensorEvaluationContext, platform: PlatformResource):
        state = json.loads(context.cursor) if context.cursor else {}
        records = context.instance.fetch_materializations(
            keys.drift_report, limit=1, ascending=False
        ).records
        if not records or records[0].storage_id <= state.get("storage_id", 0):
            return dg.SkipReason("no new drift report")
        event = records[0]
        state["storage_id"] = event.storage_id
        now = time.time()
        why = not_retraining(event.asset_materialization.metadata, state, loaded, now)
        serving = None if why else platform.registry.registry.alias(loaded.name, "champion")
        if why is None and serving is None:
            why = "drift, but no serving adapter to retrain"
        if why is None:
            state["launched_at"] = now
        context.update_cursor(json.dumps(state))
        if why is not None:
            return dg.SkipReason(why)
        return drift_request(context.instance, loaded, event, serving, platform.catalog.catalog)

    return drift


def not_retraining(metadata, state: dict, loaded: LoadedRecipe, now: float) -> str | None:
    """Why a new drift report (its materialization ``metadata``) launches no retraining,
    or None when it does: no drift, a policy that only warns, or the cooldown since the
    last launch (``state["launched_at"]``)."""
    drifted = metadata.get("drifted")
    if drifted is None or not drifted.value:
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
        run_key=f"{loaded.name}-drift-{event.storage_id}",
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
