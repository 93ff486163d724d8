"""What ``modelops backfill`` and ``modelops rebase`` share: the options of a launch on the
running Dagster instance and how its report is printed and turned into an exit code."""

from __future__ import annotations

import argparse
import json


def add_launch_options(parser: argparse.ArgumentParser, waited_for: str) -> None:
    """``--url``, ``--wait`` (for ``waited_for``, e.g. "the backfill") and ``--json``."""
    parser.add_argument(
        "--url",
        default=None,
        help="Dagster webserver (default MODELOPS_DAGSTER_URL or http://127.0.0.1:3000)",
    )
    parser.add_argument(
        "--wait",
        action="store_true",
        help=f"wait for {waited_for} to finish; exit 1 unless it succeeded",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def finish(report: dict, as_json: bool) -> int:
    """Print the launch report (JSON or lines); 1 when what was waited for did not succeed."""
    from modelops.defs.webserver import SUCCEEDED, report_lines

    if as_json:
        print(json.dumps(report, indent=2))
    else:
        for line in report_lines(report):
            print(line)
    if report["status"] and report["status"] not in SUCCEEDED:
        return 1
    return 0
