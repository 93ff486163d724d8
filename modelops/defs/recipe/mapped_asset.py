"""A recipe's ``mapped_candidate`` asset: the previous version's champion through the
taxonomy mapping, offered before any training (``modelops.lifecycle.taxonomy_change``).

It sits between ``training_dataset`` and ``adapter``: the adapter asset reads its output
(under ``taxonomy_changes.policy: mapped_only`` a covered version is not trained), and the
evaluation asset compares the trained adapter with it.
"""

import dagster as dg

from modelops.config.recipe import LoadedRecipe
from modelops.defs.keys import RecipeKeys
from modelops.defs.metadata import num
from modelops.defs.partitions import split_key
from modelops.defs.resources import (
    ArtifactStoreResource,
    CatalogResource,
    RegistryResource,
    RuntimeResource,
    platform_from,
)
from modelops.lifecycle.dataset import DatasetRecord
from modelops.lifecycle.taxonomy_change import MappedOffer, offer_mapped_candidate


def build_mapped_asset(
    loaded: LoadedRecipe, group: str, tags: dict, partitioned: dict, op_tags: dict
):
    keys = RecipeKeys.of(loaded.name)

    @dg.asset(
        key=keys.mapped_candidate,
        group_name=group,
        **partitioned,
        ins={"dataset": dg.AssetIn(key=keys.training_dataset)},
        tags=tags,
        op_tags=op_tags,  # it scores the new dataset with the base: a heavy step
        description="The previous taxonomy version's champion composed with the mapping, "
        "registered as a candidate (no new weights), gated, and under mapped_first served at "
        "once; 'none' with the reason when the mapping does not allow it.",
    )
    def mapped_candidate(
        context: dg.AssetExecutionContext,
        runtime: RuntimeResource,
        registry: RegistryResource,
        artifact_store: ArtifactStoreResource,
        catalog: CatalogResource,
        dataset: dict,
    ):
        p = platform_from(runtime, registry, artifact_store, catalog)
        base = split_key(context.partition_key)[1]
        serving = p.registry.alias(loaded.name, "champion")
        if serving is not None and serving.base_model != base:
            # A mapped candidate reuses the serving champion's weights, on its base: it
            # has no place in a partition of another base (a base change trains).
            offer = MappedOffer(
                loaded.recipe.taxonomy_changes.policy,
                None,
                f"the serving champion {serving.id} is on {serving.base_model}, this "
                f"partition on {base}: no mapped candidate, the adapter trains",
            )
        else:
            offer = offer_mapped_candidate(
                p,
                loaded,
                DatasetRecord(**dataset),
                who=f"dagster run {context.run.run_id[:8]} ({p.settings.user})",
                emit=context.log.info,
            )
        return dg.Output(
            offer.to_dict(),
            metadata={
                "policy": offer.policy,
                "mapped_adapter_id": offer.adapter_id if offer.adapter_id else "none",
                "mapped_from": offer.source_id if offer.source_id else "none",
                "outcome": offer.reason,
                "gates_passed": "n/a" if offer.passed is None else offer.passed,
                "promoted": offer.promoted,
                f"test_{loaded.recipe.taxonomy_changes.metric}": num(offer.metric),
                "build_seconds": num(offer.build_seconds),
            },
        )

    return mapped_candidate
