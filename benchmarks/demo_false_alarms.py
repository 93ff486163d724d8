"""False alarms of the drift verdict on clean demo windows, by calibration size.

The demo generator's texts (``modelops.demo.generator``, or another copy of it with
``--generator PATH``, e.g. an older one taken from git) with a simulated model, as in
``modelops_tests/monitoring/test_drift.py``: it predicts the true intent 85 % of the time,
its confidence follows Beta(8, 2), its "embeddings" are an intent centroid plus noise. A
reference of ``--reference`` rows, a holdout of ``--holdout`` rows, ``--n-bootstrap`` null
windows at ``--rate``, then ``--windows`` fresh clean windows of ``--window`` rows: how many
fire, and which signals. No model, no data set: seconds to minutes on CPU.

    .venv/bin/python benchmarks/demo_false_alarms.py --holdout 600 --n-bootstrap 20
    git show 3094031:modelops/demo/generator.py > /tmp/old_generator.py
    .venv/bin/python benchmarks/demo_false_alarms.py --generator /tmp/old_generator.py
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from modelops.demo.intents import BASE_INTENTS, EXTRA_INTENTS
from modelops.monitoring.calibration import calibrate
from modelops.monitoring.evidently_scores import signal_scores
from modelops.monitoring.signals import Window, fit_projection, fit_vocabulary
from modelops.monitoring.verdict import verdict

INTENTS = (*BASE_INTENTS, *EXTRA_INTENTS)
CENTROIDS = np.random.default_rng(123).normal(size=(len(INTENTS), 16))


def load_generator(path: Path | None):
    if path is None:
        from modelops.demo import generator

        return generator
    spec = importlib.util.spec_from_file_location("demo_generator_copy", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def window(gen, n: int, seed: int) -> Window:
    frame = gen.generate(gen.DemoKnobs(n=n, seed=seed))
    rng = np.random.default_rng(seed)
    labels = list(frame["label"])
    wrong = rng.random(len(labels)) < 0.15
    predicted = [
        str(rng.choice(BASE_INTENTS)) if w else y for w, y in zip(wrong, labels, strict=True)
    ]
    embeddings = CENTROIDS[[INTENTS.index(y) for y in labels]]
    embeddings = embeddings + rng.normal(size=embeddings.shape)
    return Window(
        texts=list(frame["text"]),
        predicted=predicted,
        confidence=rng.beta(8.0, 2.0, size=len(labels)),
        embeddings=embeddings,
        labels=labels,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", type=Path, default=None)
    parser.add_argument("--reference", type=int, default=1000)
    parser.add_argument("--holdout", type=int, default=600)
    parser.add_argument("--n-bootstrap", type=int, default=20)
    parser.add_argument("--rate", type=float, default=0.01)
    parser.add_argument("--window", type=int, default=200)
    parser.add_argument("--windows", type=int, default=30)
    args = parser.parse_args()
    gen = load_generator(args.generator)
    started = time.perf_counter()
    # Seeds as in test_drift.py: reference 1, holdout 2, vocabulary 0, clean windows 100+.
    reference, holdout = window(gen, args.reference, 1), window(gen, args.holdout, 2)
    vocabulary = fit_vocabulary(list(gen.generate(gen.DemoKnobs(n=1000, seed=0))["text"]))
    pca = fit_projection(reference.embeddings, k=5)
    calibration = calibrate(
        reference,
        holdout,
        window_size=args.window,
        n_bootstrap=args.n_bootstrap,
        false_alarm_rate=args.rate,
        vocabulary=vocabulary,
        pca=pca,
    )
    fired: Counter[str] = Counter()
    alarms = 0
    for i in range(args.windows):
        scores = signal_scores(
            reference, window(gen, args.window, 100 + i), vocabulary=vocabulary, pca=pca
        )
        result = verdict(scores, calibration)
        alarms += result.drifted
        fired.update(result.fired)
    print(
        json.dumps(
            {
                "generator": str(args.generator or "modelops.demo.generator"),
                "reference_rows": args.reference,
                "holdout_rows": args.holdout,
                "n_bootstrap": args.n_bootstrap,
                "rate": args.rate,
                "window": args.window,
                "guarantee_reachable": calibration.guarantee.get("reachable"),
                "rate_bound": calibration.guarantee.get("rate_bound"),
                "clean_windows": args.windows,
                "false_alarms": alarms,
                "fired": dict(fired),
                "mean_length": {
                    "reference": float(np.mean([len(t) for t in reference.texts])),
                    "holdout": float(np.mean([len(t) for t in holdout.texts])),
                },
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
