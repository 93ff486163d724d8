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
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "rebase", help="re-adapt the recipes following a base model on its current revision"
    )
    parser.add_argument("--base", required=True, metavar="NAME@ALIAS",
                        help="the catalog ref, e.g. minilm@stable (an alias or a revision)")
    parser.add_argument("--recipe", action="append", default=None,
                        help="only this recipe (repeatable; default: every recipe whose "
                        "base_model resolves to the same revision); a named recipe is "
                        "re-adapted on the revision even when it follows another base")
    parser.add_argument("--url", default=None,
                        help="Dagster webserver (default MODELOPS_DAGSTER_URL or "
                        "http://127.0.0.1:3000)")
    parser.add_argument("--wait", action="store_true",
                        help="wait for the backfills to finish; exit 1 unless they succeeded")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from modelops.config.settings import Settings
    from modelops.defs.webserver import SUCCEEDED, launch_rebase, report_lines

    report = launch_rebase(
        Settings.from_env(),
        args.base,
        recipes=args.recipe,
        url=args.url,
        wait=args.wait,
        emit=lambda line: print(line, file=sys.stderr),
    )
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for line in report_lines(report):
            print(line)
    if report["status"] and report["status"] not in SUCCEEDED:
        return 1
    return 0
