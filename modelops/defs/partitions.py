"""Taxonomy versions as Dagster dynamic partitions.

Every asset of a recipe is partitioned by the versions of its taxonomy
(``taxonomy_<name>``: ``v1``, ``v2``, ...). A new version file becomes a new partition
(the ``taxonomy_versions`` sensor in ``defs/taxonomy.py``, or ``modelops init``);
backfilling that partition relabels, trains, evaluates and gates an adapter per recipe.
Partitions are never removed: older versions keep their history in Dagster.
"""

from __future__ import annotations

import dagster as dg

from modelops.config.recipe import LoadedRecipe


def partitions_name(taxonomy_name: str) -> str:
    return f"taxonomy_{taxonomy_name}"


def taxonomy_partitions(loaded: LoadedRecipe) -> dg.DynamicPartitionsDefinition:
    return dg.DynamicPartitionsDefinition(name=partitions_name(loaded.taxonomy.name))


def versions_on_disk(recipes: list[LoadedRecipe]) -> dict[str, list[str]]:
    """``{partitions name: versions}`` over every taxonomy the recipes use."""
    found: dict[str, set[str]] = {}
    for loaded in recipes:
        found.setdefault(partitions_name(loaded.taxonomy.name), set()).update(
            loaded.taxonomy_versions()
        )
    return {name: sorted(v, key=lambda x: int(x[1:])) for name, v in found.items()}


def missing_partitions(instance: dg.DagsterInstance, recipes: list[LoadedRecipe]):
    """``{partitions name: versions not yet registered}`` (only names with some missing)."""
    out = {}
    for name, versions in versions_on_disk(recipes).items():
        known = set(instance.get_dynamic_partitions(name))
        new = [v for v in versions if v not in known]
        if new:
            out[name] = new
    return out


def sync_partitions(instance: dg.DagsterInstance, recipes: list[LoadedRecipe]) -> dict:
    """Register every taxonomy version on disk as a partition; returns what was added."""
    added = missing_partitions(instance, recipes)
    for name, versions in added.items():
        instance.add_dynamic_partitions(name, versions)
    return added
