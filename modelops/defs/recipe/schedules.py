"""The optional periodic retraining of a recipe (``retraining.schedule``)."""

import dagster as dg

from modelops.config.recipe import LoadedRecipe
from modelops.defs.keys import TAG_REASON, RecipeKeys
from modelops.defs.resources import RegistryResource


def build_retrain_schedule(loaded: LoadedRecipe, retrain_job):
    cron = loaded.recipe.retraining.schedule
    name = loaded.name

    @dg.schedule(
        name=RecipeKeys.of(name).retrain_schedule,
        cron_schedule=cron,
        job=retrain_job,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Periodic retraining of {name} ({cron}) on the serving taxonomy version.",
    )
    def periodic(context: dg.ScheduleEvaluationContext, registry: RegistryResource):
        serving = registry.registry.alias(name, "champion")
        version = serving.taxonomy_version if serving else loaded.data_version
        return dg.RunRequest(
            run_key=f"{name}-scheduled-{context.scheduled_execution_time.isoformat()}",
            partition_key=version,
            tags={TAG_REASON: f"schedule {cron}"},
        )

    return periodic
