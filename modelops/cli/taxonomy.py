"""``modelops taxonomy``: validate taxonomy versions and show what changes between two."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from modelops.domain.dataset import read_table, validate_rows
from modelops.domain.label_mapping import RETIRED, REVIEW, Change, LabelMapping
from modelops.domain.taxonomy_mapping import load_chain, load_version, validate_taxonomy_dir

DEFAULT_DIR = Path("taxonomies")
_NO_TEXT_LIMIT = 10**9


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``taxonomy validate`` and ``taxonomy diff`` to the ``modelops`` parser."""
    parser = subparsers.add_parser("taxonomy", help="taxonomy versions and their label mappings")
    commands = parser.add_subparsers(dest="taxonomy_command", required=True)

    p = commands.add_parser("validate", help="check every version and mapping under --dir")
    p.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"default {DEFAULT_DIR}")
    p.set_defaults(func=cmd_validate)

    p = commands.add_parser("diff", help="the label changes from one version to another")
    p.add_argument("name", metavar="NAME", help="taxonomy name")
    p.add_argument("old", metavar="V1", help="version to map from, e.g. v1")
    p.add_argument("new", metavar="V2", help="version to map to, e.g. v2")
    p.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"default {DEFAULT_DIR}")
    p.add_argument("--data", help="a CSV or Parquet file labelled with V1: count what changes")
    p.add_argument("--text-column", default="text", help="default text")
    p.add_argument("--label-column", default="label", help="default label")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=cmd_diff)


def cmd_validate(args: argparse.Namespace) -> int:
    """``taxonomy validate [--dir DIR]``: one line per valid version."""
    taxonomies = validate_taxonomy_dir(args.dir)
    for taxonomy in taxonomies:
        since = f", from {taxonomy.previous}" if taxonomy.previous else ""
        print(f"{taxonomy.ref} OK ({len(taxonomy.labels)} labels{since})")
    if not taxonomies:
        print(f"no taxonomy files under {args.dir}")
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    """``taxonomy diff NAME V1 V2 [--data FILE] [--json]``."""
    mapping = load_chain(args.dir, args.name, args.old, args.new)
    changes = mapping.changes()
    counts = None
    if args.data:
        source = load_version(args.dir, args.name, args.old)
        counts = count_changes(mapping, changes, _read_data(args, source.label_names))
    if args.json:
        document: dict[str, Any] = {
            "source": mapping.source,
            "target": mapping.target,
            "fingerprint": mapping.fingerprint(),
            "changes": [
                {**c.to_dict(), **(counts["changes"][i] if counts else {})}
                for i, c in enumerate(changes)
            ],
        }
        if counts:
            document["data"] = args.data
            document["totals"] = counts["totals"]
        print(json.dumps(document, indent=2, sort_keys=True))
        return 0
    print(f"{mapping.source} -> {mapping.target} (mapping {mapping.fingerprint()[:12]})")
    lines = [
        (_describe(c), _count_text(c, counts["changes"][i]) if counts else "")
        for i, c in enumerate(changes)
    ]
    width = max((len(text) for text, _ in lines), default=0)
    for text, count in lines:
        print(f"  {text:<{width}}  {count}".rstrip())
    if counts:
        t = counts["totals"]
        print(
            f"{t['examples']} examples: {t['relabelled']} relabelled ({t['changed']} with a new "
            f"label), {t['review']} to review, {t['retired']} retired"
        )
    return 0


def count_changes(
    mapping: LabelMapping, changes: list[Change], frame: pd.DataFrame
) -> dict[str, Any]:
    """Per change: examples touched, where they go and how many go to review; and totals."""
    relabelled, review, retired = mapping.map_frame(frame)
    outcome = pd.concat(
        [
            pd.Series(relabelled["label"], dtype=object),
            pd.Series(REVIEW, index=review.index, dtype=object),
            pd.Series(RETIRED, index=retired.index, dtype=object),
        ]
    )
    old = frame["label"]
    per_change = []
    for change in changes:
        touched = old.isin(change.old_labels)
        went = Counter(outcome[touched[touched].index].tolist())
        per_change.append(
            {
                "examples": int(touched.sum()),
                "review": int(went.pop(REVIEW, 0)),
                "outcomes": dict(sorted(went.items())),
            }
        )
    changed = int((relabelled["label"] != frame.loc[relabelled.index, "label"]).sum())
    totals = {
        "examples": len(frame),
        "relabelled": len(relabelled),
        "changed": changed,
        "review": len(review),
        "retired": len(retired),
    }
    return {"changes": per_change, "totals": totals}


def _read_data(args: argparse.Namespace, labels: list[str]) -> pd.DataFrame:
    from modelops.lifecycle.dataset import read_source

    fmt = "parquet" if args.data.lower().endswith((".parquet", ".pq")) else "csv"
    table = read_table(args.data, fmt, read=read_source)
    return validate_rows(
        table,
        source=args.data,
        fmt=fmt,
        text_column=args.text_column,
        label_column=args.label_column,
        labels=labels,
        max_text_chars=_NO_TEXT_LIMIT,
    )


def _describe(change: Change) -> str:
    old, new = ", ".join(change.old_labels), ", ".join(change.new_labels)
    if change.kind == "add":
        return f"add     {new}"
    if change.kind == "retire":
        return f"retire  {old}"
    if change.kind == "keep":
        return f"keep    {old}"
    return f"{change.kind:<7} {old} -> {new}"


def _count_text(change: Change, count: dict[str, Any]) -> str:
    if change.kind == "add":
        return ""
    text = f"{count['examples']} example{'' if count['examples'] == 1 else 's'}"
    if change.kind == "split":
        parts = [f"{label} {n}" for label, n in count["outcomes"].items()]
        parts.append(f"review {count['review']}")
        text += f" ({', '.join(parts)})"
    return text
