"""A recipe's adapters by taxonomy version x base-model revision: Dagster multi-partitions.

Every training asset of a recipe is partitioned in two dynamic dimensions:

- ``taxonomy`` (``taxonomy_<name>``: ``v1``, ``v2``, ...), shared by the recipes of one
  taxonomy. A new version file becomes a new key (the ``taxonomy_versions`` sensor in
  ``defs/taxonomy.py``, or ``modelops init``).
- ``base`` (``base_models``: ``minilm@all-MiniLM-L6-v2``, ...), shared by every recipe:
  the concrete catalog revisions (``name@revision``, never an alias) recipes are adapted
  on. The revision a recipe's ``base_model`` resolves to becomes a key when it is first
  seen (the ``base_models`` sensor in ``defs/bases.py``, or ``modelops init``). Shared, so
  the recipes of one taxonomy keep one partitions definition and one Dagster backfill can
  cover them all.

So the UI shows one row per taxonomy version and one column per base: the old-base and
the new-base adapter of a recipe side by side. A key reads ``<base>|<version>`` (Dagster
orders the dimensions by name). Partitions are never removed: older versions and bases
keep their history in Dagster. ``docs/concepts.md`` says why this shape.
"""

from __future__ import annotations

import dagster as dg

from modelops.config.recipe import LoadedRecipe

TAXONOMY_DIM = "taxonomy"
BASE_DIM = "base"


def partitions_name(taxonomy_name: str) -> str:
    return f"taxonomy_{taxonomy_name}"


BASE_PARTITIONS = "base_models"
"""The dynamic partitions of the base dimension, shared by every recipe."""


def taxonomy_partitions(loaded: LoadedRecipe) -> dg.DynamicPartitionsDefinition:
    return dg.DynamicPartitionsDefinition(name=partitions_name(loaded.taxonomy.name))


def base_partitions() -> dg.DynamicPartitionsDefinition:
    return dg.DynamicPartitionsDefinition(name=BASE_PARTITIONS)


def recipe_partitions(loaded: LoadedRecipe) -> dg.MultiPartitionsDefinition:
    """Taxonomy version x base revision: the partitions of a recipe's training assets."""
    return dg.MultiPartitionsDefinition(
        {TAXONOMY_DIM: taxonomy_partitions(loaded), BASE_DIM: base_partitions()}
    )


def partition_key(version: str, base_ref: str) -> dg.MultiPartitionKey:
    """The key of taxonomy ``version`` on base revision ``base_ref`` (``name@revision``)."""
    return dg.MultiPartitionKey({TAXONOMY_DIM: version, BASE_DIM: base_ref})


def split_key(key: str | dg.MultiPartitionKey) -> tuple[str, str]:
    """``(taxonomy version, base ref)`` of a training partition key (or its string)."""
    if isinstance(key, dg.MultiPartitionKey):
        dims = key.keys_by_dimension
        return dims[TAXONOMY_DIM], dims[BASE_DIM]
    base, sep, version = str(key).rpartition("|")
    if not sep:
        raise ValueError(f"partition key {key!r} is not <base>|<taxonomy version>")
    return version, base


def current_base(loaded: LoadedRecipe, catalog) -> str:
    """The revision (``name@revision``) the recipe's ``base_model`` resolves to now in
    ``catalog`` (a ``modelops.ml.catalog.Catalog``); raises naming the ref if unknown."""
    return catalog.get(loaded.recipe.base_model).ref


def serving_key(loaded: LoadedRecipe, serving, catalog) -> dg.MultiPartitionKey:
    """What retraining retrains: the serving champion's partition (its taxonomy version on
    its base: retraining repairs what serves; moving the base is a separate, reviewed
    step, ``defs/bases.py``). Without a champion: the data's version on the base the
    recipe resolves to now."""
    if serving is not None:
        return partition_key(serving.taxonomy_version, serving.base_model)
    return partition_key(loaded.data_version, current_base(loaded, catalog))


def ensure_base_request(instance: dg.DagsterInstance, base_ref: str):
    """An ``AddDynamicPartitionsRequest`` for ``base_ref`` when the base dimension lacks it
    (say, a champion trained before bases were a dimension), else None."""
    if instance.has_dynamic_partition(BASE_PARTITIONS, base_ref):
        return None
    return dg.AddDynamicPartitionsRequest(
        partitions_def_name=BASE_PARTITIONS, partition_keys=[base_ref]
    )


def versions_on_disk(recipes: list[LoadedRecipe]) -> dict[str, list[str]]:
    """``{partitions name: versions}`` over every taxonomy the recipes use."""
    found: dict[str, set[str]] = {}
    seen = set()
    for loaded in recipes:  # one glob per taxonomy folder and start, not per recipe
        where = (loaded.taxonomy.name, loaded.taxonomy_path.parent, loaded.data_version)
        if where in seen:
            continue
        seen.add(where)
        found.setdefault(partitions_name(loaded.taxonomy.name), set()).update(
            loaded.taxonomy_versions()
        )
    return {name: sorted(v, key=lambda x: int(x[1:])) for name, v in found.items()}


def bases_in_use(recipes: list[LoadedRecipe], catalog) -> dict[str, list[str]]:
    """``{BASE_PARTITIONS: the revisions the recipes resolve to}``."""
    return {BASE_PARTITIONS: sorted({current_base(r, catalog) for r in recipes})}


def missing_partitions(instance: dg.DagsterInstance, recipes: list[LoadedRecipe], catalog=None):
    """``{partitions name: keys not yet registered}`` (only names with some missing): the
    taxonomy versions on disk and, with ``catalog``, each recipe's current base revision."""
    wanted = versions_on_disk(recipes)
    if catalog is not None:
        wanted.update(bases_in_use(recipes, catalog))
    out = {}
    for name, keys in wanted.items():
        known = set(instance.get_dynamic_partitions(name))
        new = [k for k in keys if k not in known]
        if new:
            out[name] = new
    return out


def sync_partitions(instance: dg.DagsterInstance, recipes: list[LoadedRecipe], catalog) -> dict:
    """Register every taxonomy version on disk, and each recipe's current base revision in
    ``catalog``, as partitions; returns what was added."""
    added = missing_partitions(instance, recipes, catalog)
    for name, keys in added.items():
        instance.add_dynamic_partitions(name, keys)
    return added
