"""Production assets of a recipe: batch scoring of landed files and the drift report.

Both follow the serving champion (whatever taxonomy version it is of), so they are not
partitioned. Heavy work (scoring, Evidently) happens here, never in sensors; its modules
are imported inside the assets, so loading the code location does not load Evidently.
"""

from typing import TYPE_CHECKING

import dagster as dg

from modelops.config.recipe import LoadedRecipe
from modelops.defs.keys import RecipeKeys
from modelops.defs.metadata import link, num
from modelops.defs.resources import (
    ArtifactStoreResource,
    CatalogResource,
    ProductionLogResource,
    RegistryResource,
    RuntimeResource,
    platform_from,
)

if TYPE_CHECKING:
    from modelops.lifecycle.drift_check import DriftResult


def build_production_assets(loaded: LoadedRecipe) -> list[dg.AssetsDefinition]:
    name = loaded.name
    keys = RecipeKeys.of(name)

    @dg.asset(
        key=keys.batch_scoring,
        group_name=name,
        deps=[keys.champion],
        tags={"recipe": name},
        description="Scores batch files dropped in the landing folder with the serving "
        "champion and logs every prediction; bad files are moved aside with a note.",
    )
    def batch_scoring(
        context: dg.AssetExecutionContext,
        runtime: RuntimeResource,
        registry: RegistryResource,
        artifact_store: ArtifactStoreResource,
        catalog: CatalogResource,
        production_log: ProductionLogResource,
    ):
        from modelops.serving.batch_scoring import process_landing
        from modelops.serving.predictor import Predictor

        p = platform_from(runtime, registry, artifact_store, catalog, production_log)
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
        key=keys.drift_report,
        group_name=name,
        deps=[keys.batch_scoring],
        output_required=False,
        check_specs=[
            dg.AssetCheckSpec(
                "no_drift",
                asset=keys.drift_report,
                description="The window's verdict: fails when any calibrated signal fired, "
                "as a warning when the data moved but the retraining policy does not act, "
                "as an error when it retrains. Not blocking: retraining is the drift "
                "sensor's job.",
            )
        ],
        kinds={"evidently"},
        tags={"recipe": name},
        description="Evidently drift report of the newest production window against the "
        "serving champion's reference, with thresholds calibrated for that adapter.",
    )
    def drift_report(
        context: dg.AssetExecutionContext,
        runtime: RuntimeResource,
        registry: RegistryResource,
        artifact_store: ArtifactStoreResource,
        catalog: CatalogResource,
        production_log: ProductionLogResource,
    ):
        from modelops.lifecycle.drift_check import run_drift_check

        size = loaded.recipe.monitoring.window_size
        available = production_log.log.count_since(name, 0)
        if available < size:
            context.log.info(f"{available} production rows, a window needs {size}: no report")
            yield dg.AssetCheckResult(
                check_name="no_drift",
                passed=True,
                description=f"no production window yet ({available}/{size} rows)",
            )
            return
        p = platform_from(runtime, registry, artifact_store, catalog, production_log)
        result = run_drift_check(p, loaded, emit=context.log.info)
        metadata = drift_metadata(result, serve_url=p.settings.serve_url)
        yield dg.MaterializeResult(metadata=metadata)
        retrain = result.decision is not None and result.decision.retrain
        yield dg.AssetCheckResult(
            check_name="no_drift",
            passed=not result.verdict.drifted and not retrain,
            severity=dg.AssetCheckSeverity.ERROR if retrain else dg.AssetCheckSeverity.WARN,
            description=result.verdict.reason
            + ("" if result.decision is None else " " + result.decision.sentence),
            metadata={"fired": metadata["fired"], "action": metadata["action"]},
        )

    return [batch_scoring, drift_report]


def drift_metadata(result: "DriftResult", serve_url: str | None = None) -> dict:
    """The drift report's materialization metadata (the drift sensor reads ``retrain``,
    ``drifted``, ``fired`` and ``report``). With ``serve_url``, ``report_url`` links the
    report as served by ``modelops.serving.reports``."""
    from modelops.serving.reports import report_url

    verdict = result.verdict
    decision = result.decision
    metadata = {
        "drifted": bool(verdict.drifted),
        "retrain": bool(decision.retrain) if decision is not None else bool(verdict.drifted),
        "action": decision.action if decision is not None else "n/a",
        "fired": ", ".join(verdict.fired) or "none",
        "reason": verdict.reason,
        "policy": decision.sentence if decision is not None else "n/a",
        "estimated_accuracy": num(verdict.estimated_accuracy),
        "adapter_id": result.adapter_id,
        "rows": result.rows,
        "labelled_rows": result.labelled_rows,
        "last_prediction_id": result.last_id,
        "report": link(result.report_uri),
    }
    url = report_url(serve_url, result.report_key) if serve_url and result.report_key else None
    if url is not None:
        metadata["report_url"] = dg.MetadataValue.url(url)
    guarantee = verdict.guarantee
    if guarantee:
        metadata["false_alarm_rate_reachable"] = bool(guarantee.get("reachable"))
        metadata["false_alarm_rate_bound"] = num(guarantee.get("rate_bound"))
    impact = result.impact
    if impact is not None:
        low, high = impact.estimated_interval
        metadata["estimated_accuracy_low"] = num(low)
        metadata["estimated_accuracy_high"] = num(high)
        metadata["reference_accuracy"] = num(impact.reference_accuracy)
        metadata["estimated_drop"] = num(impact.estimated_drop)
        if impact.estimated_drop_interval is not None:
            metadata["estimated_drop_low"] = num(impact.estimated_drop_interval[0])
            metadata["estimated_drop_high"] = num(impact.estimated_drop_interval[1])
        if impact.measured_accuracy is not None:
            metadata["measured_accuracy"] = num(impact.measured_accuracy)
            metadata["measured_drop"] = num(impact.measured_drop)
        if impact.unadjusted_accuracy is not None:
            metadata["unadjusted_estimated_accuracy"] = num(impact.unadjusted_accuracy)
            metadata["novel_share"] = num(impact.novel_share)
        if impact.new_labels:
            metadata["new_labels"] = ", ".join(impact.new_labels)
    for signal, score in verdict.scores.items():
        metadata[f"score_{signal}"] = float(score)
        if signal in verdict.thresholds:
            metadata[f"threshold_{signal}"] = float(verdict.thresholds[signal])
    return metadata
