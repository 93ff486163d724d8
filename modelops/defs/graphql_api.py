"""The Dagster webserver's GraphQL API as modelops uses it: a minimal client and the
queries of launching and watching backfills (``modelops.defs.webserver``)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from modelops.config.errors import ModelopsError

TERMINAL = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}
SUCCEEDED = ("COMPLETED", "COMPLETED_SUCCESS")

STATUS_QUERY = """
query Status($keys: [AssetKeyInput!]) {
  assetNodes(assetKeys: $keys) {
    assetKey { path }
    repository { name location { name } }
  }
}"""

MATERIALIZED = """
query Done($key: AssetKeyInput!, $partitions: [String!]) {
  assetOrError(assetKey: $key) {
    __typename
    ... on Asset { assetMaterializations(partitions: $partitions, limit: 1) { partition } }
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

REQUESTED_IDS = """
query Requested {
  partitionBackfillsOrError(status: REQUESTED) {
    __typename
    ... on PartitionBackfills { results { id } }
    ... on PythonError { message }
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
    ... on PartitionBackfill { status runs { runId status } }
    ... on PythonError { message }
    ... on BackfillNotFoundError { message }
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
        except urllib.error.HTTPError as exc:
            reason = exc.read(300).decode("utf-8", "replace").strip()
            raise ModelopsError(
                f"the Dagster webserver at {self.url} refused the request ({exc.code}: "
                f"{reason}); behind a proxy, add its host name to MODELOPS_UI_PUBLIC_NAMES "
                "(docs/security.md)"
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            raise ModelopsError(
                f"no Dagster webserver answers at {self.url} ({exc}); start it with `make run`"
            ) from None
        if document.get("errors"):
            raise ModelopsError(f"Dagster GraphQL error: {document['errors'][0].get('message')}")
        return document["data"]
