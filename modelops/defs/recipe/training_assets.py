"""A recipe's training assets: training_dataset -> mapped_candidate -> adapter ->
evaluation -> champion.

The assets are thin: each takes the ``platform`` resource, calls one step of
``modelops.lifecycle`` and turns its result into Dagster metadata (the builders of
``modelops.defs.metadata``). The evaluation asset carries the recipe's gates as blocking
asset checks, so a failing candidate never reaches ``champion``. ``mapped_candidate``
(``modelops.defs.recipe.mapped_asset``) offers the previous version's champion through the
taxonomy mapping first; the evaluation puts the trained adapter beside it and
``champion`` promotes the winner (``modelops.lifecycle.taxonomy_change``).

Training, evaluation and the taxonomy change load torch and transformers: their steps are
imported inside the asset bodies that run them, so that loading the definitions (a code
server, every sensor tick's process) does not import them (docs/concepts.md).
"""

import dagster as dg

from modelops.config.recipe import LoadedRecipe
from modelops.defs.keys import TAG_MODE, RecipeKeys
from modelops.defs.metadata import (
    adapter_metadata,
    champion_metadata,
    check_result,
    dataset_metadata,
    evaluation_metadata,
)
from modelops.defs.partitions import split_key
from modelops.defs.recipe.asset_args import training_args
from modelops.defs.recipe.mapped_asset import build_mapped_asset
from modelops.defs.resources import PlatformResource
from modelops.domain.gates import active_gates
from modelops.lifecycle.dataset import DatasetRecord, build_dataset
from modelops.lifecycle.promote import promote_if_passed

# One blocking check per gate of ``modelops.domain.gates.apply_gates`` (a test keeps them equal).
# A gate the recipe switches off (``beat_baseline: false``) has no check: a check that did
# not check must not show as a passed one.
CHECK_DESCRIPTIONS = {
    "min_macro_f1": "Candidate macro-F1 reaches the recipe's minimum.",
    "no_regression": "Macro-F1 does not drop more than allowed against the champion.",
    "no_label_regression": "No label's F1 drops more than allowed against the champion.",
    "beats_baseline": "Candidate beats the linear probe on frozen embeddings.",
    "gain_worth_cost": "A candidate costlier to serve than the champion shows a gain above "
    "the noise and worth the extra inference cost (the recipe's gates.cost).",
}


def build_training_assets(loaded: LoadedRecipe) -> list[dg.AssetsDefinition]:
    """The five assets of one recipe, keyed ``<recipe>/<asset>``, in group ``<recipe>``."""
    return [
        build_dataset_asset(loaded),
        build_mapped_asset(loaded),
        build_adapter_asset(loaded),
        build_evaluation_asset(loaded),
        build_champion_asset(loaded),
    ]


def build_dataset_asset(loaded: LoadedRecipe) -> dg.AssetsDefinition:
    keys = RecipeKeys.of(loaded.name)

    @dg.asset(
        key=keys.training_dataset,
        **training_args(loaded, heavy=False),
        kinds={"pandas", "parquet"},
        description=f"Validated, de-duplicated, hash-split data of recipe {loaded.name} "
        f"({loaded.taxonomy.ref}). Data version = content fingerprint.",
    )
    def training_dataset(context: dg.AssetExecutionContext, platform: PlatformResource):
        record = build_dataset(
            platform.platform,
            loaded,
            emit=context.log.info,
            taxonomy_version=split_key(context.partition_key)[0],
            include_feedback=True,
        )
        return dg.Output(
            record.to_dict(),
            data_version=dg.DataVersion(record.fingerprint),
            metadata=dataset_metadata(record),
        )

    return training_dataset


def build_adapter_asset(loaded: LoadedRecipe) -> dg.AssetsDefinition:
    keys = RecipeKeys.of(loaded.name)

    @dg.asset(
        key=keys.adapter,
        **training_args(loaded, heavy=True),
        ins={
            "dataset": dg.AssetIn(key=keys.training_dataset),
            "mapped": dg.AssetIn(key=keys.mapped_candidate),
        },
        kinds={"pytorch"},
        output_required=False,
        description=f"LoRA adapter for {loaded.name} on the partition's base revision (new "
        f"ones: what {loaded.recipe.base_model} resolves to); registered as candidate with "
        "its full lineage. Not trained (nor evaluated) under "
        "taxonomy_changes.policy mapped_only when a mapped candidate covers the version.",
    )
    def adapter(
        context: dg.AssetExecutionContext, platform: PlatformResource, dataset: dict, mapped: dict
    ):
        from modelops.lifecycle.taxonomy_change import should_train
        from modelops.lifecycle.train import train_adapter

        train, why = should_train(loaded, mapped)
        if not train:
            context.log.info(why)
            return
        version = train_adapter(
            platform.platform,
            loaded,
            DatasetRecord(**dataset),
            emit=context.log.info,
            mode=context.run.tags.get(TAG_MODE, "full"),
            base_ref=split_key(context.partition_key)[1],
        )
        handoff = {
            "adapter_id": version.id,
            "review_rows": dataset["stats"].get("review_rows", 0),
            "review_uri": dataset.get("review_uri"),
            "mapped_adapter_id": mapped.get("adapter_id"),
        }
        yield dg.Output(
            handoff,
            data_version=dg.DataVersion(version.weights_sha256),
            metadata=adapter_metadata(version),
        )

    return adapter


def build_evaluation_asset(loaded: LoadedRecipe) -> dg.AssetsDefinition:
    keys = RecipeKeys.of(loaded.name)
    check_specs = [
        dg.AssetCheckSpec(
            gate, asset=keys.evaluation, blocking=True, description=CHECK_DESCRIPTIONS[gate]
        )
        for gate in active_gates(loaded.recipe.gates)
    ]

    @dg.asset(
        key=keys.evaluation,
        **training_args(loaded, heavy=True),
        ins={"adapter": dg.AssetIn(key=keys.adapter)},
        check_specs=check_specs,
        description="Test-split metrics of the candidate, side by side with the champion; "
        "the recipe's gates are its blocking checks.",
    )
    def evaluation(context: dg.AssetExecutionContext, platform: PlatformResource, adapter: dict):
        from modelops.lifecycle.candidate_evaluation import evaluate_candidate

        evaluated = evaluate_candidate(
            platform.platform,
            loaded,
            adapter["adapter_id"],
            mapped_id=adapter.get("mapped_adapter_id"),
            emit=context.log.info,
        )
        outcome = evaluated.outcome
        handoff = {
            "adapter_id": outcome.adapter_id,
            "passed": outcome.decision.passed,
            "winner_id": evaluated.winner_id,
            "taxonomy_change": evaluated.versus,
        }
        yield dg.Output(handoff, metadata=evaluation_metadata(evaluated, adapter))
        for check in outcome.decision.checks:
            yield check_result(keys.evaluation, check)

    return evaluation


def build_champion_asset(loaded: LoadedRecipe) -> dg.AssetsDefinition:
    keys = RecipeKeys.of(loaded.name)

    @dg.asset(
        key=keys.champion,
        **training_args(loaded, heavy=False),
        ins={"evaluation": dg.AssetIn(key=keys.evaluation)},
        description="Moves the registry's champion alias to a candidate that passed every "
        "gate, with an audit entry.",
    )
    def champion(context: dg.AssetExecutionContext, platform: PlatformResource, evaluation: dict):
        p = platform.platform
        adapter_id = evaluation.get("winner_id") or evaluation["adapter_id"]
        versus = evaluation.get("taxonomy_change")
        entry = promote_if_passed(
            p,
            adapter_id,
            who=f"dagster run {context.run.run_id[:8]} ({p.settings.user})",
            why=promotion_reason(versus),
            evidence={"taxonomy_change": versus} if versus else None,
        )
        if entry is None:
            context.log.info(f"adapter {adapter_id} already is the champion")
        else:
            context.log.info(
                f"adapter {adapter_id} promoted (previous {entry.previous_adapter_id})"
            )
        return dg.MaterializeResult(metadata=champion_metadata(adapter_id, entry))

    return champion


def promotion_reason(versus: dict | None) -> str:
    """The audit entry's why: the gates, and the winner against the mapped candidate."""
    why = "passed every gate in the evaluation asset"
    if versus:
        loser = "mapped" if versus["winner"] == "trained" else "trained"
        why += (
            f"; {versus['winner']} candidate won against the {loser} one "
            f"({versus['why']}, margin {versus['margin']:.4f} {versus['metric']})"
        )
    return why
