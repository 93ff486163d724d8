"""The ``landing_files`` sensor: files waiting in any recipe's landing folder -> that
recipe's ``batch_scoring`` run.

Each tick lists each landing root once (the folder of the recipes that keep the default,
``<MODELOPS_HOME>/landing``, is one root for all of them), then only the ``incoming/``
folders of the recipes found there. A recipe whose batch-scoring run is still going waits
(one query for all recipes with files), and the same waiting files get the same run key
for 10 minutes: a failed run is retried after that, and never runs twice at once.
"""

from __future__ import annotations

import time
from pathlib import Path

import dagster as dg

from modelops.config.errors import ModelopsError
from modelops.config.fingerprint import sha256_json
from modelops.config.recipe import LoadedRecipe
from modelops.defs.keys import LANDING_SENSOR, TAG_LANDING, TAG_REASON, RecipeKeys
from modelops.defs.resources import PlatformResource
from modelops.defs.sensors.cursor import launched, skip_reason

UNFINISHED = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def build_landing_sensor(recipes: list[LoadedRecipe]) -> dg.SensorDefinition:
    """One sensor over the landing folders of ``recipes``."""
    roots: dict[str, dict[str, list[LoadedRecipe]]] = {}  # by home: the same every tick

    @dg.sensor(
        name=LANDING_SENSOR,
        minimum_interval_seconds=15,
        default_status=dg.DefaultSensorStatus.RUNNING,
        asset_selection=[RecipeKeys.of(r.name).batch_scoring for r in recipes],
        description="Scores the files dropped in each recipe's landing folder: one "
        "batch_scoring run per recipe with files waiting.",
    )
    def landing_files(context: dg.SensorEvaluationContext, platform: PlatformResource):
        home = platform.runtime.home
        if home not in roots:
            roots[home] = by_root(recipes, Path(home))
        waiting, errors = waiting_files(
            roots[home], platform.artifact_store.s3_endpoint_url, context.log
        )
        busy = running_landing_runs(context.instance, list(waiting)) if waiting else {}
        requests, why = [], dict(errors)
        for name, files in sorted(waiting.items()):
            if name in busy:
                why[name] = f"batch scoring run {busy[name][:8]} still running"
                continue
            request = landing_request(name, files)
            if launched(context.instance, request.run_key):
                why[name] = f"run key {request.run_key} already launched"
                continue
            requests.append(request)
        for name, reason in sorted(why.items()):
            context.log.info(f"{name}: {reason}")
        if requests:
            return dg.SensorResult(run_requests=requests)
        return dg.SkipReason(skip_reason("no files to score", why) if why else "no files waiting")

    return landing_files


def landing_request(name: str, files: list[str]) -> dg.RunRequest:
    # The same waiting files get the same key for 10 minutes.
    stamp = sha256_json([sorted(str(f) for f in files), int(time.time() // 600)])[:16]
    return dg.RunRequest(
        run_key=f"{name}-landing-{stamp}",
        asset_selection=[RecipeKeys.of(name).batch_scoring],
        tags={TAG_REASON: f"{len(files)} landed files", TAG_LANDING: name},
    )


def by_root(recipes: list[LoadedRecipe], home: Path) -> dict[str, list[LoadedRecipe]]:
    """The recipes by landing root (a directory or ``s3://`` URI)."""
    out: dict[str, list[LoadedRecipe]] = {}
    for loaded in recipes:
        out.setdefault(str(loaded.landing_root(home)), []).append(loaded)
    return out


def waiting_files(
    roots: dict[str, list[LoadedRecipe]], s3_endpoint_url: str | None, log=None
) -> tuple[dict[str, list[str]], dict[str, str]]:
    """``({recipe: files waiting}, {recipe: why its folder could not be listed})`` of the
    recipes of each landing root (:func:`by_root`): one listing per root, then one of
    ``incoming/`` per recipe folder found there. A folder that cannot be listed (a link
    where ``incoming/`` should be, S3 refusing) is that recipe's error only."""
    from modelops.stores.landing import INCOMING, open_landing, recipe_folders

    waiting, errors = {}, {}
    for root, group in sorted(roots.items()):
        try:
            client = _client(root, s3_endpoint_url)
            present = recipe_folders(root, client=client)
        except ModelopsError as exc:
            errors.update({loaded.name: str(exc) for loaded in group})
            continue
        for loaded in group:
            if loaded.name not in present:
                continue
            try:
                location = open_landing(root, loaded.name, client=client)
                files = [location.uri_for(INCOMING, name) for name in location.pending()]
            except ModelopsError as exc:
                errors[loaded.name] = str(exc)
                if log is not None:
                    log.error(f"{loaded.name}: {exc}")
                continue
            if files:
                waiting[loaded.name] = files
    return waiting, errors


def _client(root: str, s3_endpoint_url: str | None):
    """One S3 client per ``s3://`` root (building one costs more than a listing)."""
    if not root.startswith("s3://"):
        return None
    from modelops.stores.s3 import s3_client

    return s3_client(s3_endpoint_url)


def running_landing_runs(instance: dg.DagsterInstance, names: list[str]) -> dict[str, str]:
    """``{recipe: run id}`` of the unfinished batch-scoring runs of ``names``: one query."""
    runs = instance.get_runs(filters=dg.RunsFilter(tags={TAG_LANDING: names}, statuses=UNFINISHED))
    return {run.tags[TAG_LANDING]: run.run_id for run in runs}
