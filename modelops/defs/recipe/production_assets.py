"""Production assets of a recipe: batch scoring of landed files and the drift report.

Both follow the serving champion (whatever taxonomy version it is of), so they are not
partitioned. Heavy work (scoring, Evidently) happens here, never in sensors; its modules
are imported inside the assets, so loading the code location does not load Evidently.
"""

import dagster as dg

from modelops.config.recipe import LoadedRecipe
from modelops.defs.drift_metadata import drift_metadata
from modelops.defs.keys import RecipeKeys
from modelops.defs.metadata import readable
from modelops.defs.resources import PlatformResource

NO_DRIFT = (
    "The evidence accumulated since the serving champion started, this window included: "
    "fails when a sequential test crossed (one error rate, monitoring.evidence_alpha, for "
    "the champion's lifetime), as a warning when the retraining policy does not act, as an "
    "error when it retrains. Not blocking: retraining is the drift sensor's job."
)

CHECK_KEYS = ("fired", "action", "evidence_rows", "evidence_windows", "evidence_since")
"""The report's metadata the ``no_drift`` check repeats."""


def build_production_assets(loaded: LoadedRecipe) -> list[dg.AssetsDefinition]:
    return [build_batch_scoring_asset(loaded), build_drift_report_asset(loaded)]


def build_batch_scoring_asset(loaded: LoadedRecipe) -> dg.AssetsDefinition:
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
            limits=loaded.recipe.monitoring.landing_limits,
        )
        for line in report.summary_lines():
            context.log.info(line)
        return dg.MaterializeResult(metadata=readable(report.metadata()))

    return batch_scoring


def build_drift_report_asset(loaded: LoadedRecipe) -> dg.AssetsDefinition:
    name = loaded.name
    keys = RecipeKeys.of(name)

    @dg.asset(
        key=keys.drift_report,
        group_name=name,
        deps=[keys.batch_scoring],
        output_required=False,
        check_specs=[dg.AssetCheckSpec("no_drift", asset=keys.drift_report, description=NO_DRIFT)],
        kinds={"evidently"},
        tags={"recipe": name},
        description="Evidently drift report of the newest production window against the "
        "serving champion's reference, with thresholds calibrated for that adapter.",
    )
    def drift_report(context: dg.AssetExecutionContext, platform: PlatformResource):
        from modelops.lifecycle.drift_check import run_drift_check

        p = platform.platform
        size = loaded.recipe.monitoring.window_size
        available = p.production_log.count_since(name, 0, at_most=size)
        if available < size:
            context.log.info(f"{available} production rows, a window needs {size}: no report")
            yield dg.AssetCheckResult(
                check_name="no_drift",
                passed=True,
                description=f"no production window yet ({available}/{size} rows)",
            )
            return
        result = run_drift_check(p, loaded, emit=context.log.info)
        metadata = drift_metadata(result, serve_url=p.settings.serve_url)
        yield dg.MaterializeResult(metadata=metadata)
        yield no_drift_result(result, metadata)

    return drift_report


def no_drift_result(result, metadata: dict) -> dg.AssetCheckResult:
    """The ``no_drift`` check of a drift report: failed on an accumulated alarm, as an
    error when the retraining policy retrains, else as a warning; its description says
    how much evidence accumulated and since when."""
    retrain = result.decision is not None and result.decision.retrain
    return dg.AssetCheckResult(
        check_name="no_drift",
        passed=not result.alarm and not retrain,
        severity=dg.AssetCheckSeverity.ERROR if retrain else dg.AssetCheckSeverity.WARN,
        description=result.verdict.reason
        + ("" if result.decision is None else " " + result.decision.sentence),
        metadata={k: metadata[k] for k in CHECK_KEYS if k in metadata},
    )
