"""The ``base_models`` sensor: a recipe whose base moved is re-adapted on the new base.

A recipe follows a catalog ref (``base_model: minilm@stable``). When the alias moves to
another revision in ``catalog/base_models.yaml``, or the recipe's ``base_model:`` line
names another model, the recipe resolves to a revision its serving champion was not
trained on. Each tick reads the recipes and the catalog from disk (no code-location reload
needed), registers the new revision in the ``base`` partition dimension, and requests one
run of the recipe's training assets for the serving taxonomy version on the new base. The
run key ``<recipe>-rebase-<version>-<revision>`` makes it idempotent: one run per recipe x
taxonomy version x base revision, however often the move is seen. The evaluation puts the
new adapter beside the serving champion on the old base; the gates decide; on failure the
old champion keeps serving. ``modelops rebase`` launches the same work on demand.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from modelops.config.errors import ModelopsError
from modelops.config.recipe import LoadedRecipe
from modelops.config.recipe_folder import RecipeFolder
from modelops.config.settings import Settings
from modelops.defs.k8s import k8s_tags
from modelops.defs.keys import TAG_BASE, TAG_MODE, TAG_REASON, TAG_TRAINING, RecipeKeys
from modelops.defs.partitions import (
    BASE_PARTITIONS,
    current_base,
    partition_key,
    partitions_name,
)
from modelops.defs.resources import PlatformResource
from modelops.ml.catalog import Catalog


@dataclass(frozen=True)
class Rebase:
    """One recipe to re-adapt: its taxonomy ``version`` on ``new_base`` (a revision)."""

    recipe: str
    taxonomy: str
    version: str
    old_base: str | None
    new_base: str

    @property
    def key(self) -> str:
        return str(partition_key(self.version, self.new_base))

    @property
    def run_key(self) -> str:
        return f"{self.recipe}-rebase-{self.version}-{self.new_base}"

    @property
    def reason(self) -> str:
        return f"base {self.old_base or 'none'} -> {self.new_base}"


def moved_bases(recipes: list[LoadedRecipe], catalog: Catalog, registry) -> list[Rebase]:
    """The recipes whose serving champion is on another revision than the one their
    ``base_model`` resolves to now (a recipe without a champion has nothing to carry
    over: its first training is a taxonomy backfill). One registry query for all."""
    out = []
    champions = registry.serving_adapters()
    for loaded in recipes:
        serving = champions.get(loaded.name)
        if serving is None:
            continue
        new = current_base(loaded, catalog)
        if serving.base_model != new:
            out.append(
                Rebase(
                    loaded.name,
                    loaded.taxonomy.name,
                    serving.taxonomy_version,
                    serving.base_model,
                    new,
                )
            )
    return out


def rebase_targets(
    recipes: list[LoadedRecipe],
    catalog: Catalog,
    registry,
    ref: str,
    only: list[str] | None = None,
) -> list[Rebase]:
    """``modelops rebase --base ref``: every recipe that follows ``ref`` (its
    ``base_model`` resolves to the same revision), or the ``only`` recipes named, on the
    revision ``ref`` resolves to, for its serving taxonomy version (else its data's)."""
    new = catalog.get(ref).ref
    if only:
        unknown = sorted(set(only) - {r.name for r in recipes})
        if unknown:
            raise ModelopsError(f"no recipe named {unknown[0]!r}")
        chosen = [r for r in recipes if r.name in only]
    else:
        chosen = [r for r in recipes if current_base(r, catalog) == new]
    if not chosen:
        raise ModelopsError(f"no recipe follows {ref} ({new}); name one with --recipe")
    out = []
    for loaded in chosen:
        serving = registry.alias(loaded.name, "champion")
        version = serving.taxonomy_version if serving else loaded.data_version
        out.append(
            Rebase(
                loaded.name,
                loaded.taxonomy.name,
                version,
                serving.base_model if serving else None,
                new,
            )
        )
    return out


def already_evaluated(instance: dg.DagsterInstance, rebase: Rebase) -> bool:
    """Whether the evaluation of that recipe's partition was materialized (passed or not)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=RecipeKeys.of(rebase.recipe).evaluation, asset_partitions=[rebase.key]
        ),
        limit=1,
    ).records
    return bool(records)


def rebase_tags(loaded: LoadedRecipe, rebase: Rebase) -> dict[str, str]:
    return {
        TAG_REASON: rebase.reason[:200],
        TAG_MODE: "full",  # another base: nothing to warm-start from
        TAG_BASE: rebase.new_base,
        TAG_TRAINING: loaded.name,
        **k8s_tags(loaded.recipe.compute, heavy=True),
    }


def build_base_sensor(settings: Settings, recipes: list[LoadedRecipe]) -> dg.SensorDefinition:
    """The sensor over the training assets of ``recipes`` (those in the code location)."""
    known = {r.name for r in recipes}
    # re-reads only the files that changed, and only this location's shard of them
    folder = RecipeFolder.shared(settings.recipes_dir, settings.recipe_shard)
    selection = [key for r in recipes for key in RecipeKeys.of(r.name).training]

    @dg.sensor(
        name="base_models",
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        asset_selection=selection,
        description="Watches catalog/base_models.yaml and the recipes' base_model lines; "
        "re-adapts the serving taxonomy version of every recipe whose base moved on the new "
        "revision (one run per recipe x version x base). Turn it off to hold base moves.",
    )
    def base_models(context: dg.SensorEvaluationContext, platform: PlatformResource):
        on_disk = [r for r in folder.load() if r.name in known]
        catalog = Catalog.load(settings.catalog_path)
        moves = moved_bases(on_disk, catalog, platform.registry.registry)
        by_name = {r.name: r for r in on_disk}
        todo = [m for m in moves if not already_evaluated(context.instance, m)]
        if not todo:
            return dg.SkipReason(
                "no base moved" if not moves else "every moved base is already evaluated"
            )
        instance = context.instance
        wanted = {BASE_PARTITIONS: {m.new_base for m in todo}}
        for move in todo:  # the serving version is normally known; an old instance may lack it
            wanted.setdefault(partitions_name(move.taxonomy), set()).add(move.version)
        # Registered here, before the run requests are checked against the partitions (a
        # SensorResult's own partition requests are applied only after that check).
        for name, keys in wanted.items():
            missing = sorted(k for k in keys if not instance.has_dynamic_partition(name, k))
            if missing:
                instance.add_dynamic_partitions(name, missing)
                context.log.info(f"registered partitions {name}: {', '.join(missing)}")
        for move in todo:
            context.log.info(f"{move.recipe}: {move.reason} ({move.version})")
        return [
            dg.RunRequest(
                run_key=m.run_key,
                partition_key=m.key,
                asset_selection=list(RecipeKeys.of(m.recipe).training),
                tags=rebase_tags(by_name[m.recipe], m),
            )
            for m in todo
        ]

    return base_models
