"""The inference meter of the ``gain_worth_cost`` gate on real bases: does timing noise make
a same-sized model *costlier*, and is a larger base seen as costlier?

Each pair is two LoRA adapters (the demo recipe's shape: r 16 on query, key, value and dense,
untrained: LoRA's values do not change its cost) with a 77-label head, loaded in this
process. ``modelops.lifecycle.inference_cost.measure_inference`` times both on the same
Banking77 test texts (16 interleaved rounds of 32, ``max_length`` 64), ``--reps`` times per
pair; each measurement gives the median cost ratio, its 95 % lower bound
(``modelops.domain.cost_gate.cost_ratio``) and whether the gate would count the first model
as costlier at ``same_cost_ratio`` 1.10. Pairs: ``minilm`` against another ``minilm``
adapter (same structure: should never be costlier), and ``mpnet`` against ``minilm`` when
``mpnet@stable`` resolves (``make mpnet``). The last stdout line is one JSON object.

    nice -n 5 .venv/bin/python benchmarks/cost_gate_noise.py --reps 8 --threads 1
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import torch

from modelops.config.gates import CostPolicy
from modelops.domain.cost_gate import cost_ratio
from modelops.lifecycle.fetch import LoadedAdapter
from modelops.lifecycle.inference_cost import measure_inference
from modelops.ml.catalog import Catalog

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "banking77"


def adapter_on(path: Path, seed: int, labels: int = 77) -> LoadedAdapter:
    """An untrained LoRA adapter of the demo recipe's shape on the base at ``path``."""
    from peft import LoraConfig, get_peft_model

    from modelops.ml.architectures import lora_target_modules
    from modelops.ml.model import PooledClassifier, load_base

    torch.manual_seed(seed)
    tokenizer, encoder = load_base(path)
    model = PooledClassifier(encoder, labels, "mean")
    targets = lora_target_modules(encoder, ["query", "key", "value", "dense"])
    model.encoder = get_peft_model(
        model.encoder, LoraConfig(r=16, lora_alpha=32, target_modules=targets)
    )
    model.eval()
    return LoadedAdapter(tokenizer, model, [f"l{i}" for i in range(labels)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--reps", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path.home() / ".cache" / "modelops-bench",
        help="where a base assembled from parts (mpnet) is unpacked",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with open(args.data / "test.csv", encoding="utf-8") as handle:
        texts = [row["text"] for row in csv.DictReader(handle)]
    catalog = Catalog.load(REPO / "catalog" / "base_models.yaml")
    minilm = catalog.resolve("minilm@stable", cache_dir=args.cache).path
    pairs = {"minilm_vs_minilm": (adapter_on(minilm, 0), adapter_on(minilm, 1))}
    try:
        mpnet = catalog.resolve("mpnet@stable", cache_dir=args.cache).path
        pairs["mpnet_vs_minilm"] = (adapter_on(mpnet, 0), pairs["minilm_vs_minilm"][1])
    except Exception as exc:  # not installed here: say so
        print(f"mpnet@stable not measured: {type(exc).__name__}: {exc}", file=sys.stderr)
    policy, out = CostPolicy(), {"threads": args.threads, "reps": args.reps, "pairs": {}}
    for name, (first, second) in pairs.items():
        runs, started = [], time.perf_counter()
        for _ in range(args.reps):
            measured = measure_inference({"a": first, "b": second}, texts, 64)
            ratio = cost_ratio(measured["a"], measured["b"], policy.confidence)
            runs.append(
                {
                    "ratio": round(ratio.ratio, 4),
                    "lower_bound": round(ratio.lower_bound, 4),
                    "memory_ratio": round(ratio.memory, 4) if ratio.memory else None,
                    "costlier": ratio.lower_bound > policy.same_cost_ratio,
                    "a_seconds_per_32": round(measured["a"].seconds, 4),
                    "b_seconds_per_32": round(measured["b"].seconds, 4),
                }
            )
            print(f"{name}: {runs[-1]}", file=sys.stderr, flush=True)
        out["pairs"][name] = {
            "runs": runs,
            "ratio_min": min(r["ratio"] for r in runs),
            "ratio_max": max(r["ratio"] for r in runs),
            "lower_bound_max": max(r["lower_bound"] for r in runs),
            "costlier_runs": sum(r["costlier"] for r in runs),
            "wall_seconds": round(time.perf_counter() - started, 1),
        }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
