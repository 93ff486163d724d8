"""Production assets of a recipe: batch scoring of landed files and the drift report.

Both follow the serving champion (whatever taxonomy version it is of), so they are not
partitioned. Heavy work (scoring, Evidently) happens here, never in sensors.
"""

import dagster as dg

from modelops.config.recipe import LoadedRecipe
from modelops.defs.resources import PlatformResource


def batch_scoring_key(name: str) -> dg.AssetKey:
    return dg.AssetKey([name, "batch_scoring"])


def drift_report_key(name: str) -> dg.AssetKey:
    return dg.AssetKey([name, "drift_report"])


def build_production_assets(loaded: LoadedRecipe) -> list[dg.AssetsDefinition]:
    name = loaded.name

    @dg.asset(
        key=batch_scoring_key(name),
        group_name=name,
        deps=[dg.AssetKey([name, "champion"])],
        tags={"recipe": name},
        description="Scores batch files dropped in the landing folder with the serving "
        "champion and logs every prediction; bad files are moved aside with a note.",
    )
    def batch_scoring(context: dg.AssetExecutionContext, platform: PlatformResource):
        from modelops.serving.batch_scoring import process_landing
        from modelops.serving.predictor import Predictor

        p = platform.platform
        predictor = Predictor(
            p, name, log=p.production_log, redact_text=loaded.recipe.monitoring.redact_text
        )
        report = process_landing(
            predictor,
            loaded.landing_root(p.settings.home),
            name,
            log=p.production_log,
            s3_endpoint_url=p.settings.s3_endpoint_url,
        )
        for line in report.summary_lines():
            context.log.info(line)
        return dg.MaterializeResult(metadata=report.metadata())

    @dg.asset(
        key=drift_report_key(name),
        group_name=name,
        deps=[batch_scoring_key(name)],
        output_required=False,
        check_specs=[
            dg.AssetCheckSpec(
                "no_drift",
                asset=drift_report_key(name),
                description="The window's verdict: fails (shown red) when any calibrated "
                "signal fired. Not blocking: retraining is the drift sensor's job.",
            )
        ],
        kinds={"evidently"},
        tags={"recipe": name},
        description="Evidently drift report of the newest production window against the "
        "serving champion's reference, with thresholds calibrated for that adapter.",
    )
    def drift_report(context: dg.AssetExecutionContext, platform: PlatformResource):
        from modelops.lifecycle.drift_check import run_drift_check

        p = platform.platform
        size = loaded.recipe.monitoring.window_size
        available = p.production_log.count_since(name, 0)
        if available < size:
            context.log.info(f"{available} production rows, a window needs {size}: no report")
            yield dg.AssetCheckResult(
                check_name="no_drift",
                passed=True,
                description=f"no production window yet ({available}/{size} rows)",
            )
            return
        result = run_drift_check(p, loaded, emit=context.log.info)
        metadata = {
            "drifted": result["drifted"],
            "fired": ", ".join(result["fired"]) or "none",
            "reason": result["reason"],
            "estimated_accuracy": _num(result["estimated_accuracy"]),
            "adapter_id": result["adapter_id"],
            "rows": result["rows"],
            "labelled_rows": result["labelled_rows"],
            "last_prediction_id": result["last_id"],
            "report": _link(result["report_uri"]),
        }
        for signal, score in result["scores"].items():
            metadata[f"score_{signal}"] = float(score)
            if signal in result["thresholds"]:
                metadata[f"threshold_{signal}"] = float(result["thresholds"][signal])
        yield dg.MaterializeResult(metadata=metadata)
        yield dg.AssetCheckResult(
            check_name="no_drift",
            passed=not result["drifted"],
            severity=dg.AssetCheckSeverity.WARN,
            description=result["reason"],
            metadata={"fired": metadata["fired"]},
        )

    return [batch_scoring, drift_report]


def _num(value) -> float:
    return float(value) if value is not None else float("nan")


def _link(uri: str):
    if uri.startswith(("http://", "https://")):
        return dg.MetadataValue.url(uri)
    return dg.MetadataValue.path(uri)
