"""A recipe's training assets: training_dataset -> mapped_candidate -> adapter ->
evaluation -> champion.

The assets are thin: each calls one step of ``modelops.lifecycle`` and turns its result
into Dagster metadata (``modelops.defs.metadata``). The evaluation asset carries the
recipe's gates as blocking asset checks, so a failing candidate never reaches ``champion``.
``mapped_candidate`` (``modelops.defs.recipe.mapped_asset``) offers the previous version's
champion through the taxonomy mapping first; the evaluation puts the trained adapter beside
it and ``champion`` promotes the winner (``modelops.lifecycle.taxonomy_change``).
"""

import base64

import dagster as dg

from modelops.config.recipe import LoadedRecipe
from modelops.defs.k8s import k8s_tags
from modelops.defs.keys import TAG_MODE, RecipeKeys
from modelops.defs.metadata import md_table, meta_value, num, shadow_metadata
from modelops.defs.partitions import recipe_partitions, split_key
from modelops.defs.recipe.base_metadata import side_by_side_metadata
from modelops.defs.recipe.mapped_asset import build_mapped_asset
from modelops.defs.resources import (
    ArtifactStoreResource,
    CatalogResource,
    ProductionLogResource,
    RegistryResource,
    RuntimeResource,
    platform_from,
)
from modelops.domain.evaluation import markdown_table
from modelops.domain.gates import GateCheck, active_gates
from modelops.lifecycle.dataset import DatasetRecord, build_dataset
from modelops.lifecycle.evaluate import evaluate_adapter
from modelops.lifecycle.promote import promote_if_passed
from modelops.lifecycle.shadow import shadow_evidence
from modelops.lifecycle.taxonomy_change import compare_candidates, should_train
from modelops.lifecycle.train import train_adapter

# One blocking check per gate of ``modelops.domain.gates.decide`` (a test keeps them equal).
# A gate the recipe switches off (``beat_baseline: false``) has no check: a check that did
# not check must not show as a passed one.
CHECK_DESCRIPTIONS = {
    "min_macro_f1": "Candidate macro-F1 reaches the recipe's minimum.",
    "no_regression": "Macro-F1 does not drop more than allowed against the champion.",
    "no_label_regression": "No label's F1 drops more than allowed against the champion.",
    "beats_baseline": "Candidate beats the linear probe on frozen embeddings.",
}


def build_training_assets(loaded: LoadedRecipe) -> list[dg.AssetsDefinition]:
    """The five assets of one recipe, keyed ``<recipe>/<asset>``, in group ``<recipe>``."""
    name = loaded.name
    group = name
    tags = {"recipe": name, "taxonomy": f"{loaded.taxonomy.name}.{loaded.taxonomy.version}"}
    keys = RecipeKeys.of(name)
    # Pod resources where each run or step gets a pod (modelops.defs.k8s).
    light = k8s_tags(loaded.recipe.compute, heavy=False)
    heavy = k8s_tags(loaded.recipe.compute, heavy=True)
    # One partition per taxonomy version x base revision (defs/partitions.py); one run per
    # partition, so a failed version or base re-runs alone and never holds up another.
    partitioned = {
        "partitions_def": recipe_partitions(loaded),
        "backfill_policy": dg.BackfillPolicy.multi_run(max_partitions_per_run=1),
    }

    @dg.asset(
        key=keys.training_dataset,
        group_name=group,
        **partitioned,
        kinds={"pandas", "parquet"},
        tags=tags,
        op_tags=light,
        description=f"Validated, de-duplicated, hash-split data of recipe {name} "
        f"({loaded.taxonomy.ref}). Data version = content fingerprint.",
    )
    def training_dataset(
        context: dg.AssetExecutionContext,
        runtime: RuntimeResource,
        registry: RegistryResource,
        artifact_store: ArtifactStoreResource,
        catalog: CatalogResource,
        production_log: ProductionLogResource,
    ):
        record = build_dataset(
            platform_from(runtime, registry, artifact_store, catalog, production_log),
            loaded,
            emit=context.log.info,
            taxonomy_version=split_key(context.partition_key)[0],
            include_feedback=True,
        )
        stats = record.stats
        counts = [{"label": k, "rows": v} for k, v in stats["label_counts"].items()]
        return dg.Output(
            record.to_dict(),
            data_version=dg.DataVersion(record.fingerprint),
            metadata={
                "fingerprint": record.fingerprint,
                "uri": dg.MetadataValue.path(record.uri),
                "dagster/row_count": stats["rows"],
                "train_rows": stats["train_rows"],
                "validation_rows": stats["validation_rows"],
                "test_rows": stats["test_rows"],
                "duplicates_dropped": stats["duplicates_dropped"],
                "conflicting_rows_dropped": stats["conflicting_rows_dropped"],
                "labels": len(record.labels),
                "taxonomy_version": record.taxonomy_version,
                "review_rows": stats.get("review_rows", 0),
                "retired_rows": stats.get("retired_rows", 0),
                "review_queue": dg.MetadataValue.path(record.review_uri or "none"),
                "feedback_rows": stats.get("feedback_rows", 0),
                "label_counts": dg.MetadataValue.md(md_table(counts, ["label", "rows"])),
            },
        )

    mapped_candidate = build_mapped_asset(loaded, group, tags, partitioned, heavy)

    @dg.asset(
        key=keys.adapter,
        group_name=group,
        **partitioned,
        ins={
            "dataset": dg.AssetIn(key=keys.training_dataset),
            "mapped": dg.AssetIn(key=keys.mapped_candidate),
        },
        kinds={"pytorch"},
        tags=tags,
        op_tags=heavy,
        output_required=False,
        description=f"LoRA adapter for {name} on the partition's base revision (new ones: "
        f"what {loaded.recipe.base_model} resolves to); registered as candidate with its "
        "full lineage. Not trained (nor evaluated) under "
        "taxonomy_changes.policy mapped_only when a mapped candidate covers the version.",
    )
    def adapter(
        context: dg.AssetExecutionContext,
        runtime: RuntimeResource,
        registry: RegistryResource,
        artifact_store: ArtifactStoreResource,
        catalog: CatalogResource,
        dataset: dict,
        mapped: dict,
    ):
        train, why = should_train(loaded, mapped)
        if not train:
            context.log.info(why)
            return
        mode = context.run.tags.get(TAG_MODE, "full")
        version = train_adapter(
            platform_from(runtime, registry, artifact_store, catalog),
            loaded,
            DatasetRecord(**dataset),
            emit=context.log.info,
            mode=mode,
            base_ref=split_key(context.partition_key)[1],
        )
        history = version.lineage.get("history") or []
        metrics = version.metrics
        yield dg.Output(
            {
                "adapter_id": version.id,
                "review_rows": dataset["stats"].get("review_rows", 0),
                "review_uri": dataset.get("review_uri"),
                "mapped_adapter_id": mapped.get("adapter_id"),
            },
            data_version=dg.DataVersion(version.weights_sha256),
            metadata={
                "adapter_id": version.id,
                "weights_sha256": version.weights_sha256,
                "artifact_uri": dg.MetadataValue.path(version.artifact_uri),
                "base_model": version.base_model,
                "mode": version.lineage.get("mode", "full"),
                "warm_start_adapter": (version.lineage.get("warm_start") or {}).get(
                    "adapter_id", "none"
                ),
                "selected_epoch": int(version.lineage.get("selected_epoch", len(history))),
                "lora_weights_nonzero": bool(version.lineage.get("lora_nonzero", True)),
                "train_rows": int(metrics.get("train_rows") or 0),
                **drift_calibration_metadata(version.lineage.get("drift_calibration") or {}),
                "train_loss": num(metrics.get("train_loss")),
                "validation_accuracy": num(metrics.get("validation_accuracy")),
                "validation_macro_f1": num(metrics.get("validation_macro_f1")),
                "baseline_test_macro_f1": num(metrics.get("baseline_test_macro_f1")),
                "samples_per_second": num(metrics.get("samples_per_second")),
                **{f"cost_{k}": num(v) for k, v in (version.lineage.get("cost") or {}).items()},
                "epochs": dg.MetadataValue.md(
                    md_table(
                        history,
                        [
                            "epoch",
                            "train_loss",
                            "validation_accuracy",
                            "validation_macro_f1",
                            "samples_per_second",
                        ],
                    )
                )
                if history
                else "",
            },
        )

    check_specs = [
        dg.AssetCheckSpec(
            gate, asset=keys.evaluation, blocking=True, description=CHECK_DESCRIPTIONS[gate]
        )
        for gate in active_gates(loaded.recipe.gates)
    ]

    @dg.asset(
        key=keys.evaluation,
        group_name=group,
        **partitioned,
        ins={"adapter": dg.AssetIn(key=keys.adapter)},
        check_specs=check_specs,
        tags=tags,
        op_tags=heavy,
        description="Test-split metrics of the candidate, side by side with the champion; "
        "the recipe's gates are its blocking checks.",
    )
    def evaluation(
        context: dg.AssetExecutionContext,
        runtime: RuntimeResource,
        registry: RegistryResource,
        artifact_store: ArtifactStoreResource,
        catalog: CatalogResource,
        production_log: ProductionLogResource,
        adapter: dict,
    ):
        # the production log: shadow evidence of live traffic (modelops serve)
        p = platform_from(runtime, registry, artifact_store, catalog, production_log)
        outcome = evaluate_adapter(p, adapter["adapter_id"], emit=context.log.info, loaded=loaded)
        cand, champ = outcome.candidate, outcome.champion
        png = base64.b64encode(outcome.confusion_png).decode()
        mapped_id = adapter.get("mapped_adapter_id")
        versus = (
            compare_candidates(p, loaded, outcome, mapped_id, emit=context.log.info)
            if mapped_id is not None
            else None
        )
        shadow = shadow_evidence(p, outcome.adapter_id)
        yield dg.Output(
            {
                "adapter_id": outcome.adapter_id,
                "passed": outcome.decision.passed,
                "winner_id": versus["winner_id"] if versus else outcome.adapter_id,
                "taxonomy_change": versus,
            },
            metadata={
                "adapter_id": outcome.adapter_id,
                "accuracy": cand.accuracy,
                "macro_f1": cand.macro_f1,
                "ece": cand.ece,
                "champion_id": outcome.champion_id if outcome.champion_id else "none",
                "champion_compared": outcome.champion_note,
                "review_rows": adapter.get("review_rows", 0),
                "review_queue": dg.MetadataValue.path(adapter.get("review_uri") or "none"),
                "champion_macro_f1": champ.macro_f1 if champ else float("nan"),
                "baseline_macro_f1": outcome.baseline.macro_f1
                if outcome.baseline
                else float("nan"),
                "gates_passed": outcome.decision.passed,
                "report": dg.MetadataValue.path(outcome.report_uri),
                "per_label": dg.MetadataValue.md(
                    markdown_table(cand, champ, names=("candidate", "champion"))
                ),
                "confusion_matrix": dg.MetadataValue.md(
                    f"![confusion matrix](data:image/png;base64,{png})"
                ),
                **_versus_metadata(versus),
                **side_by_side_metadata(outcome.side_by_side),
                **shadow_metadata(shadow),
            },
        )
        for check in outcome.decision.checks:
            yield check_result(keys.evaluation, check)

    @dg.asset(
        key=keys.champion,
        group_name=group,
        **partitioned,
        ins={"evaluation": dg.AssetIn(key=keys.evaluation)},
        tags=tags,
        op_tags=light,
        description="Moves the registry's champion alias to a candidate that passed every gate, "
        "with an audit entry.",
    )
    def champion(
        context: dg.AssetExecutionContext,
        runtime: RuntimeResource,
        registry: RegistryResource,
        artifact_store: ArtifactStoreResource,
        catalog: CatalogResource,
        production_log: ProductionLogResource,
        evaluation: dict,
    ):
        # the production log: shadow evidence of live traffic (modelops serve)
        p = platform_from(runtime, registry, artifact_store, catalog, production_log)
        adapter_id = evaluation.get("winner_id") or evaluation["adapter_id"]
        versus = evaluation.get("taxonomy_change")
        why = "passed every gate in the evaluation asset"
        if versus:
            why += (
                f"; {versus['winner']} candidate won against the "
                f"{'mapped' if versus['winner'] == 'trained' else 'trained'} one "
                f"({versus['why']}, margin {versus['margin']:.4f} {versus['metric']})"
            )
        entry = promote_if_passed(
            p,
            adapter_id,
            who=f"dagster run {context.run.run_id[:8]} ({p.settings.user})",
            why=why,
            evidence={"taxonomy_change": versus} if versus else None,
        )
        if entry is None:
            context.log.info(f"adapter {adapter_id} already is the champion")
        else:
            context.log.info(
                f"adapter {adapter_id} promoted (previous {entry.previous_adapter_id})"
            )
        return dg.MaterializeResult(
            metadata={
                "champion_id": adapter_id,
                "previous_champion_id": (entry.previous_adapter_id or "none")
                if entry
                else "unchanged",
            }
        )

    return [training_dataset, mapped_candidate, adapter, evaluation, champion]


def _versus_metadata(versus: dict | None) -> dict:
    """The trained adapter against the mapped candidate, as evaluation metadata."""
    if not versus:
        return {"mapped_candidate": "none"}
    metric = versus["metric"]
    return {
        "mapped_candidate": versus["mapped_id"],
        "winner": f"{versus['winner']} ({versus['why']})",
        "winner_id": versus["winner_id"] if versus["winner_id"] else "none",
        "winner_margin": versus["margin"],
        f"mapped_{metric}": versus[f"mapped_{metric}"],
        f"trained_{metric}": versus[f"trained_{metric}"],
        "mapped_seconds": versus["mapped_seconds"],
        "trained_seconds": versus["trained_seconds"],
    }


def check_result(key: dg.AssetKey, check: GateCheck) -> dg.AssetCheckResult:
    """A gate's verdict as an asset check result. A skipped gate (nothing to compare) is
    not shown as passed: it is a failed check of severity WARN, which does not block,
    its description starting "skipped:" and its metadata ``state: skipped``."""
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=check.name,
        passed=check.passed,
        severity=dg.AssetCheckSeverity.WARN if check.skipped else dg.AssetCheckSeverity.ERROR,
        description=check.description,
        metadata={"state": check.state, **{k: meta_value(v) for k, v in check.metadata.items()}},
    )



def drift_calibration_metadata(summary: dict) -> dict:
    """The adapter's drift calibration in its metadata: whether the recipe's false-alarm
    rate is reachable with its reference, and the rate its thresholds do hold."""
    if not summary:
        return {"drift_rate_reachable": "no monitoring reference"}
    reachable = bool(summary.get("reachable"))
    note = (
        f"false-alarm rate {summary['rate']:g} of the verdict, bound {summary['rate_bound']:.3g} "
        f"at {summary['confidence']:.0%} confidence, {summary['windows']} null windows"
        + ("" if reachable else f" (needs {summary['windows_needed']}): NOT reachable")
        + "".join(f"; {n}" for n in summary.get("notes", []))
    )
    return {
        "drift_rate_reachable": reachable,
        "drift_rate_bound": float(summary["rate_bound"]),
        "drift_calibration": note,
    }
