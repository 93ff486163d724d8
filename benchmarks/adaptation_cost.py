"""What issue 25's adaptation options cost to train, per step, against the LoRA recipe, in
one process: LoRA (r 16 on query, key, value and dense, the default variant of
``train_banking77.py``), a full fine-tune with layer-wise decay (``full-llrd``) and one step
of the contrastive stage (32 pairs on the LoRA model, ``modelops.ml.contrastive``).

Every round takes one optimizer step of each, on the same 32 Banking77 training texts (the
contrastive step on 32 pairs drawn from the labels of the rows), in alternating order,
timed around the step only, so the three meet the same load; the ratios are per round, then
their median and 5th-95th percentiles. Shared, loaded CPUs slow every step, the ratios much
less. ``stage_over_lora_epoch`` is what a contrastive stage of ``--pairs-per-row`` pairs per
row costs in LoRA training epochs (pair steps per row / LoRA steps per row x their cost
ratio). The last stdout line is one JSON object.

    nice -n 5 .venv/bin/python benchmarks/adaptation_cost.py --rounds 12 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from modelops.config.recipe import AdapterSettings, ContrastiveSettings, TrainingSettings
from modelops.ml.adapter_methods import with_adapter
from modelops.ml.contrastive import ContrastiveJob, pair_step, sample_pairs
from modelops.ml.model import PooledClassifier, collate, load_base, tokenize
from modelops.ml.schedule import optimizer_and_schedule

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_banking77 import resolve_base  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "banking77"
ALL_LINEAR = ("query", "key", "value", "dense")
BATCH = 32
SETUPS = {
    "lora": (AdapterSettings(r=16, alpha=32, target_modules=ALL_LINEAR), {"learning_rate": 1e-3}),
    "full-llrd": (AdapterSettings(method="full"), {"learning_rate": 1e-4, "layer_decay": 0.9}),
}


def emit(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def build(base_path: Path, labels: int, adapter: AdapterSettings, training: dict):
    """A model of ``adapter``'s method on a fresh copy of the base, its optimizer and schedule."""
    torch.manual_seed(0)
    tokenizer, encoder = load_base(base_path)
    model = with_adapter(PooledClassifier(encoder, labels, "mean"), adapter).train()
    settings = TrainingSettings(**training, batch_size=BATCH)
    optimizer, scheduler = optimizer_and_schedule(model, settings, total_steps=10_000)
    return tokenizer, model, optimizer, scheduler, settings


def class_step(model, optimizer, scheduler, ids, mask, y) -> None:
    loss = torch.nn.functional.cross_entropy(model(ids, mask), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    scheduler.step()


def spread(values: list[float]) -> dict:
    return {
        "median": float(np.median(values)),
        "p05": float(np.percentile(values, 5)),
        "p95": float(np.percentile(values, 95)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--base", default="minilm")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--pairs-per-row", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base = resolve_base(f"{args.base}@stable")
    frame = pd.read_csv(args.data / "train.csv")
    names = sorted(frame["category"].unique())
    y_all = frame["category"].map({n: i for i, n in enumerate(names)}).to_numpy()
    built = {k: build(base.path, len(names), *v) for k, v in SETUPS.items()}
    tokenizer = built["lora"][0]
    rng = np.random.default_rng(0)
    rows = rng.choice(len(frame), size=(args.rounds + 1) * BATCH * 4, replace=False)
    ids_all = tokenize(tokenizer, frame["text"].iloc[rows].tolist(), 64)
    pairs_all = sample_pairs(y_all[rows], 2, 0.5, rng)
    lora_model, lora_opt, lora_sched = built["lora"][1:4]
    job = ContrastiveJob(
        lora_model,
        ids_all,
        y_all[rows],
        tokenizer.pad_token_id,
        built["lora"][4].model_copy(update={"contrastive": ContrastiveSettings()}),
    )
    seconds: dict[str, list[float]] = {"lora": [], "full-llrd": [], "contrastive": []}
    for r in range(args.rounds + 1):  # round 0 warms up, untimed
        batch = list(range(r * BATCH, (r + 1) * BATCH))
        ids, mask = collate([ids_all[i] for i in batch], tokenizer.pad_token_id)
        y = torch.from_numpy(y_all[rows][batch])
        pairs = pairs_all[rng.choice(len(pairs_all), size=BATCH, replace=False)]
        steps = {
            "lora": (class_step, (lora_model, lora_opt, lora_sched, ids, mask, y)),
            "full-llrd": (class_step, (*built["full-llrd"][1:4], ids, mask, y)),
            "contrastive": (pair_step, (job, pairs, 0.0, lora_opt, lora_sched)),
        }
        order = list(steps) if r % 2 == 0 else list(reversed(steps))
        for name in order:
            step, step_args = steps[name]
            started = time.perf_counter()
            step(*step_args)
            if r:
                seconds[name].append(time.perf_counter() - started)
        if r:
            last = ", ".join(f"{k} {v[-1]:.2f}s" for k, v in seconds.items())
            emit(f"round {r}/{args.rounds}: {last}")
    lora = np.array(seconds["lora"])
    ratios = {k: spread(list(np.array(v) / lora)) for k, v in seconds.items() if k != "lora"}
    pair_ratio = ratios["contrastive"]["median"]
    report = {
        "benchmark": "adaptation_cost",
        "base": base.entry.ref,
        "threads": args.threads,
        "rounds": args.rounds,
        "load_average_end": os.getloadavg(),
        "seconds_per_step": {k: spread(v) for k, v in seconds.items()},
        "rows_per_second": {
            k: BATCH / float(np.median(v)) for k, v in seconds.items() if k != "contrastive"
        },
        "pairs_per_second": BATCH / float(np.median(seconds["contrastive"])),
        "step_cost_over_lora": ratios,
        "stage_over_lora_epoch": args.pairs_per_row * pair_ratio,
        "pairs_per_row": args.pairs_per_row,
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
