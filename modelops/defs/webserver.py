"""The running Dagster webserver, over its GraphQL API: launching the backfill of a
taxonomy version (``modelops backfill``, the streaming demo's first training) or of a
base move (``modelops rebase``).

The backfill goes through Dagster's own machinery (``launchPartitionBackfill`` on the
running instance), so it shows, and can be re-run, in the UI. Each recipe x partition key
is its own backfill, hence its own run: Dagster's asset backfill makes one run per
partitions definition and key, so recipes sharing a taxonomy version in one backfill
would train one after another in one run, outside the training tag limit's reach. Each
run is tagged ``modelops/training=<recipe>`` (the queued run coordinator's limit) and
started by the instance's run launcher. Recipes whose evaluation of that key is already
materialized are left out, so launching again does not redo finished work: a recipe
whose run failed is launched again on its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from modelops.config.errors import InputError, ModelopsError
from modelops.config.progress import Emit
from modelops.config.recipe import load_recipes
from modelops.config.settings import Settings
from modelops.defs.backfill_wait import wait_for_backfills
from modelops.defs.graphql_api import (
    ADD_PARTITION,
    LAUNCH,
    MATERIALIZED,
    RUNNING_BACKFILLS,
    STATUS_QUERY,
    SUCCEEDED,
    GraphQL,
)
from modelops.defs.keys import TAG_BASE, TAG_MODE, TAG_TAXONOMY, TAG_TRAINING, RecipeKeys
from modelops.defs.partitions import (
    BASE_PARTITIONS,
    current_base,
    partition_key,
    partitions_name,
)
from modelops.lifecycle.dataset import taxonomy_mapping
from modelops.ml.catalog import Catalog

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """One recipe's training partition to backfill: taxonomy ``version`` on ``base``."""

    recipe: str
    taxonomy: str
    version: str
    base: str

    @property
    def key(self) -> str:
        return str(partition_key(self.version, self.base))


def launch_taxonomy_backfill(
    settings: Settings,
    taxonomy: str,
    version: str,
    *,
    recipes: list[str] | None = None,
    url: str | None = None,
    wait: bool = False,
    emit: Emit = log.info,
) -> dict:
    """Backfill taxonomy ``version`` of every recipe of ``taxonomy`` (or only ``recipes``),
    each on the base revision its ``base_model`` resolves to now, on the webserver at
    ``url`` (default ``settings.dagster_url``).

    Validates first: the recipes exist and use the taxonomy, the version file exists for
    each, and the mapping chain to it validates. Returns the report: ``taxonomy``,
    ``version``, ``already_done`` and ``launched`` (recipe names), ``backfill_id`` and
    ``url`` (when launched; ``backfills`` lists every one, one per partition key),
    ``status`` (the final one, with ``wait``; progress goes to ``emit``).
    """
    chosen = [r for r in load_recipes(settings.recipes_dir) if r.taxonomy.name == taxonomy]
    if recipes:
        unknown = sorted(set(recipes) - {r.name for r in chosen})
        if unknown:
            raise InputError(
                None, "--recipe", f"no recipe {unknown[0]!r} uses taxonomy {taxonomy!r}"
            )
        chosen = [r for r in chosen if r.name in recipes]
    if not chosen:
        raise InputError(settings.recipes_dir, None, f"no recipe uses taxonomy {taxonomy!r}")
    for loaded in chosen:
        if version not in loaded.taxonomy_versions():
            raise InputError(
                loaded.taxonomy_path.parent / f"{version}.yaml",
                None,
                f"version {version} of taxonomy {taxonomy!r} not found for "
                f"recipe {loaded.name} (data labelled in {loaded.data_version})",
            )
        taxonomy_mapping(loaded, version)  # the mapping chain must validate first
    catalog = Catalog.load(settings.catalog_path)
    targets = [Target(r.name, taxonomy, version, current_base(r, catalog)) for r in chosen]
    report = launch_backfills(
        settings,
        targets,
        url=url,
        wait=wait,
        emit=emit,
        title=f"taxonomy {taxonomy}:{version}",
        description="modelops backfill",
        tags={TAG_TAXONOMY: f"{taxonomy}.{version}", TAG_TRAINING: "backfill"},
    )
    return {"taxonomy": taxonomy, "version": version, **report}


def launch_backfills(
    settings: Settings,
    targets: list[Target],
    *,
    url: str | None,
    wait: bool,
    emit: Emit,
    title: str,
    description: str,
    tags: dict[str, str],
) -> dict:
    """Backfill each target's training assets for its partition key: one Dagster backfill
    per recipe x key, so each recipe trains in its own run and shows, and can be re-run,
    in the UI. Targets whose evaluation of that key is materialized, or that a running
    backfill covers, are left out. Returns ``already_done``, ``already_running``,
    ``launched``, ``backfills`` (one per recipe: ``recipe``, ``id``, ``url``, ``key``; with
    ``wait`` also its ``status`` and ``runs``: ``run_id`` and ``status``),
    ``backfill_id``/``url`` (the first one) and ``status`` (with ``wait``: the worst)."""
    client = GraphQL(url or settings.dagster_url)
    selector = _repository_selector(client, targets)
    done, pending = [], []
    for target in targets:
        (done if _materialized(client, target) else pending).append(target)
    # Two launches at once (two operators, a retry, the demo) must not start the same work
    # twice: under a lock, targets a running backfill of the same key covers are left out.
    with _launch_lock(settings):
        running = _running_backfills(client, pending)
        pending = [t for t in pending if t.recipe not in running]
        report = {
            "already_done": [t.recipe for t in done],
            "already_running": running,
            "launched": [t.recipe for t in pending],
            "backfills": [],
            "backfill_id": None,
            "status": None,
        }
        _register_partitions(client, selector, pending)
        for target in pending:
            report["backfills"].append(
                _launch(client, target, title, description, {**tags, TAG_TRAINING: target.recipe})
            )
    if report["backfills"]:
        report["backfill_id"] = report["backfills"][0]["id"]
        report["url"] = report["backfills"][0]["url"]
    if report["backfills"] and wait:
        wait_for_backfills(client, report["backfills"], emit=emit)
        failed = [b["status"] for b in report["backfills"] if b["status"] not in SUCCEEDED]
        report["status"] = failed[0] if failed else report["backfills"][0]["status"]
    return report


def launch_rebase(
    settings: Settings,
    ref: str,
    *,
    recipes: list[str] | None = None,
    url: str | None = None,
    wait: bool = False,
    emit: Emit = log.info,
) -> dict:
    """``modelops rebase``: backfill the serving taxonomy version of every recipe that
    follows ``ref`` (or of ``recipes``) on the revision ``ref`` resolves to, as the
    ``base_models`` sensor does when it sees the move. Returns the backfill report plus
    ``base`` (that revision) and ``target``."""
    from modelops.defs.bases import rebase_targets
    from modelops.stores.registry import Registry

    catalog = Catalog.load(settings.catalog_path)
    registry = Registry(settings.database_url)
    try:
        moves = rebase_targets(
            load_recipes(settings.recipes_dir), catalog, registry, ref, only=recipes
        )
    finally:
        registry.close()
    new = catalog.get(ref).ref
    targets = [Target(m.recipe, m.taxonomy, m.version, m.new_base) for m in moves]
    report = launch_backfills(
        settings,
        targets,
        url=url,
        wait=wait,
        emit=emit,
        title=f"rebase onto {new}",
        description=f"modelops rebase --base {ref}",
        tags={TAG_BASE: new, TAG_MODE: "full", TAG_TRAINING: "backfill"},
    )
    return {"base": new, "target": f"{ref} ({new})", **report}


def _repository_selector(client: GraphQL, targets: list[Target]) -> dict:
    """The code location that holds the targets' assets; refuses recipes it does not know."""
    keys = [{"path": list(RecipeKeys.of(t.recipe).evaluation.path)} for t in targets]
    nodes = client.call(STATUS_QUERY, {"keys": keys})["assetNodes"]
    # Dagster answers with the nodes as a set, in no given order: match them by key.
    by_key = {tuple(n["assetKey"]["path"]): n for n in nodes}
    missing = [
        t.recipe for t in targets if tuple(RecipeKeys.of(t.recipe).evaluation.path) not in by_key
    ]
    if missing:
        raise ModelopsError(
            f"the Dagster instance at {client.url} does not know the assets of recipe(s) "
            f"{', '.join(missing)} (reload the code location)"
        )
    node = by_key[tuple(RecipeKeys.of(targets[0].recipe).evaluation.path)]
    return {
        "repositoryName": node["repository"]["name"],
        "repositoryLocationName": node["repository"]["location"]["name"],
    }


def _materialized(client: GraphQL, target: Target) -> bool:
    """Whether the target's evaluation of its partition key is materialized."""
    key = {"path": list(RecipeKeys.of(target.recipe).evaluation.path)}
    answer = client.call(MATERIALIZED, {"key": key, "partitions": [target.key]})["assetOrError"]
    return bool(answer.get("assetMaterializations"))


_THREAD_LOCK = threading.Lock()


@contextlib.contextmanager
def _launch_lock(settings: Settings) -> Iterator[None]:
    """One launch at a time on this machine: a thread lock and a file lock under the
    Dagster home (two processes)."""
    folder = settings.dagster_home or settings.home
    folder.mkdir(parents=True, exist_ok=True)
    with _THREAD_LOCK, open(folder / ".modelops-backfill.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _running_backfills(client: GraphQL, pending: list[Target]) -> dict[str, str]:
    """``{recipe: backfill id}`` for the pending targets a requested (running) backfill of
    the same partition key already covers."""
    if not pending:
        return {}
    answer = client.call(RUNNING_BACKFILLS, {})["partitionBackfillsOrError"]
    if "results" not in answer:
        raise ModelopsError(f"listing running backfills: {answer.get('message', answer)}")
    running = {}
    for backfill in answer["results"]:
        paths = {tuple(a["path"]) for a in backfill.get("assetSelection") or []}
        for target in pending:
            if target.key not in (backfill.get("partitionNames") or []):
                continue
            if tuple(RecipeKeys.of(target.recipe).evaluation.path) in paths:
                running.setdefault(target.recipe, backfill["id"])
    return running


def _register_partitions(client: GraphQL, selector: dict, targets: list[Target]) -> None:
    """Add the targets' taxonomy versions and base revisions as partitions (each once)."""
    wanted = {(partitions_name(t.taxonomy), t.version) for t in targets}
    wanted |= {(BASE_PARTITIONS, t.base) for t in targets}
    for name, value in sorted(wanted):
        added = client.call(ADD_PARTITION, {"selector": selector, "name": name, "key": value})[
            "addDynamicPartition"
        ]
        if "message" in added:
            raise ModelopsError(f"adding partition {value} to {name}: {added['message']}")


def _launch(client: GraphQL, target: Target, title, description, tags) -> dict:
    """Launch the backfill of one recipe's training assets for its partition key."""
    params = {
        "partitionNames": [target.key],
        "assetSelection": [{"path": list(k.path)} for k in RecipeKeys.of(target.recipe).training],
        "title": f"{title}: {target.recipe} ({target.base})",
        "description": f"{description}: {target.recipe}",
        "tags": [{"key": k, "value": v} for k, v in tags.items()],
    }
    result = client.call(LAUNCH, {"params": params})["launchPartitionBackfill"]
    if "backfillId" not in result:
        raise ModelopsError(
            f"backfill of {target.recipe} refused: {result.get('message', result['__typename'])}"
        )
    return {
        "recipe": target.recipe,
        "id": result["backfillId"],
        "url": f"{client.url}/runs/b/{result['backfillId']}",
        "key": target.key,
    }


def report_lines(report: dict) -> list[str]:
    """What a launch did: one line per recipe already done or running, per backfill
    launched (one per recipe) and, when waited for, per run it made."""
    target = report.get("target") or f"{report['taxonomy']}:{report['version']}"
    lines = [
        f"{recipe}: {target} already evaluated; nothing to do" for recipe in report["already_done"]
    ]
    lines += [
        f"{recipe}: {target} already being backfilled by {backfill}; not launched again"
        for recipe, backfill in (report.get("already_running") or {}).items()
    ]
    for backfill in report.get("backfills") or []:
        line = f"{backfill['recipe']}: launched backfill {backfill['id']} of {target} "
        line += f"({backfill['key']}): {backfill['url']}"
        if backfill.get("status"):
            runs = ", ".join(f"{r['run_id']} {r['status']}" for r in backfill["runs"])
            line += f"; {backfill['status']} (run {runs or 'none'})"
        lines.append(line)
    if report["backfill_id"] and report["status"]:
        lines.append(f"finished: {report['status']}")
    return lines


def wait_for_webserver(url: str, poll_seconds: float = 3.0) -> GraphQL:
    """Block until the webserver at ``url`` answers GraphQL; return its client."""
    client = GraphQL(url)
    while True:
        try:
            client.call("{ version }", {})
            return client
        except ModelopsError:
            time.sleep(poll_seconds)
