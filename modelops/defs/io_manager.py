"""The IO manager: what one asset hands the next goes through the artifact store's
location, never a local disk another process would have to share.

The training assets pass small dicts (the dataset record, the adapter id, the
evaluation verdict). Dagster's default IO manager pickles them under the local
``DAGSTER_HOME``, which only works while every step runs on one machine.
:class:`StepValueIOManager` stores them as JSON with
:class:`~modelops.stores.step_values.StepValues` beside the artifacts
(``MODELOPS_ARTIFACTS``: a directory, or ``s3://...`` in production), so the same code
runs with the multiprocess executor, in separate run or step pods, or on another
engine. :func:`modelops.defs.resources.build_resources` binds it as ``io_manager``.
"""

from __future__ import annotations

from functools import cached_property
from urllib.parse import quote

import dagster as dg

from modelops.stores.step_values import StepValues


def value_key(asset_key: dg.AssetKey, partition_key: str | None) -> str:
    """``<asset key path>[/<partition>]``, each part URL-quoted (no ``/`` inside); a
    multi-partition key (a training asset's ``<base>|<taxonomy version>``) is one part per
    dimension, in Dagster's order: ``demo/adapter/minilm@all-MiniLM-L6-v2/v1``."""
    # A multi-partition key is its dimensions' keys joined by "|", which no key holds.
    partition = str(partition_key).split("|") if partition_key is not None else []
    return "/".join(quote(part, safe="@") for part in [*asset_key.path, *partition])


class StepValueIOManager(dg.ConfigurableIOManager):
    """Asset outputs as JSON under ``<artifacts_uri>/step-values/``."""

    artifacts_uri: str
    s3_endpoint_url: str | None = None

    @cached_property
    def values(self) -> StepValues:
        return StepValues(self.artifacts_uri, s3_endpoint_url=self.s3_endpoint_url)

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        if obj is None:  # an asset that returns nothing (MaterializeResult) stores nothing
            return
        partition = context.asset_partition_key if context.has_asset_partitions else None
        uri = self.values.put(value_key(context.asset_key, partition), obj)
        context.add_output_metadata({"step_value": dg.MetadataValue.path(uri)})

    def load_input(self, context: dg.InputContext):
        partition = context.asset_partition_key if context.has_asset_partitions else None
        return self.values.get(value_key(context.asset_key, partition))
