"""What every training asset of a recipe shares: its group, tags, partitions and
backfill policy, and the pod resources of its step."""

import dagster as dg

from modelops.config.recipe import LoadedRecipe
from modelops.defs.k8s import k8s_tags
from modelops.defs.partitions import recipe_partitions


def training_args(loaded: LoadedRecipe, *, heavy: bool) -> dict:
    """``@dg.asset`` keyword arguments of a training asset of ``loaded``: group
    ``<recipe>``, the recipe and taxonomy tags, one partition per taxonomy version x base
    revision (``defs/partitions.py``) run one per run (a failed version or base re-runs
    alone and never holds up another), and the pod a step gets (``heavy``: training or
    evaluation; ``modelops.defs.k8s``)."""
    return {
        "group_name": loaded.name,
        "partitions_def": recipe_partitions(loaded),
        "backfill_policy": dg.BackfillPolicy.multi_run(max_partitions_per_run=1),
        "tags": {
            "recipe": loaded.name,
            "taxonomy": f"{loaded.taxonomy.name}.{loaded.taxonomy.version}",
        },
        "op_tags": k8s_tags(loaded.recipe.compute, heavy=heavy),
    }
