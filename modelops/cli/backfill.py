"""``modelops backfill --taxonomy NAME:VERSION``: move recipes to a taxonomy version
through Dagster's own backfill machinery (GraphQL ``launchPartitionBackfill`` on the
running instance), so the backfill shows, and can be re-run, in the UI.

Recipes whose evaluation of that version is already materialized are left out, so
running the command again does not redo finished work; a recipe whose run failed is
launched again on its own.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request

from modelops.config.errors import InputError, ModelopsError

TERMINAL = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}

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

BACKFILL_STATUS = """
query Backfill($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { status }
    ... on PythonError { message }
  }
}"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "backfill", help="relabel, train, evaluate and gate every recipe of a taxonomy version"
    )
    parser.add_argument("--taxonomy", required=True, metavar="NAME:VERSION",
                        help="the taxonomy version to move to, e.g. demo_intents:v2")
    parser.add_argument("--recipe", action="append", default=None,
                        help="only this recipe (repeatable; default: every recipe of the taxonomy)")
    parser.add_argument("--url", default=None,
                        help="Dagster webserver (default MODELOPS_DAGSTER_URL or "
                        "http://127.0.0.1:3000)")
    parser.add_argument("--wait", action="store_true",
                        help="wait for the backfill to finish; exit 1 unless it succeeded")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from modelops.config.recipe import load_recipes
    from modelops.config.settings import Settings
    from modelops.defs.partitions import partitions_name
    from modelops.lifecycle.dataset import taxonomy_mapping

    settings = Settings.from_env()
    name, _, version = args.taxonomy.partition(":")
    if not name or not version:
        raise InputError(None, "--taxonomy", f"expected NAME:VERSION, got {args.taxonomy!r}")
    recipes = [r for r in load_recipes(settings.recipes_dir) if r.taxonomy.name == name]
    if args.recipe:
        unknown = sorted(set(args.recipe) - {r.name for r in recipes})
        if unknown:
            raise InputError(None, "--recipe", f"no recipe {unknown[0]!r} uses taxonomy {name!r}")
        recipes = [r for r in recipes if r.name in args.recipe]
    if not recipes:
        raise InputError(settings.recipes_dir, None, f"no recipe uses taxonomy {name!r}")
    for loaded in recipes:
        if version not in loaded.taxonomy_versions():
            raise InputError(loaded.taxonomy_path.parent / f"{version}.yaml", None,
                             f"version {version} of taxonomy {name!r} not found for "
                             f"recipe {loaded.name} (data labelled in {loaded.data_version})")
        taxonomy_mapping(loaded, version)  # the mapping chain must validate first

    client = GraphQL(args.url or settings.dagster_url)
    keys = [{"path": [r.name, "evaluation"]} for r in recipes]
    nodes = client.call(STATUS_QUERY, {"keys": keys})["assetNodes"]
    if len(nodes) != len(recipes):
        raise ModelopsError(
            f"the Dagster instance at {client.url} does not know every recipe's assets "
            "(reload the code location)"
        )
    node = nodes[0]
    selector = {"repositoryName": node["repository"]["name"],
                "repositoryLocationName": node["repository"]["location"]["name"]}
    done, pending = [], []
    for loaded, n in zip(recipes, nodes, strict=True):
        status = n.get("assetPartitionStatuses") or {}
        (done if version in status.get("materializedPartitions", []) else pending).append(loaded)
    report = {"taxonomy": name, "version": version, "already_done": [r.name for r in done],
              "launched": [r.name for r in pending], "backfill_id": None, "status": None}
    if pending:
        added = client.call(ADD_PARTITION, {"selector": selector, "name": partitions_name(name),
                                            "key": version})["addDynamicPartition"]
        if "message" in added:
            raise ModelopsError(f"adding partition {version}: {added['message']}")
        params = {
            "partitionNames": [version],
            "assetSelection": [
                {"path": [r.name, asset]}
                for r in pending
                for asset in ("training_dataset", "adapter", "evaluation", "champion")
            ],
            "title": f"taxonomy {name}:{version}",
            "description": "modelops backfill: " + ", ".join(r.name for r in pending),
            "tags": [{"key": "modelops/taxonomy", "value": f"{name}.{version}"}],
        }
        result = client.call(LAUNCH, {"params": params})["launchPartitionBackfill"]
        if "backfillId" not in result:
            raise ModelopsError(f"backfill refused: {result.get('message', result['__typename'])}")
        report["backfill_id"] = result["backfillId"]
        report["url"] = f"{client.url}/runs/b/{result['backfillId']}"
        if args.wait:
            report["status"] = _wait(client, result["backfillId"])
    _print(report, args.json)
    if report["status"] and report["status"] not in ("COMPLETED", "COMPLETED_SUCCESS"):
        return 1
    return 0


def _wait(client: GraphQL, backfill_id: str, poll_seconds: float = 5.0) -> str:
    while True:
        status = client.call(BACKFILL_STATUS, {"id": backfill_id})["partitionBackfillOrError"]
        if "status" not in status:
            raise ModelopsError(f"backfill {backfill_id}: {status.get('message', status)}")
        if status["status"] in TERMINAL:
            return status["status"]
        print(f"backfill {backfill_id}: {status['status']}", file=sys.stderr)
        time.sleep(poll_seconds)


def _print(report: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report, indent=2))
        return
    target = f"{report['taxonomy']}:{report['version']}"
    for recipe in report["already_done"]:
        print(f"{recipe}: {target} already evaluated; nothing to do")
    if report["backfill_id"]:
        print(f"launched backfill {report['backfill_id']} of {target} for "
              f"{', '.join(report['launched'])}: {report['url']}")
        if report["status"]:
            print(f"finished: {report['status']}")


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
