"""The retraining job of a recipe: its four training assets for one taxonomy version."""

import dagster as dg

from modelops.config.recipe import LoadedRecipe
from modelops.defs.k8s import k8s_tags
from modelops.defs.keys import TAG_MODE, TAG_TRAINING, RecipeKeys
from modelops.defs.partitions import recipe_partitions


def build_retrain_job(loaded: LoadedRecipe):
    """The recipe's training assets for one taxonomy version x base revision, in
    retraining mode."""
    name = loaded.name
    keys = RecipeKeys.of(name)
    return dg.define_asset_job(
        keys.retrain_job,
        selection=dg.AssetSelection.assets(*keys.training),
        partitions_def=recipe_partitions(loaded),
        # A run pod holds every step: it asks for what training needs.
        tags={
            TAG_MODE: loaded.recipe.retraining.mode,
            TAG_TRAINING: name,
            **k8s_tags(loaded.recipe.compute, heavy=True),
        },
        description=f"Retrain {name}: relabelled data plus production feedback, "
        f"{loaded.recipe.retraining.mode} training, gates, promotion.",
    )
