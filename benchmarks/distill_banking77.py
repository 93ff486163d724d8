"""Banking77 distillation: a MiniLM student on a teacher's soft labels, beside the same
MiniLM recipe trained on its own data, on CPU.

Legs, all called at the ml level (``modelops.ml.training.train_classifier``, no registry):

1. ``teacher``: trained once (or reused from ``--work`` when the same data and settings
   were trained before) with ``--teacher-variant`` for ``--teacher-epochs``; the issue's
   teacher is the mpnet recipe (``make mpnet``; ``--teacher-base mpnet@stable``), the
   default here is a larger MiniLM LoRA that fits these CPUs;
2. its log-probabilities over the labelled training texts and ``--production`` unlabelled
   texts (rows of train.csv outside the labelled sample, their labels dropped: they stand
   for the production log; never test.csv), and ``--augment`` perturbed copies of each
   labelled text (words dropped and swapped, EDA-style; none equal to a validation or test
   text), computed once (``modelops.ml.distill``);
3. per seed, ``minilm_adapter``: the student recipe (``--student-variant``) on the
   labelled rows alone (today's MiniLM adapter), and ``student``: the same recipe on the
   soft labels (``--temperature``, ``--alpha``) over the labelled and production texts.

Each leg is scored on test.csv (``--test-limit``: a sample); the student and the MiniLM
adapter are timed in the same process in interleaved rounds
(``modelops.lifecycle.inference_cost.measure_inference``), so their cost ratio is like for
like. The last line of stdout is one JSON object with ``platform_accuracy_mean`` and
``student_accuracy_mean`` (the student), ``probe_accuracy_mean`` and ``margin_ci_low``
(the student over the linear probe inside its training), ``teacher_accuracy``,
``student_minus_minilm_adapter_ci_low`` (paired bootstrap over the test rows, the seeds
averaged) and ``inference_cost_ratio_student_over_minilm``.

    .venv/bin/python benchmarks/distill_banking77.py --seeds 13,14,15
    .venv/bin/python benchmarks/distill_banking77.py --labelled 2000 --production 2000 \\
        --test-limit 1000 --epochs 1 --seeds 13
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from modelops.config.fingerprint import sha256_json
from modelops.config.recipe import (
    AdapterSettings,
    DataSettings,
    DataSource,
    Recipe,
    TrainingSettings,
)
from modelops.domain.bootstrap import paired_bootstrap
from modelops.domain.dataset import PreparedDataset, encode_labels, fingerprint
from modelops.lifecycle.fetch import LoadedAdapter
from modelops.lifecycle.inference_cost import measure_inference
from modelops.ml.distill import SoftTargets, teacher_log_probs
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
    machine,
    resolve_base,
    scores,
    versions,
)

ALL_LINEAR = ("query", "key", "value", "dense")
TEACHER_VARIANTS = {
    **VARIANTS,
    "t_all_r32_cos_ls": (
        AdapterSettings(r=32, alpha=64, dropout=0.1, target_modules=ALL_LINEAR),
        dict(learning_rate=1e-3, warmup_ratio=0.1, schedule="cosine", label_smoothing=0.1),
    ),
}
STARTED = time.perf_counter()
TARGET_STUDENT = 0.945
MAX_COST_RATIO = 1.1


def recipe_for(data: Path, variant: str, epochs: int, seed: int, base: str) -> Recipe:
    adapter, training = TEACHER_VARIANTS[variant]
    return Recipe(
        name="banking77_distill",
        taxonomy="(benchmark: categories.json)",
        base_model=base,
        data=DataSettings(
            sources=(DataSource(path=str(data / "train.csv")),),
            label_column="category",
            validation_fraction=VALIDATION_FRACTION,
        ),
        adapter=adapter,
        head=HEAD,
        training=TrainingSettings(**{**TRAINING, **training, "seed": seed}, epochs=epochs),
    )


def split_data(full: PreparedDataset, args) -> tuple[PreparedDataset, list[str]]:
    """The labelled sample (the first ``--labelled`` train rows in hash order, the first
    ``--validation`` validation rows, the test rows) and the unlabelled production texts
    (the next ``--production`` train rows, labels dropped)."""
    frame = full.frame
    train = frame[frame["split"] == "train"]
    keep = [
        train.iloc[: args.labelled],
        frame[frame["split"] == "validation"].iloc[: args.validation],
        frame[frame["split"] == "test"],
    ]
    production = train.iloc[args.labelled : args.labelled + args.production]["text"].tolist()
    sample = pd.concat(keep).sort_values("text_sha256", kind="stable").reset_index(drop=True)
    labels = full.labels
    stats = {f"{s}_rows": int((sample["split"] == s).sum()) for s in ("train", "validation")}
    stats.update(test_rows=int((sample["split"] == "test").sum()), production_rows=len(production))
    return PreparedDataset(sample, labels, fingerprint(sample, labels), stats), production


def perturbed(texts: list[str], copies: int, exclude: set[str], seed: int = 0) -> list[str]:
    """``copies`` variants of each text for the teacher to label (EDA, Wei & Zou 2019,
    without the thesaurus): every word dropped with probability 0.1 (one always kept),
    then two words swapped. A variant equal to a text of ``texts``, of ``exclude`` (the
    validation and test texts) or to an earlier variant is left out."""
    rng = np.random.default_rng(seed)
    seen = set(texts) | exclude
    out = []
    for _ in range(copies):
        for text in texts:
            words = text.split()
            if not words:
                continue
            keep = rng.random(len(words)) >= 0.1
            keep[rng.integers(len(words))] = True
            words = [w for w, k in zip(words, keep, strict=True) if k]
            if len(words) > 1:
                i, j = rng.choice(len(words), 2, replace=False)
                words[i], words[j] = words[j], words[i]
            variant = " ".join(words)
            if variant not in seen:
                seen.add(variant)
                out.append(variant)
    return out


def teacher_dir(work: Path, recipe: Recipe, dataset: PreparedDataset) -> Path:
    settings = recipe.model_dump(mode="json", include={"base_model", "adapter", "training"})
    return work / f"teacher-{sha256_json([settings, dataset.fingerprint])[:16]}"


def trained_teacher(recipe: Recipe, base, dataset: PreparedDataset, work: Path, threads: int):
    """The teacher's adapter directory: reused when this data and these settings were
    trained before in ``work`` (its ``history.json`` is the mark of a finished run)."""
    out = teacher_dir(work, recipe, dataset)
    if (out / "history.json").is_file():
        emit(f"teacher: reusing {out}")
        return out, None
    emit(f"teacher: training {recipe.adapter.r=} for {recipe.training.epochs} epochs")
    result = train_classifier(
        recipe=recipe,
        base=base,
        dataset=dataset,
        out_dir=out,
        threads=threads,
        emit=lambda m: emit(f"teacher: {m}"),
    )
    return out, result.seconds


def score(directory: Path, base, dataset: PreparedDataset, max_length: int):
    """Load an adapter and score the test split: (accuracy report, correct per row, loaded)."""
    tokenizer, model, labels = load_classifier(directory, base.path)
    test = dataset.split("test")
    y = encode_labels(test, labels)
    proba = predict_proba(tokenizer, model, test["text"].tolist(), max_length=max_length)
    loaded = LoadedAdapter(tokenizer, model, labels)
    return scores(y, proba, labels), (proba.argmax(1) == y), loaded


def soft_labels(teacher_path: Path, base, dataset, production, max_length, args) -> torch.Tensor:
    tokenizer, model, _ = load_classifier(teacher_path, base.path)
    texts = dataset.split("train")["text"].tolist() + production
    started = time.perf_counter()
    log_probs = teacher_log_probs(
        tokenizer, model, texts, max_length=max_length, batch_size=128, emit=emit
    )
    emit(f"soft labels of {len(texts)} texts in {time.perf_counter() - started:.1f}s")
    return torch.from_numpy(log_probs)


def run_seed(seed: int, args, base, dataset, production, log_probs, work: Path) -> dict:
    """The MiniLM adapter and the student of one seed, scored and timed side by side."""
    recipe = recipe_for(args.data, args.student_variant, args.epochs, seed, args.student_base)
    out: dict = {"seed": seed}
    loaded = {}
    for leg in ("minilm_adapter", "student"):
        soft = None
        if leg == "student":
            soft = SoftTargets(log_probs, tuple(production), args.temperature, args.alpha)
        result = train_classifier(
            recipe=recipe,
            base=base,
            dataset=dataset,
            out_dir=work / f"{leg}-{seed}",
            threads=args.threads,
            emit=lambda m, leg=leg: emit(f"{leg} {seed}: {m}"),
            soft=soft,
        )
        report, correct, loaded[leg] = score(result.directory, base, dataset, 64)
        probe = result.baseline["test"]
        y = encode_labels(dataset.split("test"), dataset.labels)
        out[leg] = {
            **report,
            "correct": correct.tolist(),
            "probe_accuracy": probe["accuracy"],
            "probe_correct": (np.asarray(probe["predictions"]) == y).tolist(),
            "train_seconds": result.seconds,
            "selected_epoch": result.selected_epoch,
            "weights_sha256": result.weights_sha256,
        }
        emit(f"{leg} {seed}: test accuracy {report['accuracy']:.4f}, probe {probe['accuracy']:.4f}")
    texts = dataset.split("test")["text"].tolist()
    cost = measure_inference(loaded, texts, 64)
    for leg in loaded:
        out[leg]["inference_seconds_per_32"] = cost[leg].seconds
        out[leg]["inference_memory_bytes"] = cost[leg].memory_bytes
    out["cost_ratio_rounds"] = [
        s / m
        for s, m in zip(
            cost["student"].seconds_per_32, cost["minilm_adapter"].seconds_per_32, strict=True
        )
    ]
    return out


def summarize(runs: list[dict], teacher: dict) -> dict:
    student = np.array([r["student"]["accuracy"] for r in runs])
    own = np.array([r["minilm_adapter"]["accuracy"] for r in runs])
    probe = np.array([r["student"]["probe_accuracy"] for r in runs])
    s_correct = np.mean([r["student"]["correct"] for r in runs], axis=0)
    o_correct = np.mean([r["minilm_adapter"]["correct"] for r in runs], axis=0)
    p_correct = np.mean([r["student"]["probe_correct"] for r in runs], axis=0)
    versus_own = paired_bootstrap(s_correct, o_correct, seed=0)
    versus_probe = paired_bootstrap(s_correct, p_correct, seed=0)
    ratios = [x for r in runs for x in r["cost_ratio_rounds"]]
    return {
        "seeds": [r["seed"] for r in runs],
        "student_accuracy": student.tolist(),
        "minilm_adapter_accuracy": own.tolist(),
        "platform_accuracy_mean": float(student.mean()),
        "student_accuracy_mean": float(student.mean()),
        "minilm_adapter_accuracy_mean": float(own.mean()),
        "probe_accuracy_mean": float(probe.mean()),
        "margin_ci_low": versus_probe.low,
        "teacher_accuracy": teacher["accuracy"],
        "student_minus_minilm_adapter": versus_own.observed,
        "student_minus_minilm_adapter_ci_low": versus_own.low,
        "student_minus_minilm_adapter_ci_high": versus_own.high,
        "inference_cost_ratio_student_over_minilm": float(np.median(ratios)),
        "inference_cost_ratio_student_over_minilm_p5": float(np.quantile(ratios, 0.05)),
        "inference_cost_ratio_student_over_minilm_p95": float(np.quantile(ratios, 0.95)),
    }


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Banking77 folder")
    parser.add_argument("--seeds", default="13,14,15", help="student seeds, comma-separated")
    parser.add_argument("--labelled", type=int, default=100_000, help="labelled train rows")
    parser.add_argument("--production", type=int, default=0, help="unlabelled texts")
    parser.add_argument(
        "--augment", type=int, default=0, help="perturbed copies of each labelled text"
    )
    parser.add_argument("--validation", type=int, default=100_000, help="validation rows")
    parser.add_argument("--test-limit", type=int, default=None, help="sample of test.csv")
    parser.add_argument("--epochs", type=int, default=2, help="student epochs")
    parser.add_argument("--student-variant", default=DEFAULT_VARIANT, choices=sorted(VARIANTS))
    parser.add_argument("--student-base", default="minilm@stable")
    parser.add_argument("--teacher-variant", default="t_all_r32_cos_ls", choices=TEACHER_VARIANTS)
    parser.add_argument("--teacher-base", default="minilm@stable")
    parser.add_argument("--teacher-epochs", type=int, default=3)
    parser.add_argument("--temperature", type=float, default=2.0)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument(
        "--work", type=Path, default=Path("/tmp/modelops-distill-banking77"), help="teacher cache"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    args.data = args.data.resolve()
    torch.set_num_threads(args.threads)
    labels = json.loads((args.data / "categories.json").read_text(encoding="utf-8"))
    full = load_banking77(
        args.data, labels, None, 13, VALIDATION_FRACTION, test_limit=args.test_limit
    )
    dataset, production = split_data(full, args)
    if args.augment:
        frame = dataset.frame
        held = set(frame.loc[frame["split"] != "train", "text"])
        train_texts = dataset.split("train")["text"].tolist()
        production += perturbed(train_texts, args.augment, held)
        dataset.stats["production_rows"] = len(production)
    emit(f"data: {dataset.stats}, fingerprint {dataset.fingerprint[:12]}")
    teacher_recipe = recipe_for(
        args.data, args.teacher_variant, args.teacher_epochs, 13, args.teacher_base
    )
    teacher_base = resolve_base(args.teacher_base)
    base = resolve_base(args.student_base)
    args.work.mkdir(parents=True, exist_ok=True)
    path, teacher_seconds = trained_teacher(
        teacher_recipe, teacher_base, dataset, args.work, args.threads
    )
    teacher, _, _ = score(path, teacher_base, dataset, 64)
    teacher["train_seconds"] = teacher_seconds
    emit(f"teacher: test accuracy {teacher['accuracy']:.4f}")
    log_probs = soft_labels(path, teacher_base, dataset, production, 64, args)
    runs = []
    for seed in (int(s) for s in args.seeds.split(",") if s):
        runs.append(run_seed(seed, args, base, dataset, production, log_probs, args.work))
        print(json.dumps({"partial": True, **summarize(runs, teacher)}), flush=True)
    summary = summarize(runs, teacher)
    for run in runs:
        for leg in ("student", "minilm_adapter"):
            run[leg].pop("correct")
            run[leg].pop("probe_correct")
    report = {
        "benchmark": "distill_banking77",
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "threads": args.threads,
        "data": dataset.stats,
        "teacher": {**teacher, "variant": args.teacher_variant, "base": args.teacher_base},
        "student_settings": {
            "variant": args.student_variant,
            "epochs": args.epochs,
            "temperature": args.temperature,
            "alpha": args.alpha,
            "augment": args.augment,
        },
        "versions": versions(),
        "runs": runs,
        **summary,
        "targets": {
            "student_accuracy_mean_at_least_0.945": summary["student_accuracy_mean"]
            >= TARGET_STUDENT,
            "inference_cost_within_1.1x": summary["inference_cost_ratio_student_over_minilm"]
            <= MAX_COST_RATIO,
        },
        "wall_seconds": time.perf_counter() - STARTED,
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
