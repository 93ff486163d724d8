"""``modelops reproduce ID``: re-run an adapter's lineage and compare the weights' sha256."""

from __future__ import annotations

import argparse
import json
import logging
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reproduce",
        help="re-train an adapter from its recorded lineage and check the weights are identical",
    )
    parser.add_argument("adapter_id", type=_adapter_id, metavar="ID")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.set_defaults(func=run)


def _adapter_id(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"adapter ID must be a number, not {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("adapter ID must be positive")
    return value


def run(args: argparse.Namespace) -> int:
    from modelops.config.settings import Settings
    from modelops.lifecycle.platform import Platform
    from modelops.lifecycle.reproduce import reproduce

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    platform = Platform.from_settings(Settings.from_env())
    report = reproduce(platform, args.adapter_id, emit=lambda m: print(m, file=sys.stderr))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        verdict = "identical" if report["identical"] else "DIFFERENT"
        print(f"adapter {report['adapter_id']} ({report['recipe']}): weights {verdict}")
        print(f"  recorded   {report['recorded_weights_sha256']}")
        print(f"  reproduced {report['reproduced_weights_sha256']}")
        if "recorded_mapping_fingerprint" in report:  # a mapped adapter: weights + mapping
            print(f"  mapping of adapter {report['mapped_from_adapter_id']}'s labels:")
            print(f"  recorded   {report['recorded_mapping_fingerprint']}")
            print(f"  reproduced {report['reproduced_mapping_fingerprint']}")
        if report["recorded_code_version"] != report["code_version"]:
            print(f"  note: code {report['recorded_code_version']} -> {report['code_version']}")
    return 0 if report["identical"] else 3
