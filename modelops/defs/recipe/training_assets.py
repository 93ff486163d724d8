"""A recipe's four training assets: training_dataset -> adapter -> evaluation -> champion.

The assets are thin: each calls one step of ``modelops.lifecycle`` and turns its result
into Dagster metadata (``modelops.defs.metadata``). The evaluation asset carries the
recipe's gates as blocking asset checks, so a failing candidate never reaches ``champion``.
"""

import base64

import dagster as dg

from modelops.config.recipe import LoadedRecipe
from modelops.defs.keys import TAG_MODE, RecipeKeys
from modelops.defs.metadata import md_table, meta_value, num, shadow_metadata
from modelops.defs.partitions import taxonomy_partitions
from modelops.defs.resources import (
    ArtifactStoreResource,
    CatalogResource,
    ProductionLogResource,
    RegistryResource,
    RuntimeResource,
    platform_from,
)
from modelops.domain.evaluation import markdown_table
from modelops.lifecycle.dataset import DatasetRecord, build_dataset
from modelops.lifecycle.evaluate import evaluate_adapter
from modelops.lifecycle.promote import promote_if_passed
from modelops.lifecycle.shadow import shadow_evidence
from modelops.lifecycle.train import train_adapter

# One blocking check per gate of ``modelops.domain.gates.decide`` (a test keeps them equal).
CHECK_DESCRIPTIONS = {
    "min_macro_f1": "Candidate macro-F1 reaches the recipe's minimum.",
    "no_regression": "Macro-F1 does not drop more than allowed against the champion.",
    "no_label_regression": "No label's F1 drops more than allowed against the champion.",
    "beats_baseline": "Candidate beats the linear probe on frozen embeddings.",
}


def build_training_assets(loaded: LoadedRecipe) -> list[dg.AssetsDefinition]:
    """The four assets of one recipe, keyed ``<recipe>/<asset>``, in group ``<recipe>``."""
    name = loaded.name
    group = name
    tags = {"recipe": name, "taxonomy": f"{loaded.taxonomy.name}.{loaded.taxonomy.version}"}
    keys = RecipeKeys.of(name)
    # One partition per taxonomy version; one run per partition, so a failed version
    # re-runs alone and never holds up another.
    partitioned = {
        "partitions_def": taxonomy_partitions(loaded),
        "backfill_policy": dg.BackfillPolicy.multi_run(max_partitions_per_run=1),
    }

    @dg.asset(
        key=keys.training_dataset,
        group_name=group,
        **partitioned,
        kinds={"pandas", "parquet"},
        tags=tags,
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
            taxonomy_version=context.partition_key,
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

    @dg.asset(
        key=keys.adapter,
        group_name=group,
        **partitioned,
        ins={"dataset": dg.AssetIn(key=keys.training_dataset)},
        kinds={"pytorch"},
        tags=tags,
        description=f"LoRA adapter for {name} on {loaded.recipe.base_model}; registered as "
        "candidate with its full lineage.",
    )
    def adapter(
        context: dg.AssetExecutionContext,
        runtime: RuntimeResource,
        registry: RegistryResource,
        artifact_store: ArtifactStoreResource,
        catalog: CatalogResource,
        dataset: dict,
    ):
        mode = context.run.tags.get(TAG_MODE, "full")
        version = train_adapter(
            platform_from(runtime, registry, artifact_store, catalog),
            loaded,
            DatasetRecord(**dataset),
            emit=context.log.info,
            mode=mode,
        )
        history = version.lineage.get("history") or []
        metrics = version.metrics
        return dg.Output(
            {
                "adapter_id": version.id,
                "review_rows": dataset["stats"].get("review_rows", 0),
                "review_uri": dataset.get("review_uri"),
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
                "train_rows": int(metrics.get("train_rows") or 0),
                "train_loss": num(metrics.get("train_loss")),
                "validation_accuracy": num(metrics.get("validation_accuracy")),
                "validation_macro_f1": num(metrics.get("validation_macro_f1")),
                "baseline_test_macro_f1": num(metrics.get("baseline_test_macro_f1")),
                "samples_per_second": num(metrics.get("samples_per_second")),
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
        dg.AssetCheckSpec(gate, asset=keys.evaluation, blocking=True, description=description)
        for gate, description in CHECK_DESCRIPTIONS.items()
    ]

    @dg.asset(
        key=keys.evaluation,
        group_name=group,
        **partitioned,
        ins={"adapter": dg.AssetIn(key=keys.adapter)},
        check_specs=check_specs,
        tags=tags,
        description="Test-split metrics of the candidate, side by side with the champion; "
        "the recipe's gates are its blocking checks.",
    )
    def evaluation(
        context: dg.AssetExecutionContext,
        runtime: RuntimeResource,
        registry: RegistryResource,
        artifact_store: ArtifactStoreResource,
        catalog: CatalogResource,
        adapter: dict,
    ):
        platform = platform_from(runtime, registry, artifact_store, catalog)
        outcome = evaluate_adapter(
            platform,
            adapter["adapter_id"],
            emit=context.log.info,
            loaded=loaded,
        )
        cand, champ = outcome.candidate, outcome.champion
        png = base64.b64encode(outcome.confusion_png).decode()
        shadow = shadow_evidence(platform, outcome.adapter_id)
        yield dg.Output(
            {"adapter_id": outcome.adapter_id, "passed": outcome.decision.passed},
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
                **shadow_metadata(shadow),
            },
        )
        for check in outcome.decision.checks:
            yield dg.AssetCheckResult(
                asset_key=keys.evaluation,
                check_name=check.name,
                passed=check.passed,
                description=check.description,
                metadata={k: meta_value(v) for k, v in check.metadata.items()},
            )

    @dg.asset(
        key=keys.champion,
        group_name=group,
        **partitioned,
        ins={"evaluation": dg.AssetIn(key=keys.evaluation)},
        tags=tags,
        description="Moves the registry's champion alias to a candidate that passed every gate, "
        "with an audit entry.",
    )
    def champion(
        context: dg.AssetExecutionContext,
        runtime: RuntimeResource,
        registry: RegistryResource,
        artifact_store: ArtifactStoreResource,
        catalog: CatalogResource,
        evaluation: dict,
    ):
        p = platform_from(runtime, registry, artifact_store, catalog)
        adapter_id = evaluation["adapter_id"]
        entry = promote_if_passed(
            p,
            adapter_id,
            who=f"dagster run {context.run.run_id[:8]} ({p.settings.user})",
            why="passed every gate in the evaluation asset",
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

    return [training_dataset, adapter, evaluation, champion]

