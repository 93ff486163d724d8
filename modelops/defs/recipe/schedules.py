"""The optional periodic retraining of a recipe (``retraining.schedule``)."""

import dagster as dg

from modelops.config.recipe import LoadedRecipe
from modelops.defs.keys import TAG_REASON, RecipeKeys
from modelops.defs.partitions import ensure_base_request, serving_key
from modelops.defs.resources import PlatformResource


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
    def periodic(context: dg.ScheduleEvaluationContext, platform: PlatformResource):
        serving = platform.registry.registry.alias(name, "champion")
        key = serving_key(loaded, serving, platform.catalog.catalog)
        missing = ensure_base_request(context.instance, key.keys_by_dimension["base"])
        if missing is not None:  # a champion from before bases were a partition dimension
            context.instance.add_dynamic_partitions(
                missing.partitions_def_name, list(missing.partition_keys)
            )
        return dg.RunRequest(
            run_key=f"{name}-scheduled-{context.scheduled_execution_time.isoformat()}",
            partition_key=key,
            tags={TAG_REASON: f"schedule {cron}"},
        )

    return periodic
