"""Banking77 drift benchmark: new intents appear in production; does monitoring see them, and
does the triggered retraining learn them?

10 of the 77 intents (chosen at random with ``--seed``) are left out of training. The champion
is trained in full through the platform (``build_dataset`` -> ``train_adapter``, which also
stores the calibrated drift reference) on the train.csv rows of the other 67 intents, under a
taxonomy that has all 77 labels. Banking77 test.csv is then streamed in batches of 200 through
a ``Predictor`` that logs to the ``ProductionLog``: 20 clean batches of known intents (test.csv
has 2,680 such rows, so each clean batch is an independent sample of 200 of them and rows recur
across batches), then drifted batches with 20 % of rows from the held-out intents (those rows
never recur). Each batch is read back from the log and checked with ``check_window`` against
the champion's bundle. The true labels of the first drifted batches become feedback; the
dataset is rebuilt with it and trained ``incremental`` and ``full``. Accuracy is on test.csv
rows that were not fed back. Check time: ``signal_scores`` + ``verdict`` (the platform's scoring
path) against a bare Evidently ``Report`` of one ``ValueDrift`` per column on the same columns
(the same stat tests), at 1k/10k/100k rows replicated from the drifted batches.
Progress goes to stderr; the last line of stdout is one JSON object with every result.

**Alarm protocol (issue 13, always run; ``benchmarks/drift_alarms.py``).** ``--clean`` (100)
clean windows of known-intent test.csv rows (collected apart from train.csv) against the
champion's reference (held-out train.csv rows), at the recipe's default false-alarm rate;
then, for each of ``--shares`` (10 %, 5 %, 2 % novel-intent rows), ``--drifted`` (5)
windows: detection delay, the smallest share detected within 3 windows, the retraining
decisions of the default policy on the clean and the drifted streams, and the estimated
minus the measured accuracy. The JSON's top level holds ``clean_windows``,
``false_alarms``, ``retraining_runs_clean``, ``retraining_runs_drifted``,
``detection_delay_windows`` and ``smallest_share_detected_within_3``.

**Accumulated evidence and out of scope (issue 24; ``--evidence``,
``benchmarks/drift_evidence.py``).** Instead of the alarm protocol: a clean stream
(``--clean`` windows), a mild-shift stream (``--mild`` windows, the champion's true accuracy
1.25 points below validation) and novel streams (``--novel-shares``, ``--novel-replicates``
streams of ``--novel-windows`` windows each) are built by ``benchmarks/banking77_streams.py``
(how, in its docstring) and checked window by window with ``check_window`` (accumulating
evidence per stream where the platform has it), and out-of-scope scores are compared by
AUROC (``benchmarks/oos_candidates.py``; ``--oos-notes FILE`` writes the table). The last
line's JSON starts with the issue's keys.

``--home DIR`` keeps the workspace: the first run trains the champion there (``--variant``:
a ``train_banking77.py`` recipe, e.g. its chosen ``v2_all_r16_cos_ls``; ``--train-only``
stops there), later runs reuse the registry's champion. The adapter's logits and pooled
features of test.csv, training and held-out rows are cached (``--cache``, default
``DIR/features``), so an out-of-scope model the champion predates is built from them.

The Predictor/ProductionLog stream, the check-time comparison and the incremental/full
retraining of runs 1-5 in RESULTS.md run with ``--full`` (their stream has
``--stream-clean`` clean batches, 20 by default).

    .venv/bin/python benchmarks/drift_banking77.py [--epochs 1] [--threads 2] [--limit N]
        [--held-fraction 0.1] [--replay-fraction F] [--full]
        [--home DIR [--base minilm|mpnet] [--variant V] [--train-only]]
        [--evidence [--oos-notes FILE]]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import re
import shlex
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from modelops.config.recipe import load_recipe
from modelops.config.settings import Settings
from modelops.lifecycle.dataset import build_dataset
from modelops.lifecycle.evaluate import evaluate_adapter
from modelops.lifecycle.fetch import FetchedAdapter, predict_with
from modelops.lifecycle.platform import Platform
from modelops.lifecycle.promote import promote_if_passed
from modelops.lifecycle.train import train_adapter
from modelops.monitoring.check import check_window
from modelops.monitoring.evidently_scores import METHODS, signal_scores
from modelops.monitoring.reference import base_embeddings, load_bundle
from modelops.monitoring.signals import Window, column_frames
from modelops.monitoring.verdict import verdict
from modelops.serving.predictor import Predictor
from modelops.stores.db.engine import migrate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from drift_alarms import run_alarms  # noqa: E402  (a sibling script, not a package)
from drift_evidence import run_evidence  # noqa: E402
from train_banking77 import DEFAULT_VARIANT, VARIANTS  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO / ".." / "shared" / "data" / "banking77"
RECIPE = "banking77_drift"
STARTED = time.perf_counter()
# The settings train_banking77.py found best on a validation part of train.csv (RESULTS.md).
ADAPTER = {"r": 8, "alpha": 16, "dropout": 0.1, "target_modules": ["query", "value"]}
HEAD = {"pooling": "mean", "init": "probe", "probe_c": 10.0}
TRAINING = {
    "learning_rate": 5e-4,
    "batch_size": 32,
    "max_length": 64,
    "seed": 13,
    "warmup_ratio": 0.06,
}
TARGETS = {
    "false_alarms": 0,
    "detection_delay_batches": 0,
    "check_time_ratio": 1.2,
    "incremental_time_share": 0.35,
    "original_accuracy_drop_points": 1.0,
}


def emit(message: str) -> None:
    """Progress on stderr, with the seconds since start."""
    print(f"[{time.perf_counter() - STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


def label_name(category: str) -> str:
    """Banking77's names as taxonomy labels (``Refund_not_showing_up``, ``...payment?``)."""
    return re.sub(r"[^a-z0-9_]", "", category.lower())


def banking77_frames(data: Path, seed: int, held: int):
    """train.csv and test.csv with a ``label`` column, the 77 labels, and the ``held``
    intents left out of training (chosen at random with ``seed``, sorted)."""
    train, test = (pd.read_csv(data / f"{s}.csv") for s in ("train", "test"))
    listed = data / "categories.json"  # or, without it, the categories of train.csv
    categories = (
        json.loads(listed.read_text()) if listed.is_file() else sorted(train["category"].unique())
    )
    labels = [label_name(c) for c in categories]
    for frame in (train, test):
        frame["label"] = [label_name(c) for c in frame["category"]]
    rng = np.random.default_rng(seed)
    return train, test, labels, sorted(rng.choice(labels, size=held, replace=False).tolist())


def variant_settings(name: str | None) -> tuple[dict, dict]:
    """The adapter and training settings: ``ADAPTER``/``TRAINING`` (None), or a
    ``train_banking77.py`` variant (its chosen one is ``DEFAULT_VARIANT``)."""
    if name is None:
        return ADAPTER, TRAINING
    lora, training = VARIANTS[name]
    adapter = lora.model_dump(mode="json")
    adapter["target_modules"] = list(adapter["target_modules"])
    plain = {
        k: v.model_dump(mode="json") if hasattr(v, "model_dump") else v for k, v in training.items()
    }
    return adapter, {**TRAINING, **plain}  # sections (a contrastive stage) as YAML mappings


def write_workspace(root: Path, rows: pd.DataFrame, labels: list[str], args) -> Settings:
    """Training CSV (known intents only), taxonomy v1 with all 77 labels, recipe, Settings."""
    (root / "data").mkdir(parents=True, exist_ok=True)
    rows[["text", "label"]].to_csv(root / "data" / "known_intents.csv", index=False)
    tax = root / "taxonomies" / "banking77" / "v1.yaml"
    tax.parent.mkdir(parents=True, exist_ok=True)
    doc = {"name": "banking77", "version": "v1", "labels": [{"name": n} for n in labels]}
    tax.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    adapter, training = variant_settings(args.variant)
    recipe = {
        "name": RECIPE,
        "data": {
            "sources": [{"path": "../data/known_intents.csv"}],
            "validation_fraction": args.held_fraction,
            "test_fraction": args.held_fraction,
        },
        "taxonomy": "../taxonomies/banking77/v1.yaml",
        "base_model": f"{args.base}@stable",
        "adapter": adapter,
        "head": HEAD,
        "training": {**training, "epochs": args.epochs},
        "gates": {"min_macro_f1": args.min_macro_f1, "beat_baseline": False},
        "monitoring": {
            "window_size": args.batch_size,
            **({"n_bootstrap": args.n_bootstrap} if args.n_bootstrap else {}),
        },
        "retraining": {
            "mode": "incremental",
            **({"replay_fraction": args.replay_fraction} if args.replay_fraction else {}),
        },
    }
    (root / "recipes").mkdir(exist_ok=True)
    (root / "recipes" / f"{RECIPE}.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    return workspace_settings(root, args)


def workspace_settings(root: Path, args) -> Settings:
    """The Settings of a benchmark workspace (``--workspace`` reuses one). A champion on
    any base but MiniLM (``--base``, or the workspace's recipe) resolves it from the
    platform's catalog file, where mpnet is listed; MiniLM from the built-in catalog."""
    home = root / ".modelops"
    recipe = root / "recipes" / f"{RECIPE}.yaml"
    written = yaml.safe_load(recipe.read_text()) if recipe.is_file() else {}
    base = str(written.get("base_model") or f"{args.base}@stable")
    catalog = root / "no-catalog.yaml"
    if not base.startswith("minilm@"):
        catalog = REPO / "catalog" / "base_models.yaml"
    return Settings(
        home=home,
        database_url=f"sqlite:///{home / 'modelops.db'}",
        artifacts_uri=str(home / "artifacts"),
        s3_endpoint_url=None,
        recipes_dir=root / "recipes",
        catalog_path=catalog,
        cache_dir=home / "cache",
        torch_threads=args.threads,
        user="benchmark",
    )


def make_batches(known: pd.DataFrame, new: pd.DataFrame, args) -> list[tuple[str, pd.DataFrame]]:
    """Clean batches (known intents), then drifted ones (``--share`` of held-out intents)."""
    batches = [
        ("clean", known.sample(n=args.batch_size, random_state=args.seed + i))
        for i in range(args.stream_clean)
    ]
    n_new = round(args.share * args.batch_size)
    if n_new * args.drifted > len(new):
        raise SystemExit(
            f"{args.drifted} drifted batches need {n_new * args.drifted} held-out "
            f"test rows; test.csv has {len(new)}"
        )
    new = new.sample(frac=1.0, random_state=args.seed)
    for j in range(args.drifted):
        old = known.sample(n=args.batch_size - n_new, random_state=args.seed + 1000 + j)
        mixed = pd.concat([old, new.iloc[j * n_new : (j + 1) * n_new]])
        batches.append(("drifted", mixed.sample(frac=1.0, random_state=args.seed + 2000 + j)))
    return batches


def stream(plat: Platform, loaded, champion, batches) -> tuple:
    """Score each batch through the Predictor + ProductionLog, check it against the bundle."""
    predictor = Predictor(plat, RECIPE, log=plat.production_log, check_every_s=1e9)
    with FetchedAdapter(plat, champion) as fetched:
        bundle = load_bundle(fetched.path)
    if bundle is None:
        raise SystemExit("the champion has no monitoring bundle (too few held-out rows)")
    base = plat.resolve_base_by_sha256(champion.base_model_sha256)
    results, logged = [], {}
    for i, (kind, batch) in enumerate(batches):
        batch_id = f"{kind}-{i}"
        scored = predictor.predict_frame(batch, source="benchmark", batch_id=batch_id)
        window = plat.production_log.predictions(RECIPE, batch_id=batch_id)
        started = time.perf_counter()
        check = check_window(bundle, window, base=base, recipe=loaded.recipe)
        seconds = time.perf_counter() - started
        logged[batch_id] = scored
        results.append(
            {
                "batch": i,
                "kind": kind,
                "drifted": check.verdict.drifted,
                "fired": check.verdict.fired,
                "check_seconds": seconds,
                "scores": check.verdict.scores,
            }
        )
        emit(f"batch {i} ({kind}): {check.verdict.reason}")
    return results, logged, bundle, base


def platform_check(bundle, current: Window):
    """The platform's scoring path of a check: Evidently scores per signal, then the verdict."""
    scores = signal_scores(
        bundle.reference, current, vocabulary=bundle.vocabulary, pca=bundle.projection
    )
    return verdict(scores, bundle.calibration)


def bare_evidently(ref_frame: pd.DataFrame, cur_frame: pd.DataFrame, kinds: dict):
    """A plain Evidently Report: one ValueDrift per column, the same stat tests."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    definition = DataDefinition(
        text_columns=[c for c, k in kinds.items() if k == "text"],
        numerical_columns=[c for c, k in kinds.items() if k == "num"],
        categorical_columns=[c for c, k in kinds.items() if k == "cat"],
    )
    metrics = [ValueDrift(column=c, method=METHODS[k]) for c, k in kinds.items()]
    return Report(metrics).run(
        Dataset.from_pandas(cur_frame, data_definition=definition),
        Dataset.from_pandas(ref_frame, data_definition=definition),
    )


def median_seconds(call, *args, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call(*args)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def time_checks(bundle, base, drifted: pd.DataFrame, sizes: list[int], repeats: int) -> list:
    """Seconds per check at each size: the platform's scoring vs a bare Evidently Report on the
    same columns (built from the same windows outside the Evidently timing)."""
    emit(f"embedding {len(drifted)} drifted-batch rows for the timing windows")
    texts = drifted["text"].tolist()
    pool = Window(
        texts=texts,
        predicted=drifted["predicted_label"].tolist(),
        confidence=drifted["confidence"].to_numpy(float),
        embeddings=base_embeddings(base, texts, bundle.max_length),
    )
    out = []
    for size in sizes:
        current = pool.take(np.resize(np.arange(len(pool)), size))
        frames = column_frames(bundle.reference, current, bundle.vocabulary, bundle.projection)
        if not out:  # warm-up: imports, caches
            platform_check(bundle, current)
            bare_evidently(*frames)
        runs = repeats if size <= 10_000 else 1
        mine = median_seconds(platform_check, bundle, current, runs=runs)
        bare = median_seconds(bare_evidently, *frames, runs=runs)
        row = {
            "rows": size,
            "reference_rows": len(bundle.reference),
            "columns": len(frames[2]),
            "runs": runs,
            "platform_seconds": mine,
            "evidently_seconds": bare,
            "ratio": mine / bare,
        }
        emit(
            f"check time at {size} rows: platform {mine:.2f}s, bare Evidently {bare:.2f}s, "
            f"ratio {row['ratio']:.2f}"
        )
        out.append(row)
    return out


def accuracy(plat: Platform, version, rows: pd.DataFrame, max_length: int) -> float:
    """Accuracy of a registered adapter on ``rows`` (text, label)."""
    with FetchedAdapter(plat, version) as fetched:
        probs, labels = predict_with(plat, fetched, rows["text"].tolist(), max_length)
    return float(np.mean(np.array(labels)[probs.argmax(1)] == rows["label"].to_numpy()))


class TrainingProgress:
    """``emit`` for a training: adds samples/s and an ETA to the loop's step messages
    (``epoch E step S/N ...``), from the steps done since the first one seen."""

    STEP = re.compile(r"epoch (\d+) step (\d+)/(\d+)")

    def __init__(self, mode: str, batch_size: int, epochs: int) -> None:
        self.mode, self.batch_size, self.epochs = mode, batch_size, epochs
        self.first: tuple[float, int] | None = None

    def __call__(self, message: str) -> None:
        match = self.STEP.search(message)
        if match:
            epoch, step, per_epoch = (int(g) for g in match.groups())
            done = (epoch - 1) * per_epoch + step
            now = time.perf_counter()
            if self.first is None:
                self.first = (now, done)
            elif done > self.first[1]:
                rate = (done - self.first[1]) / (now - self.first[0])
                left = (self.epochs * per_epoch - done) / rate
                message += (
                    f" | {rate * self.batch_size:.1f} samples/s, loop ETA {left / 60:.0f} min "
                    f"({datetime.fromtimestamp(time.time() + left, UTC):%H:%M} UTC)"
                )
        emit(f"{self.mode}: {message}")


def timed_training(plat, loaded, dataset, mode: str) -> tuple:
    started = time.perf_counter()
    training = loaded.recipe.training
    progress = TrainingProgress(mode, training.batch_size, training.epochs)
    version = train_adapter(plat, loaded, dataset, emit=progress, mode=mode)
    return version, time.perf_counter() - started


def run_info(args, load_start) -> dict:
    """The settings, machine and wall time every result JSON ends with."""
    return {
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_start": load_start,
            "loadavg_end": os.getloadavg(),
        },
        "total_seconds": time.perf_counter() - STARTED,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, help="subsample the training rows (smoke runs)")
    parser.add_argument("--held-out", type=int, default=10, help="intents left out of training")
    parser.add_argument("--batch-size", type=int, default=200, help="also the window size")
    parser.add_argument("--clean", type=int, default=100, help="clean windows (alarms)")
    parser.add_argument("--drifted", type=int, default=5, help="drifted windows per share")
    parser.add_argument(
        "--shares",
        type=lambda v: [float(x) for x in v.split(",")],
        default=[0.10, 0.05, 0.02],
        help="novel-intent shares (alarms)",
    )
    parser.add_argument(
        "--held-fraction",
        type=float,
        default=0.1,
        help="validation and test fractions of the champion's dataset",
    )
    parser.add_argument(
        "--n-bootstrap",
        type=int,
        default=None,
        help="monitoring.n_bootstrap (default: the recipe default, smoke runs)",
    )
    parser.add_argument("--min-macro-f1", type=float, default=0.5, help="champion gate")
    parser.add_argument(
        "--workspace",
        type=Path,
        default=None,
        help="reuse the champion of an earlier run's workspace (alarm protocol only)",
    )
    parser.add_argument(
        "--home",
        type=Path,
        default=None,
        help="a lasting workspace: trains the champion there unless its registry has one "
        "for the recipe, which later runs reuse (with the recipe the first run wrote: "
        "--variant, --epochs and --held-fraction then change nothing)",
    )
    parser.add_argument(
        "--base",
        default="minilm",
        help="catalog name of the champion's base (its @stable revision; mpnet needs `make mpnet`)",
    )
    parser.add_argument(
        "--variant",
        default=None,
        choices=sorted(VARIANTS),
        help=f"train_banking77.py settings for the champion (its chosen: {DEFAULT_VARIANT}); "
        "default: the settings of runs 1-5 (r 8 on query/value)",
    )
    parser.add_argument(
        "--evidence",
        action="store_true",
        help="issue 24: clean, mild-shift and novel streams through check_window with "
        "accumulating evidence, and out-of-scope AUROC (benchmarks/drift_evidence.py)",
    )
    parser.add_argument("--mild", type=int, default=20, help="mild-shift windows (--evidence)")
    parser.add_argument(
        "--novel-shares",
        type=lambda v: [float(x) for x in v.split(",")],
        default=[0.02, 0.05, 0.10, 0.20, 0.30],
        help="held-out-intent shares of the novel streams (--evidence)",
    )
    parser.add_argument(
        "--novel-replicates", type=int, default=3, help="streams per share (--evidence)"
    )
    parser.add_argument(
        "--novel-windows", type=int, default=5, help="windows per novel stream (--evidence)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="--evidence: streams checked in parallel by this many forked processes",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="feature cache of --evidence (default <--home>/features)",
    )
    parser.add_argument(
        "--oos-notes", type=Path, default=None, help="--evidence: write the AUROC table here"
    )
    parser.add_argument(
        "--train-only", action="store_true", help="stop once the champion exists (--home)"
    )
    parser.add_argument(
        "--recalibrate",
        action="store_true",
        help="with --workspace: redo the champion's calibration with the current code",
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help="also the stream, check time and retraining parts of runs 1-5",
    )
    parser.add_argument("--stream-clean", type=int, default=20, help="clean batches (--full)")
    parser.add_argument(
        "--share", type=float, default=0.2, help="held-out share of a drifted batch"
    )
    parser.add_argument("--feedback-batches", type=int, default=3)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument(
        "--replay-fraction",
        type=float,
        default=None,
        help="retraining.replay_fraction (default: the recipe default, 0.2)",
    )
    args = parser.parse_args(argv)
    if args.full and (args.workspace or args.home):
        raise SystemExit("--full trains its own champion; leave out --workspace and --home")
    if args.workspace and args.home:
        raise SystemExit("give --workspace or --home, not both")
    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()
    train, test, labels, held_out = banking77_frames(args.data, args.seed, args.held_out)
    known_train = train[~train["label"].isin(held_out)]
    if args.limit:
        known_train = known_train.sample(
            n=min(args.limit, len(known_train)), random_state=args.seed
        )
    emit(f"held-out intents: {', '.join(held_out)}; {len(known_train)} training rows")
    if args.workspace:  # the champion of an earlier run, same seed and data
        work = args.workspace
        settings = workspace_settings(work, args)
    elif args.home and (args.home / "recipes" / f"{RECIPE}.yaml").is_file():
        work = args.home  # its recipe and data stay as the first run wrote them
        settings = workspace_settings(work, args)
    elif args.home:
        work = args.home
        settings = write_workspace(work, known_train, labels, args)
    else:
        work = Path(tempfile.mkdtemp(prefix="drift-banking77-"))
        settings = write_workspace(work, known_train, labels, args)
    migrate(settings.database_url)  # what modelops init does
    plat = Platform.from_settings(settings)
    loaded = load_recipe(settings.recipes_dir / f"{RECIPE}.yaml")
    max_length = loaded.recipe.training.max_length

    reused = plat.registry.alias(RECIPE, "champion") if args.home else None
    if args.workspace or reused is not None:
        champion, champion_s = reused or plat.registry.alias(RECIPE, "champion"), None
        dataset = None
        emit(f"reusing champion adapter {champion.id} of {work}")
    else:
        dataset = build_dataset(plat, loaded, emit=emit)
        champion, champion_s = timed_training(plat, loaded, dataset, "full")
        evaluate_adapter(plat, champion.id, emit=emit, loaded=loaded)
        promote_if_passed(plat, champion.id, who="benchmark", why="drift benchmark champion")
        emit(f"champion {champion.id} trained in {champion_s:.0f} s: {champion.metrics}")
        if args.home:
            (work / "champion.json").write_text(
                json.dumps({"id": champion.id, "wall_seconds": champion_s}) + "\n"
            )
    if champion_s is None and (work / "champion.json").is_file():
        stored = json.loads((work / "champion.json").read_text())
        if stored.get("id") == champion.id:
            champion_s = stored["wall_seconds"]
    if args.train_only:
        return 0

    if args.evidence:
        args.command = ".venv/bin/python " + shlex.join(sys.argv)
        result = run_evidence(plat, loaded, champion, test, held_out, args, emit)
        keys = list(result)[:7]
        print(
            json.dumps(
                {
                    **{k: result[k] for k in keys},
                    "benchmark": "drift_banking77 --evidence (issue 24)",
                    "date": datetime.now(UTC).isoformat(timespec="seconds"),
                    "command": args.command,
                    "held_out_intents": held_out,
                    "champion": {
                        "id": champion.id,
                        "wall_seconds": champion_s,
                        "train_seconds": champion.metrics.get("train_seconds"),
                        "train_rows": champion.metrics.get("train_rows"),
                        "recipe": loaded.recipe.model_dump(
                            mode="json", include={"adapter", "training"}
                        ),
                    },
                    **{k: v for k, v in result.items() if k not in keys},
                    **run_info(args, load_start),
                },
                default=float,
            )
        )
        return 0
    frame = None
    if args.recalibrate:
        from modelops.lifecycle.dataset import load_dataset

        frame = load_dataset(plat, champion.lineage["dataset"]).frame
    alarms = run_alarms(plat, loaded, champion, test, held_out, args, emit, frame)
    head = {
        k: alarms[k]
        for k in (
            "clean_windows",
            "false_alarms",
            "retraining_runs_clean",
            "retraining_runs_drifted",
            "detection_delay_windows",
            "smallest_share_detected_within_3",
        )
    }
    if not args.full:
        print(
            json.dumps(
                {
                    **head,
                    "benchmark": "drift_banking77 (alarm protocol)",
                    "date": datetime.now(UTC).isoformat(timespec="seconds"),
                    "command": ".venv/bin/python " + shlex.join(sys.argv),
                    "held_out_intents": held_out,
                    "rows": {
                        "train_known": len(known_train),
                        "champion_dataset": dataset.stats if dataset else None,
                    },
                    "champion": {
                        "id": champion.id,
                        "wall_seconds": champion_s,
                        "train_rows": champion.metrics["train_rows"],
                        "validation_accuracy": champion.metrics["validation_accuracy"],
                    },
                    "alarms": alarms,
                    **run_info(args, load_start),
                }
            )
        )
        return 0

    is_new = test["label"].isin(held_out)
    batches = make_batches(test[~is_new], test[is_new], args)
    results, logged, bundle, base = stream(plat, loaded, champion, batches)
    clean = [r for r in results if r["kind"] == "clean"]
    drifted = [r for r in results if r["kind"] == "drifted"]
    detected = [j for j, r in enumerate(drifted) if r["drifted"]]
    delay = detected[0] if detected else None

    drift_rows = pd.concat([logged[f"drifted-{r['batch']}"] for r in drifted])
    sizes = [int(s) for s in args.sizes.split(",")]
    timing = time_checks(bundle, base, drift_rows, sizes, args.repeats)

    fed = pd.concat([logged[f"drifted-{r['batch']}"] for r in drifted[: args.feedback_batches]])
    for pid, label in zip(fed["prediction_id"], fed["label"], strict=True):
        plat.production_log.add_feedback(
            RECIPE, true_label=label, prediction_id=int(pid), source="benchmark"
        )
    emit(f"{len(fed)} feedback rows from {args.feedback_batches} drifted batches")
    retrain_set = build_dataset(plat, loaded, emit=emit, include_feedback=True)
    incremental, incremental_s = timed_training(plat, loaded, retrain_set, "incremental")
    full, full_s = timed_training(plat, loaded, retrain_set, "full")

    unseen = test[~test["text"].isin(set(fed["text"]))]
    evals = {
        "original": unseen[~unseen["label"].isin(held_out)],
        "held_out": unseen[unseen["label"].isin(held_out)],
    }
    acc = {
        name: {part: accuracy(plat, v, rows, max_length) for part, rows in evals.items()}
        for name, v in (("champion", champion), ("incremental", incremental), ("full", full))
    }
    for name, parts in acc.items():
        emit(
            f"{name}: accuracy {parts['original']:.4f} on original intents, "
            f"{parts['held_out']:.4f} on held-out intents"
        )

    share = incremental_s / full_s
    drop = 100 * (acc["champion"]["original"] - acc["incremental"]["original"])
    worst_ratio = max(t["ratio"] for t in timing)
    targets = {
        "false_alarms": {
            "value": sum(r["drifted"] for r in clean),
            "target": "0",
            "met": not any(r["drifted"] for r in clean),
        },
        "detection_delay_batches": {
            "value": delay,
            "target": "0 (first drifted batch)",
            "met": delay == 0,
        },
        "check_time_ratio": {
            "value": worst_ratio,
            "target": "<= 1.2 at every size",
            "met": worst_ratio <= TARGETS["check_time_ratio"],
        },
        "incremental_time_share": {
            "value": share,
            "target": "<= 0.35",
            "met": share <= TARGETS["incremental_time_share"],
        },
        "original_accuracy_drop_points": {
            "value": drop,
            "target": "<= 1.0 (incremental vs the champion)",
            "met": drop <= TARGETS["original_accuracy_drop_points"],
        },
    }
    summary = {
        **head,
        "alarms": alarms,
        "benchmark": "drift_banking77",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": ".venv/bin/python " + shlex.join(sys.argv),
        "held_out_intents": held_out,
        "rows": {
            "train_known": len(known_train),
            "champion_dataset": dataset.stats,
            "retraining_dataset": retrain_set.stats,
            "eval_original": len(evals["original"]),
            "eval_held_out": len(evals["held_out"]),
            "feedback": len(fed),
        },
        "stream": {
            "source": "Predictor + ProductionLog, window read back by batch_id",
            "false_alarms": targets["false_alarms"]["value"],
            "clean_batches": len(clean),
            "drifted_batches": len(drifted),
            "drifted_detected": len(detected),
            "detection_delay_batches": delay,
            "thresholds": bundle.calibration.thresholds,
            "mean_check_window_seconds": statistics.mean(r["check_seconds"] for r in results),
            "batches": results,
        },
        "check_time": timing,
        "retraining": {
            "champion": {
                "id": champion.id,
                "wall_seconds": champion_s,
                "train_seconds": champion.metrics["train_seconds"],
                "train_rows": champion.metrics["train_rows"],
            },
            "incremental": {
                "id": incremental.id,
                "wall_seconds": incremental_s,
                "train_seconds": incremental.metrics["train_seconds"],
                "train_rows": incremental.metrics["train_rows"],
                "lineage_mode": incremental.lineage["mode"],
            },
            "full": {
                "id": full.id,
                "wall_seconds": full_s,
                "train_seconds": full.metrics["train_seconds"],
                "train_rows": full.metrics["train_rows"],
            },
            "incremental_over_full_wall": share,
            "incremental_over_full_train": incremental.metrics["train_seconds"]
            / full.metrics["train_seconds"],
            "accuracy": acc,
        },
        "targets": targets,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": {
            "cpus": os.cpu_count(),
            "cpu": platform.processor() or platform.machine(),
            "loadavg_start": load_start,
            "loadavg_end": os.getloadavg(),
        },
        "libraries": {
            n: importlib.metadata.version(n)
            for n in ("torch", "transformers", "peft", "evidently", "scikit-learn")
        },
        "workspace": str(work),
        "total_seconds": time.perf_counter() - STARTED,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
