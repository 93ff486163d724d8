"""The running Dagster webserver, over its GraphQL API: launching the backfill of a
taxonomy version (``modelops backfill``, the streaming demo's first training).

The backfill goes through Dagster's own machinery (``launchPartitionBackfill`` on the
running instance), so it shows, and can be re-run, in the UI. Recipes whose evaluation of
that version is already materialized are left out, so launching again does not redo
finished work; a recipe whose run failed is launched again on its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

from modelops.config.errors import InputError, ModelopsError
from modelops.config.progress import Emit
from modelops.config.recipe import load_recipes
from modelops.config.settings import Settings
from modelops.defs.keys import TAG_TAXONOMY, TAG_TRAINING, RecipeKeys
from modelops.defs.partitions import partitions_name
from modelops.lifecycle.dataset import taxonomy_mapping

log = logging.getLogger(__name__)

TERMINAL = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}
SUCCEEDED = ("COMPLETED", "COMPLETED_SUCCESS")

STATUS_QUERY = """
query Status($keys: [AssetKeyInput!]) {
  assetNodes(assetKeys: $keys) {
    assetKey { path }
    repository { name location { name } }
    assetPartitionStatuses {
      ... on DefaultPartitionStatuses { materializedPartitions failedPartitions }
    }
  }
}"""

ADD_PARTITION = """
mutation Add($selector: RepositorySelector!, $name: String!, $key: String!) {
  addDynamicPartition(repositorySelector: $selector, partitionsDefName: $name,
                      partitionKey: $key) {
    __typename
    ... on PythonError { message }
    ... on UnauthorizedError { message }
  }
}"""

LAUNCH = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on PartitionKeysNotFoundError { message }
    ... on PartitionSetNotFoundError { message }
    ... on UnauthorizedError { message }
    ... on InvalidSubsetError { message }
  }
}"""

RUNNING_BACKFILLS = """
query Running {
  partitionBackfillsOrError(status: REQUESTED) {
    __typename
    ... on PartitionBackfills { results { id partitionNames assetSelection { path } } }
    ... on PythonError { message }
  }
}"""

BACKFILL_STATUS = """
query Backfill($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { status }
    ... on PythonError { message }
  }
}"""


class GraphQL:
    """A minimal client for the Dagster webserver's GraphQL endpoint."""

    def __init__(self, url: str, timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.timeout = timeout

    def call(self, query: str, variables: dict) -> dict:
        body = json.dumps({"query": query, "variables": variables}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                document = json.loads(response.read())
        except (urllib.error.URLError, OSError) as exc:
            raise ModelopsError(
                f"no Dagster webserver answers at {self.url} ({exc}); start it with `make run`"
            ) from None
        if document.get("errors"):
            raise ModelopsError(f"Dagster GraphQL error: {document['errors'][0].get('message')}")
        return document["data"]


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
    """Backfill partition ``version`` of every recipe of ``taxonomy`` (or only ``recipes``)
    on the webserver at ``url`` (default ``settings.dagster_url``).

    Validates first: the recipes exist and use the taxonomy, the version file exists for
    each, and the mapping chain to it validates. Returns the report: ``taxonomy``,
    ``version``, ``already_done`` and ``launched`` (recipe names), ``backfill_id`` and
    ``url`` (when launched), ``status`` (the final one, with ``wait``; progress goes to
    ``emit``).
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
            raise InputError(loaded.taxonomy_path.parent / f"{version}.yaml", None,
                             f"version {version} of taxonomy {taxonomy!r} not found for "
                             f"recipe {loaded.name} (data labelled in {loaded.data_version})")
        taxonomy_mapping(loaded, version)  # the mapping chain must validate first

    client = GraphQL(url or settings.dagster_url)
    keys = [{"path": list(RecipeKeys.of(r.name).evaluation.path)} for r in chosen]
    nodes = client.call(STATUS_QUERY, {"keys": keys})["assetNodes"]
    # Dagster answers with the nodes as a set, in no given order: match them by key.
    by_key = {tuple(n["assetKey"]["path"]): n for n in nodes}
    missing = [r.name for r in chosen
               if tuple(RecipeKeys.of(r.name).evaluation.path) not in by_key]
    if missing:
        raise ModelopsError(
            f"the Dagster instance at {client.url} does not know the assets of recipe(s) "
            f"{', '.join(missing)} (reload the code location)"
        )
    node = by_key[tuple(RecipeKeys.of(chosen[0].name).evaluation.path)]
    selector = {"repositoryName": node["repository"]["name"],
                "repositoryLocationName": node["repository"]["location"]["name"]}
    done, pending = [], []
    for loaded in chosen:
        n = by_key[tuple(RecipeKeys.of(loaded.name).evaluation.path)]
        status = n.get("assetPartitionStatuses") or {}
        (done if version in status.get("materializedPartitions", []) else pending).append(loaded)
    # Two launches at once (two operators, a retry, the demo) must not start the same work
    # twice: under a lock, recipes a running backfill of this version covers are left out.
    with _launch_lock(settings):
        running = _running_backfills(client, version, pending)
        pending = [r for r in pending if r.name not in running]
        report = _launch(client, selector, taxonomy, version, done, pending, running)
    if report["backfill_id"] and wait:
        report["status"] = wait_for_backfill(client, report["backfill_id"], emit=emit)
    return report


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


def _running_backfills(client: GraphQL, version: str, pending: list) -> dict[str, str]:
    """``{recipe: backfill id}`` for the pending recipes a requested (running) backfill of
    ``version`` already covers."""
    if not pending:
        return {}
    answer = client.call(RUNNING_BACKFILLS, {})["partitionBackfillsOrError"]
    if "results" not in answer:
        raise ModelopsError(f"listing running backfills: {answer.get('message', answer)}")
    running = {}
    for backfill in answer["results"]:
        if version not in (backfill.get("partitionNames") or []):
            continue
        paths = {tuple(a["path"]) for a in backfill.get("assetSelection") or []}
        for loaded in pending:
            if tuple(RecipeKeys.of(loaded.name).evaluation.path) in paths:
                running.setdefault(loaded.name, backfill["id"])
    return running


def _launch(client, selector, taxonomy, version, done, pending, running) -> dict:
    report = {"taxonomy": taxonomy, "version": version, "already_done": [r.name for r in done],
              "already_running": running, "launched": [r.name for r in pending],
              "backfill_id": None, "status": None}
    if pending:
        added = client.call(ADD_PARTITION, {"selector": selector,
                                            "name": partitions_name(taxonomy),
                                            "key": version})["addDynamicPartition"]
        if "message" in added:
            raise ModelopsError(f"adding partition {version}: {added['message']}")
        params = {
            "partitionNames": [version],
            "assetSelection": [
                {"path": list(key.path)}
                for r in pending
                for key in RecipeKeys.of(r.name).training
            ],
            "title": f"taxonomy {taxonomy}:{version}",
            "description": "modelops backfill: " + ", ".join(r.name for r in pending),
            "tags": [
                {"key": TAG_TAXONOMY, "value": f"{taxonomy}.{version}"},
                {"key": TAG_TRAINING, "value": "backfill"},
            ],
        }
        result = client.call(LAUNCH, {"params": params})["launchPartitionBackfill"]
        if "backfillId" not in result:
            raise ModelopsError(f"backfill refused: {result.get('message', result['__typename'])}")
        report["backfill_id"] = result["backfillId"]
        report["url"] = f"{client.url}/runs/b/{result['backfillId']}"
    return report


def wait_for_backfill(
    client: GraphQL, backfill_id: str, *, emit: Emit = log.info, poll_seconds: float = 5.0
) -> str:
    """Poll the backfill until it ends; return its final status."""
    while True:
        status = client.call(BACKFILL_STATUS, {"id": backfill_id})["partitionBackfillOrError"]
        if "status" not in status:
            raise ModelopsError(f"backfill {backfill_id}: {status.get('message', status)}")
        if status["status"] in TERMINAL:
            return status["status"]
        emit(f"backfill {backfill_id}: {status['status']}")
        time.sleep(poll_seconds)


def report_lines(report: dict) -> list[str]:
    """What a backfill launch did, one line per recipe already done and per launch."""
    target = f"{report['taxonomy']}:{report['version']}"
    lines = [f"{recipe}: {target} already evaluated; nothing to do"
             for recipe in report["already_done"]]
    lines += [f"{recipe}: {target} already being backfilled by {backfill}; not launched again"
              for recipe, backfill in (report.get("already_running") or {}).items()]
    if report["backfill_id"]:
        lines.append(f"launched backfill {report['backfill_id']} of {target} for "
                     f"{', '.join(report['launched'])}: {report['url']}")
        if report["status"]:
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
