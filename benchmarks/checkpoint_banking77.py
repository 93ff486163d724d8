"""Training checkpoints on Banking77 with MiniLM: what they cost, and that an interrupted
run resumed from one ends with the same weights.

Three trainings of the same recipe on the same sample, in this process:

1. ``plain``: no checkpoints (the baseline);
2. ``checkpointed``: a checkpoint every ``--every`` optimizer steps and at each epoch's end;
3. ``resumed``: the same, interrupted right after the checkpoint at step ``--every * 2`` of
   epoch 1 (an exception, standing in for a kill), then trained again, resuming.

Prints the wall-time ratio checkpointed/plain and whether the weights sha256 of runs 2 and 3
equal the plain run's. The last line of stdout is one JSON object.

    .venv/bin/python benchmarks/checkpoint_banking77.py [--limit 1000] [--every 10] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

from modelops.config.recipe import DataSettings, DataSource, Recipe, TrainingSettings
from modelops.ml.checkpoint import Checkpointer
from modelops.ml.training import train_classifier
from train_banking77 import (
    DEFAULT_DATA,
    HEAD,
    TRAINING,
    VALIDATION_FRACTION,
    VARIANTS,
    emit,
    load_banking77,
    resolve_base,
)


class Interrupted(Exception):
    pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=1000, help="train and test rows sampled")
    parser.add_argument("--every", type=int, default=10, help="checkpoint every N steps")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    labels = json.loads((args.data / "categories.json").read_text(encoding="utf-8"))
    dataset = load_banking77(args.data, labels, args.limit, TRAINING["seed"], VALIDATION_FRACTION)
    recipe = Recipe(
        name="checkpoint_benchmark",
        taxonomy="(benchmark)",
        base_model="minilm@stable",
        data=DataSettings(
            sources=(DataSource(path=str(args.data / "train.csv")),),
            label_column="category",
            validation_fraction=VALIDATION_FRACTION,
        ),
        adapter=VARIANTS["v0_qv_r8"][0],  # r 8 on query/value: the ADAPTER it imported once
        head=HEAD,
        training=TrainingSettings(**TRAINING, epochs=args.epochs),
    )
    base = resolve_base(recipe.base_model)
    stop_at = f"checkpoint saved: epoch 1 step {args.every * 2}/"

    def train(name: str, work: Path, checkpointer=None, interrupt=False):
        def say(message: str) -> None:
            emit(f"{name}: {message}")
            if interrupt and message.startswith(stop_at):
                raise Interrupted(message)

        started = time.perf_counter()
        result = train_classifier(
            recipe=recipe,
            base=base,
            dataset=dataset,
            out_dir=work / name,
            threads=args.threads,
            emit=say,
            checkpointer=checkpointer,
        )
        return result, time.perf_counter() - started

    with tempfile.TemporaryDirectory(prefix="checkpoint-bench-") as tmp:
        work = Path(tmp)
        plain, plain_s = train("plain", work)
        checkpointed, ckpt_s = train(
            "checkpointed", work, Checkpointer(work / "ckpt-a", every_steps=args.every)
        )
        resumable = Checkpointer(work / "ckpt-b", every_steps=args.every)
        try:
            train("interrupted", work, resumable, interrupt=True)
            raise SystemExit(f"the run ended before {stop_at!r}: use a larger --limit")
        except Interrupted:
            pass
        resumed, resumed_s = train("resumed", work, resumable)
    report = {
        "benchmark": "checkpoint_banking77",
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "threads": args.threads,
        "every_steps": args.every,
        "data": dataset.stats,
        "seconds": {"plain": plain_s, "checkpointed": ckpt_s, "resumed_part": resumed_s},
        "wall_time_checkpointed_over_plain": ckpt_s / plain_s,
        "checkpointed_identical": checkpointed.weights_sha256 == plain.weights_sha256,
        "resumed_identical": resumed.weights_sha256 == plain.weights_sha256,
        "weights_sha256": plain.weights_sha256,
    }
    emit(
        f"checkpointed/plain wall time {report['wall_time_checkpointed_over_plain']:.3f}; "
        f"identical: checkpointed {report['checkpointed_identical']}, "
        f"resumed {report['resumed_identical']}"
    )
    print(json.dumps(report))
    return 0 if report["checkpointed_identical"] and report["resumed_identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
