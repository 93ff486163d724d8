"""The sensors over every recipe, one per kind of event (``landing.py``,
``windows.py``, ``drift.py``, ``teacher.py``): their work per tick grows with what
changed, not with the number of recipes."""

from __future__ import annotations

import dagster as dg

from modelops.config.recipe import LoadedRecipe
from modelops.defs.sensors.drift import build_drift_sensor
from modelops.defs.sensors.landing import build_landing_sensor
from modelops.defs.sensors.teacher import build_teacher_sensor
from modelops.defs.sensors.windows import build_window_sensor


def build_event_sensors(
    recipes: list[LoadedRecipe], jobs: dict[str, dg.JobDefinition]
) -> list[dg.SensorDefinition]:
    """Landing files -> batch scoring; a full production window -> drift report; a
    drift report that says retrain -> the recipe's retraining job (``jobs``, by recipe
    name); a teacher recipe's new champion -> its students' retraining jobs (only when
    some recipe follows a teacher). None without recipes."""
    if not recipes:
        return []
    teacher = build_teacher_sensor(recipes, jobs)
    return [
        build_landing_sensor(recipes),
        build_window_sensor(recipes),
        build_drift_sensor(recipes, jobs),
        *([teacher] if teacher is not None else []),
    ]
