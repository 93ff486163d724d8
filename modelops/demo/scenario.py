"""The continuous-adaptation scenario on the demo recipe.

Headless (``modelops demo``): Dagster runs in this process. Each production batch is
dropped in the landing folder, then the sensors are ticked and every run they
request is executed in process, exactly as the daemon would launch it: landing ->
batch scoring, a full window -> drift report, a drifted report -> retraining (with its
run key, cooldown and tags). The first batches are drawn like the training data; then
new intents and shifted vocabulary arrive, with labelled feedback for part of them.

Streaming (``modelops demo --stream``, started by ``make run``): only drops the batch
files, on a timer; the running Dagster daemon's sensors do the rest, in the UI.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from modelops.config.errors import InputError, ModelopsError
from modelops.config.progress import Emit
from modelops.config.recipe import LoadedRecipe, load_recipe
from modelops.config.settings import Settings
from modelops.defs.build import build_definitions
from modelops.defs.keys import (
    DRIFT_SENSOR,
    LANDING_SENSOR,
    TAG_MODE,
    TAG_REASON,
    WINDOW_SENSOR,
    RecipeKeys,
)
from modelops.defs.partitions import current_base, partition_key, sync_partitions
from modelops.defs.resources import build_resources
from modelops.defs.webserver import launch_taxonomy_backfill, report_lines, wait_for_webserver
from modelops.demo.generator import DemoKnobs, generate
from modelops.demo.intents import LAUNCH_INTENTS
from modelops.domain.evaluation import evaluate
from modelops.lifecycle.fetch import FetchedAdapter, predict_with
from modelops.lifecycle.platform import Platform
from modelops.stores.landing import INCOMING

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScenarioKnobs:
    recipe: str = "demo_intents"
    batch_size: int = 200
    clean_batches: int = 5
    drifted_batches: int = 3
    new_intents: tuple[str, ...] = LAUNCH_INTENTS
    new_intent_share: float = 0.3
    vocabulary_shift: float = 0.4
    feedback_share: float = 0.6
    eval_rows: int = 400
    seed: int = 11

    def batch(self, index: int) -> pd.DataFrame:
        """Production batch ``index`` with its true labels (the feedback source)."""
        drifted = index >= self.clean_batches
        knobs = DemoKnobs(
            n=self.batch_size,
            seed=self.seed * 1000 + index,
            new_intents=self.new_intents if drifted else (),
            new_intent_share=self.new_intent_share if drifted else 0.0,
            vocabulary_shift=self.vocabulary_shift if drifted else 0.0,
        )
        return generate(knobs)

    def evaluation_sets(self) -> dict[str, pd.DataFrame]:
        old = generate(DemoKnobs(n=self.eval_rows, seed=self.seed * 1000 + 901))
        new = generate(
            DemoKnobs(
                n=self.eval_rows,
                seed=self.seed * 1000 + 902,
                new_intents=self.new_intents,
                new_intent_share=self.new_intent_share,
                vocabulary_shift=self.vocabulary_shift,
            )
        )
        return {"original_data": old, "shifted_data": new}


def drop_batch(
    landing_root: Path | str,
    recipe: str,
    frame: pd.DataFrame,
    name: str,
    feedback_share: float,
    seed: int,
) -> Path:
    """Write a batch file into ``incoming/`` atomically; ``feedback_share`` of the rows
    carry their true label (labelled feedback), the rest none. Local landing folders
    only."""
    rng = np.random.default_rng(seed)
    labelled = rng.random(len(frame)) < feedback_share
    out = pd.DataFrame({"text": frame["text"], "label": np.where(labelled, frame["label"], "")})
    incoming = local_landing(landing_root) / recipe / INCOMING
    incoming.mkdir(parents=True, exist_ok=True)
    tmp = incoming / f".{name}.tmp"
    out.to_csv(tmp, index=False)
    path = incoming / name
    tmp.rename(path)
    return path


def local_landing(landing_root: Path | str) -> Path:
    """The landing root as a local directory; the scenario does not write to S3."""
    if str(landing_root).startswith("s3://"):
        raise InputError(
            str(landing_root),
            None,
            "the scenario drops batch files into a local landing folder only; give the "
            "recipe a local monitoring.landing to run it",
        )
    return Path(landing_root)


class Loop:
    """Dagster definitions of the platform, driven in this process."""

    def __init__(
        self, settings: Settings, instance: dg.DagsterInstance, recipe: str, emit: Emit = log.info
    ):
        self.settings = settings
        self.instance = instance
        self.emit = emit
        self.defs = build_definitions(settings)
        self.resources = build_resources(settings)
        self.platform = Platform.from_settings(settings)
        self.loaded: LoadedRecipe = load_recipe(settings.recipes_dir / f"{recipe}.yaml")
        self.keys = RecipeKeys.of(self.loaded.name)
        self.cursors: dict[str, str | None] = {}
        sync_partitions(instance, [self.loaded], self.platform.catalog)

    def materialize(self, keys, *, partition_key=None, tags=None):
        return dg.materialize(
            list(self.defs.assets),
            selection=list(keys),
            instance=self.instance,
            resources=self.resources,
            partition_key=partition_key,
            tags=tags,
            raise_on_error=False,
        )

    def train(self, version: str):
        """Train taxonomy ``version`` on the base the recipe resolves to now."""
        base = current_base(self.loaded, self.platform.catalog)
        return self.materialize(self.keys.training, partition_key=partition_key(version, base))

    def tick(self, sensor_name: str) -> list[tuple[dg.RunRequest, object]]:
        """Evaluate one sensor tick; run its requests in process; return both."""
        sensor = self.defs.resolve_sensor_def(sensor_name)
        with (
            dg.build_sensor_context(
                instance=self.instance,
                cursor=self.cursors.get(sensor_name),
                resources=self.resources,
                definitions=self.defs,
            ) as context,
            dg.partition_loading_context(dynamic_partitions_store=self.instance),
        ):
            data = sensor.evaluate_tick(context)
        self.cursors[sensor_name] = data.cursor
        done = []
        for request in data.run_requests or []:
            if request.run_key and self.instance.get_runs(
                filters=dg.RunsFilter(tags={"dagster/run_key": request.run_key})
            ):
                continue  # one event never launches two runs
            tags = {**request.tags, "dagster/run_key": request.run_key or ""}
            if request.asset_selection:
                result = self.materialize(request.asset_selection, tags=tags)
            else:
                job = self.defs.resolve_job_def(request.job_name or sensor.job_name)
                result = job.execute_in_process(
                    instance=self.instance,
                    partition_key=request.partition_key,
                    tags=tags,
                    raise_on_error=False,
                )
            done.append((request, result))
        return done

    def accuracy(self, frame: pd.DataFrame) -> dict:
        """The serving champion on labelled rows: overall, and on new-intent rows."""
        champion = self.platform.registry.alias(self.loaded.name, "champion")
        with FetchedAdapter(self.platform, champion) as fetched:
            probs, labels = predict_with(
                self.platform,
                fetched,
                frame["text"].tolist(),
                self.loaded.recipe.training.max_length,
            )
        index = {name: i for i, name in enumerate(labels)}
        known = frame["label"].isin(index)
        y = np.array([index.get(v, -1) for v in frame["label"]])
        predicted = probs.argmax(1)
        new = frame["label"].isin(LAUNCH_INTENTS).to_numpy()
        result = {
            "adapter_id": champion.id,
            "rows": len(frame),
            "accuracy": float((predicted == y).mean()),
            "macro_f1": evaluate(y[known.to_numpy()], probs[known.to_numpy()], labels).macro_f1,
        }
        if new.any():
            result["new_intent_rows"] = int(new.sum())
            result["new_intent_accuracy"] = float((predicted[new] == y[new]).mean())
        return result


def run_scenario(
    settings: Settings,
    knobs: ScenarioKnobs = ScenarioKnobs(),
    emit: Emit = log.info,
    instance: dg.DagsterInstance | None = None,
) -> dict:
    """Run the whole loop headless; return the JSON-able summary."""
    started = time.perf_counter()
    own = instance is None
    if own:
        home = settings.dagster_home or settings.home / "dagster"
        home.mkdir(parents=True, exist_ok=True)
        instance = dg.DagsterInstance.from_config(str(home))
    try:
        loop = Loop(settings, instance, knobs.recipe, emit)
        return _run(loop, knobs, emit, started)
    finally:
        if own:
            instance.dispose()


def _run(loop: Loop, knobs: ScenarioKnobs, emit: Emit, started: float) -> dict:
    name = loop.loaded.name
    keys = loop.keys
    landing = local_landing(loop.loaded.landing_root(loop.settings.home))
    registry = loop.platform.registry
    if registry.alias(name, "champion") is None:
        emit(f"training the first champion of {name} ({loop.loaded.data_version})")
        if not loop.train(loop.loaded.data_version).success:
            raise RuntimeError("the first training run failed; see the Dagster logs")
    initial = registry.alias(name, "champion")
    eval_sets = knobs.evaluation_sets()
    summary: dict = {
        "recipe": name,
        "knobs": asdict(knobs),
        "initial_champion": {
            "adapter_id": initial.id,
            "test_metrics": {
                k: initial.metrics.get(k) for k in ("test_accuracy", "test_macro_f1", "test_ece")
            },
            **{k: loop.accuracy(v) for k, v in eval_sets.items()},
        },
        "batches": [],
        "first_drift_batch": None,
        "retraining_runs": [],
    }
    for index in range(knobs.clean_batches + knobs.drifted_batches):
        kind = "drifted" if index >= knobs.clean_batches else "clean"
        frame = knobs.batch(index)
        share = knobs.feedback_share if kind == "drifted" else 0.0
        drop_batch(
            landing,
            name,
            frame,
            f"batch-{int(time.time())}-{index:03d}.csv",
            share,
            knobs.seed + index,
        )
        loop.tick(LANDING_SENSOR)
        record = {"batch": index, "kind": kind, "rows": len(frame)}
        for _request, result in loop.tick(WINDOW_SENSOR):
            event = loop.instance.get_latest_materialization_event(keys.drift_report)
            md = event.asset_materialization.metadata if event else {}
            record.update(
                {
                    "drift_report_run": result.run_id,
                    "drifted": md["drifted"].value if "drifted" in md else None,
                    "fired": md["fired"].value if "fired" in md else None,
                    "action": md["action"].value if "action" in md else None,
                    "estimated_accuracy": md["estimated_accuracy"].value
                    if "estimated_accuracy" in md
                    else None,
                    "scores": {k[6:]: v.value for k, v in md.items() if k.startswith("score_")},
                    "thresholds": {
                        k[10:]: v.value for k, v in md.items() if k.startswith("threshold_")
                    },
                }
            )
        if record.get("drifted") and summary["first_drift_batch"] is None:
            summary["first_drift_batch"] = index
        for request, result in loop.tick(DRIFT_SENSOR):
            champion = registry.alias(name, "champion")
            run = {
                "batch": index,
                "run_id": result.run_id,
                "run_key": request.run_key,
                "reason": request.tags.get(TAG_REASON),
                "mode": request.tags.get(TAG_MODE),
                "partition": request.partition_key,
                "success": result.success,
                "newest_adapter": registry.list(name)[0].id,
                "champion_after": champion.id if champion else None,
            }
            summary["retraining_runs"].append(run)
            emit(f"batch {index}: retraining run {result.run_id[:8]} ({run['reason']})")
        summary["batches"].append(record)
        emit(f"batch {index} ({kind}): drifted={record.get('drifted')} fired={record.get('fired')}")
    final = registry.alias(name, "champion")
    summary["new_champion"] = {
        "adapter_id": final.id,
        "changed": final.id != initial.id,
        "mode": final.lineage.get("mode"),
        "test_metrics": {
            k: final.metrics.get(k) for k in ("test_accuracy", "test_macro_f1", "test_ece")
        },
        **{k: loop.accuracy(v) for k, v in eval_sets.items()},
    }
    clean = [b for b in summary["batches"] if b["kind"] == "clean"]
    summary["false_alarms"] = sum(bool(b.get("drifted")) for b in clean)
    summary["detection_delay_batches"] = (
        None
        if summary["first_drift_batch"] is None
        else summary["first_drift_batch"] - knobs.clean_batches
    )
    summary["seconds"] = round(time.perf_counter() - started, 1)
    return summary


def stream(
    settings: Settings, knobs: ScenarioKnobs, every_seconds: float, emit: Emit = log.info
) -> None:
    """Feed a running Dagster (``make run``): launch the first training as a backfill of
    the data's taxonomy version when there is no champion yet, wait for it, then drop the
    scenario's batches into the landing folder on a timer. The daemon's sensors do the
    rest: scoring, drift reports, retraining, promotion."""
    loaded = load_recipe(settings.recipes_dir / f"{knobs.recipe}.yaml")
    landing = local_landing(loaded.landing_root(settings.home))
    platform = Platform.from_settings(settings)
    if platform.registry.alias(loaded.name, "champion") is None:
        wait_for_webserver(settings.dagster_url)
        try:
            report = launch_taxonomy_backfill(
                settings,
                loaded.taxonomy.name,
                loaded.data_version,
                recipes=[loaded.name],
                emit=emit,
            )
            for line in report_lines(report):
                emit(line)
        except ModelopsError as exc:  # said in the log; the wait below shows the outcome
            emit(f"modelops: error: {exc}")
        emit("launched the first training; streaming starts once a champion is promoted")
        while platform.registry.alias(loaded.name, "champion") is None:
            if any(v.status == "rejected" for v in platform.registry.list(loaded.name)):
                emit("the first adapter failed its gates: nothing to stream against; see the UI")
                return
            time.sleep(10)
    for index in range(knobs.clean_batches + knobs.drifted_batches):
        drifted = index >= knobs.clean_batches
        path = drop_batch(
            landing,
            loaded.name,
            knobs.batch(index),
            f"stream-{int(time.time())}-{index:03d}.csv",
            knobs.feedback_share if drifted else 0.0,
            knobs.seed + index,
        )
        emit(f"dropped {'drifted' if drifted else 'clean'} batch {index}: {path}")
        time.sleep(every_seconds)
    emit("all batches dropped")


def summary_json(summary: dict) -> str:
    return json.dumps(summary, indent=2, default=str)
