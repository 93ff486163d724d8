"""The ``taxonomy_versions`` sensor: each new taxonomy version file becomes a partition."""

import dagster as dg

from modelops.config.recipe_folder import RecipeFolder
from modelops.config.settings import Settings
from modelops.defs.partitions import missing_partitions
from modelops.domain.taxonomy_mapping import validate_taxonomy_dir


def build_taxonomy_sensor(settings: Settings) -> dg.SensorDefinition:
    """Adds a partition for every new taxonomy version file of the recipes' taxonomies.

    A file that does not validate fails the tick with the file and field in the error,
    and adds nothing; fix the file and the next tick adds the version.
    """
    # re-reads only the files that changed, and only this location's shard of them
    folder = RecipeFolder.shared(settings.recipes_dir, settings.recipe_shard)

    @dg.sensor(
        name="taxonomy_versions",
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Watches taxonomies/<name>/v*.yaml and adds each new version as a "
        "partition of every recipe that uses the taxonomy.",
    )
    def taxonomy_versions(context: dg.SensorEvaluationContext):
        recipes = folder.load()
        for root in sorted({loaded.taxonomies_root for loaded in recipes}):
            validate_taxonomy_dir(root)
        added = missing_partitions(context.instance, recipes)
        if not added:
            return dg.SkipReason("no new taxonomy versions")
        context.log.info(f"new taxonomy versions: {added}")
        return dg.SensorResult(
            dynamic_partitions_requests=[
                dg.AddDynamicPartitionsRequest(partitions_def_name=name, partition_keys=keys)
                for name, keys in added.items()
            ]
        )

    return taxonomy_versions


def build_taxonomy_definitions(settings: Settings) -> dg.Definitions:
    return dg.Definitions(sensors=[build_taxonomy_sensor(settings)])


@dg.definitions
def taxonomy() -> dg.Definitions:
    return build_taxonomy_definitions(Settings.from_env())
