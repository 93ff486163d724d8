"""``modelops demo``: the continuous-adaptation loop on the demo recipe.

Headless by default (prints one JSON summary at the end); ``--stream`` only drops the
production batches on a timer for a running Dagster to pick up (``make run`` does this).
"""

from __future__ import annotations

import argparse
import logging
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="run the drift -> retraining -> promotion loop on the demo recipe"
    )
    parser.add_argument("--recipe", default="demo_intents")
    parser.add_argument(
        "--batch-size",
        type=_positive,
        default=None,
        help="rows per production batch (default: the recipe's window size)",
    )
    parser.add_argument("--clean-batches", type=_positive, default=5)
    parser.add_argument("--drifted-batches", type=_positive, default=3)
    parser.add_argument(
        "--feedback-share",
        type=float,
        default=0.6,
        help="share of drifted rows that come back with a true label",
    )
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument(
        "--stream",
        action="store_true",
        help="only drop batch files into the landing folder, on a timer",
    )
    parser.add_argument(
        "--every", type=float, default=45.0, help="seconds between batches with --stream"
    )
    parser.set_defaults(func=run)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def run(args: argparse.Namespace) -> int:
    from modelops.config.recipe import load_recipe
    from modelops.config.settings import Settings
    from modelops.demo.scenario import ScenarioKnobs, run_scenario, stream, summary_json

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    settings = Settings.from_env()
    loaded = load_recipe(settings.recipes_dir / f"{args.recipe}.yaml")
    knobs = ScenarioKnobs(
        recipe=args.recipe,
        batch_size=args.batch_size or loaded.recipe.monitoring.window_size,
        clean_batches=args.clean_batches,
        drifted_batches=args.drifted_batches,
        feedback_share=args.feedback_share,
        seed=args.seed,
    )

    def emit(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    if args.stream:
        stream(settings, knobs, args.every, emit=emit)
        return 0
    print(summary_json(run_scenario(settings, knobs, emit=emit)))
    return 0
