"""The ``production_windows`` sensor: a recipe with ``monitoring.window_size`` new
production rows since its last window -> that recipe's ``drift_report``.

The cursor holds the newest prediction id of each recipe's last window (JSON
``{recipe: id}``; a recipe not in it starts at 0). Each tick is one query for every
recipe's new rows (:meth:`ProductionLog.new_rows`), an index range scan per recipe that
stops counting at the largest window size, so a recipe's first tick over a long log (its
cursor at 0) reads no more than a window either.
"""

from __future__ import annotations

import dagster as dg

from modelops.config.recipe import LoadedRecipe
from modelops.defs.keys import TAG_REASON, WINDOW_SENSOR, RecipeKeys
from modelops.defs.resources import PlatformResource
from modelops.defs.sensors.cursor import launched, read_cursor, skip_reason, write_cursor


def build_window_sensor(recipes: list[LoadedRecipe]) -> dg.SensorDefinition:
    """One sensor over the production logs of ``recipes``."""
    sizes = {r.name: r.recipe.monitoring.window_size for r in recipes}

    @dg.sensor(
        name=WINDOW_SENSOR,
        minimum_interval_seconds=15,
        default_status=dg.DefaultSensorStatus.RUNNING,
        asset_selection=[RecipeKeys.of(name).drift_report for name in sizes],
        description="Requests a recipe's drift report when monitoring.window_size new "
        "production rows have been logged since its last one.",
    )
    def production_windows(context: dg.SensorEvaluationContext, platform: PlatformResource):
        state = read_cursor(context.cursor)
        after = {name: int(state.get(name, 0)) for name in sizes}
        largest = max(sizes.values(), default=1)
        new = platform.production_log.log.new_rows(after, at_most=largest)
        requests, why = [], {}
        for name, (count, newest) in sorted(new.items()):
            if count < sizes[name]:
                why[name] = f"{count}/{sizes[name]} new rows since id {after[name]}"
                continue
            state[name] = newest
            request = dg.RunRequest(
                run_key=f"{name}-window-{newest}",
                asset_selection=[RecipeKeys.of(name).drift_report],
                tags={TAG_REASON: f"{count}{'+' if count == largest else ''} new production rows"},
            )
            if launched(context.instance, request.run_key):
                continue  # that window's report was requested before (by the old sensor)
            requests.append(request)
        cursor = write_cursor({k: v for k, v in state.items() if k in sizes})
        if requests:
            return dg.SensorResult(run_requests=requests, cursor=cursor)
        return dg.SensorResult(
            skip_reason=skip_reason("no full production window", why), cursor=cursor
        )

    return production_windows
