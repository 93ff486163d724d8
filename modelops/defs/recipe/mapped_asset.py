"""A recipe's ``mapped_candidate`` asset: the previous version's champion through the
taxonomy mapping, offered before any training (``modelops.lifecycle.taxonomy_change``).

It sits between ``training_dataset`` and ``adapter``: the adapter asset reads its output
(under ``taxonomy_changes.policy: mapped_only`` a covered version is not trained), and the
evaluation asset compares the trained adapter with it.

``modelops.lifecycle.taxonomy_change`` loads torch: it is imported when the asset runs, not
when the definitions load. (No ``from __future__ import annotations`` here: Dagster reads
the asset function's ``context`` annotation as a type.)
"""

from typing import TYPE_CHECKING

import dagster as dg

from modelops.config.progress import Emit
from modelops.config.recipe import LoadedRecipe
from modelops.defs.keys import RecipeKeys
from modelops.defs.metadata import mapped_metadata
from modelops.defs.partitions import split_key
from modelops.defs.recipe.asset_args import training_args
from modelops.defs.resources import PlatformResource
from modelops.lifecycle.dataset import DatasetRecord
from modelops.lifecycle.platform import Platform

if TYPE_CHECKING:
    from modelops.lifecycle.taxonomy_change import MappedOffer


def build_mapped_asset(loaded: LoadedRecipe) -> dg.AssetsDefinition:
    keys = RecipeKeys.of(loaded.name)

    @dg.asset(
        key=keys.mapped_candidate,
        # it scores the new dataset with the base: a heavy step
        **training_args(loaded, heavy=True),
        ins={"dataset": dg.AssetIn(key=keys.training_dataset)},
        description="The previous taxonomy version's champion composed with the mapping, "
        "registered as a candidate (no new weights), gated, and under mapped_first served at "
        "once; 'none' with the reason when the mapping does not allow it.",
    )
    def mapped_candidate(
        context: dg.AssetExecutionContext, platform: PlatformResource, dataset: dict
    ):
        p = platform.platform
        offer = offer_on_base(
            p,
            loaded,
            DatasetRecord(**dataset),
            base=split_key(context.partition_key)[1],
            who=f"dagster run {context.run.run_id[:8]} ({p.settings.user})",
            emit=context.log.info,
        )
        metric = loaded.recipe.taxonomy_changes.metric
        return dg.Output(offer.to_dict(), metadata=mapped_metadata(offer, metric))

    return mapped_candidate


def offer_on_base(
    platform: Platform,
    loaded: LoadedRecipe,
    dataset: DatasetRecord,
    base: str,
    who: str,
    emit: Emit,
) -> "MappedOffer":
    """:func:`offer_mapped_candidate` in a partition of revision ``base``; none when the
    serving champion is on another base (a mapped candidate reuses its weights, on its
    base: it has no place in a partition of another base, where the adapter trains)."""
    from modelops.lifecycle.taxonomy_change import MappedOffer, offer_mapped_candidate

    serving = platform.registry.alias(loaded.name, "champion")
    if serving is not None and serving.base_model != base:
        return MappedOffer(
            loaded.recipe.taxonomy_changes.policy,
            None,
            f"the serving champion {serving.id} is on {serving.base_model}, this "
            f"partition on {base}: no mapped candidate, the adapter trains",
        )
    return offer_mapped_candidate(platform, loaded, dataset, who=who, emit=emit)
