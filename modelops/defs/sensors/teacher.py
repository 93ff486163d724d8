"""The ``teacher_champions`` sensor: when a teacher recipe's serving champion changes
(retrained, rebased, promoted, rolled back), the distillation of each recipe that names it
as ``distillation.teacher`` is requested: the student's retraining job
(``<student>__retrain``) on its serving champion's partition (its version on its base;
without a champion, its data's version on its current base).

Each tick reads the serving champions of every teacher in one registry query. A student
whose teacher's champion is the one its cursor entry holds costs nothing more; for the
others, the student's serving champion is read, and a run is requested unless that
champion was already distilled from this teacher adapter or a run with the run key
``<student>-teacher-<teacher adapter id>`` exists (one run per teacher champion).
A student with a pinned teacher (``distillation.adapter_id``) does not follow;
``retraining.on_teacher_change: false`` pauses one student (its cursor entry is not moved,
so turning it back on distils from the teacher's champion of that moment). The cursor,
JSON::

    {"recipes": {"<student>": {"teacher_adapter_id": <the teacher champion handled>}}}
"""

from __future__ import annotations

import dagster as dg

from modelops.config.recipe import LoadedRecipe
from modelops.defs.keys import TAG_MODE, TAG_REASON, TAG_TEACHER, TEACHER_SENSOR, RecipeKeys
from modelops.defs.partitions import ensure_base_request, serving_key
from modelops.defs.resources import PlatformResource
from modelops.defs.sensors.cursor import launched, read_cursor, skip_reason, write_cursor
from modelops.stores.registry_records import AdapterVersion


def students_of(recipes: list[LoadedRecipe]) -> dict[str, LoadedRecipe]:
    """The recipes that follow a teacher's champion (a distillation, not pinned)."""
    return {
        r.name: r
        for r in recipes
        if r.recipe.distillation is not None and r.recipe.distillation.adapter_id is None
    }


def build_teacher_sensor(recipes: list[LoadedRecipe], jobs: dict[str, dg.JobDefinition]):
    """One sensor over the teachers of ``recipes``; ``jobs``: each recipe's retraining
    job, by recipe name. None when no recipe follows a teacher."""
    students = students_of(recipes)
    if not students:
        return None

    @dg.sensor(
        name=TEACHER_SENSOR,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        jobs=[jobs[name] for name in sorted(students)],
        description="Launches a student recipe's retraining job (its distillation) when its "
        "distillation.teacher's serving champion changes: once per teacher champion. "
        "retraining.on_teacher_change: false pauses one student; turning this sensor off "
        "pauses every student.",
    )
    def teacher_champions(context: dg.SensorEvaluationContext, platform: PlatformResource):
        state = read_cursor(context.cursor)
        seen = state.setdefault("recipes", {})
        registry = platform.registry.registry
        teachers = {s.recipe.distillation.teacher for s in students.values()}
        champions = registry.serving_adapters(teachers)
        requests, why = [], {}
        for name, loaded in sorted(students.items()):
            teacher = champions.get(loaded.recipe.distillation.teacher)
            mine = seen.setdefault(name, {})
            if teacher is None or mine.get("teacher_adapter_id") == teacher.id:
                continue  # nothing new: no further read
            if not loaded.recipe.retraining.on_teacher_change:
                why[name] = "paused (retraining.on_teacher_change: false)"
                continue
            reason = _decide(context.instance, registry, loaded, teacher)
            mine["teacher_adapter_id"] = teacher.id
            if isinstance(reason, str):
                why[name] = reason
            else:
                requests.append(_request(context.instance, platform, loaded, teacher, reason))
        for name, reason in sorted(why.items()):
            context.log.info(f"{name}: {reason}")
        state["recipes"] = {k: v for k, v in seen.items() if k in students}
        cursor = write_cursor(state)
        if requests:
            return dg.SensorResult(run_requests=requests, cursor=cursor)
        skip = skip_reason("no new teacher champion", why)
        return dg.SensorResult(skip_reason=skip, cursor=cursor)

    return teacher_champions


def teacher_run_key(student: str, teacher_adapter_id: int) -> str:
    return f"{student}-teacher-{teacher_adapter_id}"


def _decide(instance, registry, loaded: LoadedRecipe, teacher: AdapterVersion):
    """Why the student is not distilled again from ``teacher`` (a string), or its serving
    champion (None without one) when it is."""
    serving = registry.alias(loaded.name, "champion")
    taught = ((serving.lineage if serving else None) or {}).get("distillation") or {}
    if taught.get("teacher_adapter_id") == teacher.id:
        return f"champion {serving.id} is already distilled from teacher adapter {teacher.id}"
    if launched(instance, teacher_run_key(loaded.name, teacher.id)):
        return f"distillation from teacher adapter {teacher.id} already launched"
    return serving


def _request(
    instance, platform: PlatformResource, loaded: LoadedRecipe, teacher: AdapterVersion, serving
) -> dg.RunRequest:
    """The student's retraining run on its serving partition, once per teacher champion."""
    key = serving_key(loaded, serving, platform.catalog.catalog)
    if serving is not None:
        missing = ensure_base_request(instance, serving.base_model)
        if missing is not None:  # a champion from before bases were a partition dimension
            instance.add_dynamic_partitions(
                missing.partitions_def_name, list(missing.partition_keys)
            )
    return dg.RunRequest(
        run_key=teacher_run_key(loaded.name, teacher.id),
        job_name=RecipeKeys.of(loaded.name).retrain_job,
        partition_key=key,
        tags={
            TAG_REASON: f"teacher {teacher.recipe}: champion now adapter {teacher.id}"[:200],
            TAG_MODE: "full",
            TAG_TEACHER: str(teacher.id),
        },
    )
