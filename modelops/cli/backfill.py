"""``modelops backfill --taxonomy NAME:VERSION``: move recipes to a taxonomy version
through Dagster's own backfill machinery (GraphQL ``launchPartitionBackfill`` on the
running instance), so the backfill shows, and can be re-run, in the UI.

Recipes whose evaluation of that version is already materialized are left out, so
running the command again does not redo finished work; a recipe whose run failed is
launched again on its own. The launching is ``modelops.defs.webserver``; this module
parses the arguments and prints the report.
"""

from __future__ import annotations

import argparse
import sys

from modelops.cli.launching import add_launch_options, finish
from modelops.config.errors import InputError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "backfill", help="relabel, train, evaluate and gate every recipe of a taxonomy version"
    )
    parser.add_argument(
        "--taxonomy",
        required=True,
        metavar="NAME:VERSION",
        help="the taxonomy version to move to, e.g. demo_intents:v2",
    )
    parser.add_argument(
        "--recipe",
        action="append",
        default=None,
        help="only this recipe (repeatable; default: every recipe of the taxonomy)",
    )
    add_launch_options(parser, "the backfill")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from modelops.config.settings import Settings
    from modelops.defs.webserver import launch_taxonomy_backfill

    name, _, version = args.taxonomy.partition(":")
    if not name or not version:
        raise InputError(None, "--taxonomy", f"expected NAME:VERSION, got {args.taxonomy!r}")
    report = launch_taxonomy_backfill(
        Settings.from_env(),
        name,
        version,
        recipes=args.recipe,
        url=args.url,
        wait=args.wait,
        emit=lambda line: print(line, file=sys.stderr),
    )
    return finish(report, args.json)
