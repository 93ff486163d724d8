"""How far apart are ``drift_banking77.py``'s held-out intents from the known ones, for a
model that *was* trained on them? A ceiling for issue 24's out-of-scope AUROC.

The drift benchmark's champion never sees its 10 held-out intents (seed 13), and its
out-of-scope score must tell their test.csv rows from the known intents' rows. Here a
champion is trained the same way (``drift_banking77.py --held-out 0 --train-only``: the
same recipe and platform path) on all 77 intents, the held-out ones labelled, and scores
test.csv. Its probability mass on the 10 intents is a supervised detector, one that knows
exactly what to look for: its AUROC (the same positives and negatives as the drift
benchmark's) bounds from above what a score trained without them can be expected to reach,
and the share of held-out rows it files under a known intent counts the rows that look
like known ones even to a model taught the difference.

``--champions HOME ...`` (workspaces of ``drift_banking77.py`` champions, their test.csv
features cached by an ``--evidence`` run) adds, per score (each champion's stored
out-of-scope model, and the ceiling's), how often the drift check's novelty test
(``modelops.monitoring.betting.p_value_update`` on the conformal p-values of
``novelty_ranks``, at its alpha of 0.004) crosses within 600 rows of streams
with 0, 2, 5 and 10 % held-out-intent rows: ``--streams`` seeded streams per share, each with
half of the in-scope test.csv rows (drawn anew) as calibration and the rest as traffic. It
separates what the test can do from what the score gives it.

    .venv/bin/python benchmarks/oos_ceiling.py --data ../shared/data/banking77 --home DIR \\
        [--base minilm|mpnet] [--variant v2_all_r16_cos_ls] [--epochs 2] [--threads 2] \\
        [--champions HOME ...] [--streams 300]

The last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score, roc_curve

sys.path.insert(0, str(Path(__file__).resolve().parent))
from banking77_features import score_rows  # noqa: E402
from drift_banking77 import (  # noqa: E402
    DEFAULT_DATA,
    RECIPE,
    banking77_frames,
    emit,
    workspace_settings,
)
from drift_banking77 import (
    main as drift_main,
)
from modelops.config.recipe import load_recipe  # noqa: E402
from modelops.lifecycle.fetch import FetchedAdapter  # noqa: E402
from modelops.lifecycle.platform import Platform  # noqa: E402
from modelops.monitoring import betting, novelty_ranks  # noqa: E402
from modelops.monitoring.evidence_settings import EvidenceSettings  # noqa: E402
from modelops.monitoring.reference import load_bundle  # noqa: E402
from train_banking77 import DEFAULT_VARIANT  # noqa: E402

SHARES = (0.0, 0.02, 0.05, 0.1)
"""Novel shares of the simulated streams; 0: clean streams, where the test may cross in at
most 0.4 % of them (a check of the simulation)."""


def held_mass(probs: np.ndarray, labels: list[str], held: list[str]) -> np.ndarray:
    """The supervised score: each row's probability mass on the ``held`` intents."""
    return probs[:, np.isin(labels, held)].sum(axis=1)


def ceiling(probs: np.ndarray, labels: list[str], truth: np.ndarray, held: list[str]) -> dict:
    """The supervised detector's figures on test.csv (``probs``: the 77-intent champion's,
    columns in ``labels`` order)."""
    is_new = np.isin(truth, held)
    mass = held_mass(probs, labels, held)
    predicted = np.asarray(labels)[probs.argmax(axis=1)]
    known = ~np.isin(predicted, held)
    confused = {i: Counter(predicted[(truth == i) & known].tolist()) for i in held}
    fpr, tpr, _ = roc_curve(is_new, mass)
    return {
        "oracle_auroc": float(roc_auc_score(is_new, mass)),
        "oracle_tpr_at_fpr": {f"{r:g}": float(np.interp(r, fpr, tpr)) for r in (0.01, 0.02, 0.05)},
        "oracle_auroc_by_intent": {
            intent: float(
                roc_auc_score(
                    is_new[(truth == intent) | ~is_new], mass[(truth == intent) | ~is_new]
                )
            )
            for intent in held
        },
        "held_rows": int(is_new.sum()),
        "held_rows_filed_under_known": int((is_new & known).sum()),
        "known_rows_filed_under_held": int((~is_new & ~known).sum()),
        "held_rows_accuracy": float((predicted[is_new] == truth[is_new]).mean()),
        "known_rows_accuracy": float((predicted[~is_new] == truth[~is_new]).mean()),
        "held_filed_under_known_by_intent": {k: dict(v) for k, v in confused.items()},
    }


def stream_p_values(edges: np.ndarray, calibration, stream, rng) -> np.ndarray:
    """Each stream score's smoothed conformal p-value among the calibration scores and the
    stream's earlier ones, by the drift check's own code (``novelty_ranks``: one bin per
    distinct score of ``edges``, so the bins lose no order)."""
    edges, counts = novelty_ranks.rank_reference(edges, calibration)
    bins = novelty_ranks.bins_of(edges, stream)
    p, _ = novelty_ranks.sequential_p_values(counts, bins, rng.random(len(stream)))
    return p


def detection_rates(scores, is_new, shares, rows: int, streams: int, seed: int) -> dict:
    """The share of seeded streams of ``rows`` rows in which the novelty test crosses
    ``1 / alpha``, per novel share."""
    needed = -math.log(EvidenceSettings().alpha_of("novelty"))
    known, novel = scores[~is_new], scores[is_new]
    out = {}
    for share in shares:
        rng, crossed = np.random.default_rng([seed, round(share * 1000)]), 0
        for _ in range(streams):
            order = rng.permutation(known.size)
            calibration, traffic = known[order[: known.size // 2]], known[order[known.size // 2 :]]
            new = rng.random(rows) < share
            stream = np.where(new, rng.choice(novel, rows), rng.choice(traffic, rows))
            p = stream_p_values(scores, calibration, stream, rng)
            _, path = betting.p_value_update(np.zeros(betting.p_value_bet_count()), p)
            crossed += bool(path.max() >= needed)
        out[f"{share:g}"] = crossed / streams
    return out


def champion_rows(home: Path, test: pd.DataFrame, args):
    """The champion of the workspace ``home`` and test.csv as it scores it (from the
    workspace's feature cache when there)."""
    settings = workspace_settings(home, args)
    plat = Platform.from_settings(settings)
    champion = plat.registry.alias(RECIPE, "champion")
    if champion is None:
        raise SystemExit(f"{home}: no champion (run drift_banking77.py --home {home} first)")
    max_length = load_recipe(settings.recipes_dir / f"{RECIPE}.yaml").recipe.training.max_length
    scored = score_rows(
        plat, champion, test["text"].tolist(), max_length, home / "features", "testcsv", emit,
        with_base=False,
    )  # fmt: skip
    return plat, champion, scored


def champion_scores(home: Path, test: pd.DataFrame, args) -> np.ndarray:
    """The out-of-scope scores of test.csv by the stored model of the champion in ``home``."""
    plat, champion, scored = champion_rows(home, test, args)
    with FetchedAdapter(plat, champion) as fetched:
        bundle = load_bundle(fetched.path)
    if bundle is None or bundle.out_of_scope is None:
        raise SystemExit(f"{home}: champion {champion.id} stores no out-of-scope model")
    return bundle.out_of_scope.scores(scored.features, scored.probs.max(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--home", type=Path, required=True, help="the 77-intent workspace")
    parser.add_argument("--base", default="minilm")
    parser.add_argument("--variant", default=DEFAULT_VARIANT)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=13, help="drift_banking77.py's --seed")
    parser.add_argument("--held-out", type=int, default=10, help="its --held-out")
    parser.add_argument("--champions", type=Path, nargs="*", default=[], help="their --home")
    parser.add_argument("--streams", type=int, default=300, help="per share, for each score")
    args = parser.parse_args(argv)
    common = ["--data", str(args.data), "--home", str(args.home), "--threads", str(args.threads)]
    drift_main(
        [*common, "--held-out", "0", "--base", args.base, "--variant", args.variant,
         "--epochs", str(args.epochs), "--train-only"]
    )  # fmt: skip
    _, test, _, held = banking77_frames(args.data, args.seed, args.held_out)
    trained = set(pd.read_csv(args.home / "data" / "known_intents.csv")["label"])
    if missing := sorted(set(held) - trained):
        raise SystemExit(
            f"{args.home}: its champion was not trained on {', '.join(missing)} "
            "(a drift_banking77.py workspace with held-out intents?); give a new --home"
        )
    _, champion, scored = champion_rows(args.home, test, args)
    result = {
        "benchmark": "oos_ceiling (issue 24)",
        "held_out": held,
        "champion": {"id": champion.id, "metrics": champion.metrics},
        **ceiling(scored.probs, scored.labels, test["label"].to_numpy(), held),
    }
    is_new = test["label"].isin(held).to_numpy()
    scores = {str(home): champion_scores(home, test, args) for home in args.champions}
    scores["ceiling"] = held_mass(scored.probs, scored.labels, held)
    result["detected_within_600_rows"] = {}
    for name, values in scores.items():
        rates = detection_rates(values, is_new, SHARES, 600, args.streams, args.seed)
        result["detected_within_600_rows"][name] = rates
        emit(f"{name}: novelty test crossed within 600 rows in {rates} of the streams")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
