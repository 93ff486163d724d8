"""``modelops shards``: how a recipes folder splits between code locations
(``MODELOPS_RECIPE_SHARD``, docs/deploy.md): the recipes each location would hold, so
an operator can pick the number of locations before deploying them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from modelops.config.errors import InputError, ModelopsError
from modelops.config.recipe_shard import shard_of
from modelops.config.settings import Settings

ADVISED_PER_LOCATION = 40
"""Recipes a location should hold at most (benchmarks/RESULTS.md, issue 23)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "shards", help="which code location (MODELOPS_RECIPE_SHARD) holds which recipe"
    )
    parser.add_argument(
        "--count",
        type=int,
        help="number of code locations (default: the recipes over "
        f"{ADVISED_PER_LOCATION}, rounded up)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.set_defaults(func=run)


def split(directory: Path, count: int | None) -> dict:
    """``{"count", "shards": [{"shard": "i/n", "recipes": [...]}, ...]}`` from the file
    names (a recipe's file name is its name); no file is opened."""
    if not directory.is_dir():
        raise InputError(directory, None, "recipes directory not found")
    names = sorted(p.name[: -len(".yaml")] for p in directory.glob("*.yaml") if p.is_file())
    if count is None:
        count = max(1, -(-len(names) // ADVISED_PER_LOCATION))
    if count < 1:
        raise ModelopsError(f"--count {count}: needs at least one code location")
    held: list[list[str]] = [[] for _ in range(count)]
    for name in names:
        held[shard_of(name, count)].append(name)
    return {
        "count": count,
        "recipes": len(names),
        "shards": [{"shard": f"{i}/{count}", "recipes": r} for i, r in enumerate(held)],
    }


def run(args: argparse.Namespace) -> int:
    directory = Settings.from_env().recipes_dir
    report = split(directory, args.count)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{report['recipes']} recipes in {directory}, {report['count']} code location(s):")
    for shard in report["shards"]:
        recipes = shard["recipes"]
        shown = ", ".join(recipes[:5]) + (", ..." if len(recipes) > 5 else "")
        print(f"  MODELOPS_RECIPE_SHARD={shard['shard']}: {len(recipes)} recipes ({shown})")
    return 0
