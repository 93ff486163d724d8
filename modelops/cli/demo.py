"""``modelops demo-data``: write the generated support-request data set (or its taxonomy)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas

from modelops.config.errors import InputError
from modelops.demo.files import write_demo_dataset, write_taxonomy
from modelops.demo.generator import DemoKnobs

DEFAULT_OUT = Path("data/demo/support_requests.csv")
DEFAULT_TAXONOMY = Path("taxonomies/demo_intents/v1.yaml")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo-data`` sub-command."""
    parser = subparsers.add_parser(
        "demo-data",
        help="write the generated demo data set (support-request intents)",
        description="Write the generated support-request data set as CSV (text,label). "
        "An existing file is kept unless --force is given.",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default {DEFAULT_OUT}")
    parser.add_argument("--rows", type=int, default=DemoKnobs.n, help="number of rows")
    parser.add_argument("--seed", type=int, default=DemoKnobs.seed, help="random seed")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")
    parser.add_argument(
        "--taxonomy",
        nargs="?",
        type=Path,
        const=DEFAULT_TAXONOMY,
        default=None,
        metavar="PATH",
        help=f"write the base taxonomy YAML instead (default path {DEFAULT_TAXONOMY})",
    )
    parser.set_defaults(func=run_demo_data)


def run_demo_data(args: argparse.Namespace) -> int:
    """Write the data set (or, with ``--taxonomy``, the taxonomy file); print one line."""
    if args.taxonomy is not None:
        path = write_taxonomy(args.taxonomy)
        print(f"wrote taxonomy {path}")
        return 0
    if args.rows < 1:
        raise InputError("--rows", None, f"must be a positive integer, got {args.rows}")
    out: Path = args.out
    if out.exists() and not args.force:
        print(f"kept existing {out} (use --force to regenerate)")
        return 0
    knobs = DemoKnobs(n=args.rows, seed=args.seed)
    path = write_demo_dataset(out, knobs)
    frame = pandas.read_csv(path, dtype=str, keep_default_na=False)  # counts of what was written
    print(f"wrote {path}: {len(frame)} rows, {frame['label'].nunique()} intents")
    return 0
