"""``modelops rebase --base NAME@ALIAS [--recipe R]``: re-adapt the recipes that follow a
base on the revision it resolves to now, through Dagster's own backfill machinery on the
running instance (as ``modelops backfill`` does), so the runs show in the UI.

What the ``base_models`` sensor does when it sees an alias move, on demand: each recipe's
serving taxonomy version is trained on the new revision, evaluated beside the serving
champion on the old base, and promoted only through the recipe's gates. Recipes whose
evaluation of that partition is already materialized are left out.
"""

from __future__ import annotations

import argparse
import sys

from modelops.cli.launching import add_launch_options, finish


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "rebase", help="re-adapt the recipes following a base model on its current revision"
    )
    parser.add_argument(
        "--base",
        required=True,
        metavar="NAME@ALIAS",
        help="the catalog ref, e.g. minilm@stable (an alias or a revision)",
    )
    parser.add_argument(
        "--recipe",
        action="append",
        default=None,
        help="only this recipe (repeatable; default: every recipe whose "
        "base_model resolves to the same revision); a named recipe is "
        "re-adapted on the revision even when it follows another base",
    )
    add_launch_options(parser, "the backfills")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from modelops.config.settings import Settings
    from modelops.defs.webserver import launch_rebase

    report = launch_rebase(
        Settings.from_env(),
        args.base,
        recipes=args.recipe,
        url=args.url,
        wait=args.wait,
        emit=lambda line: print(line, file=sys.stderr),
    )
    return finish(report, args.json)
