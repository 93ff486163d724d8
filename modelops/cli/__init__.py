"""modelops: reproducible LoRA adaptation, evaluation gates, a registry and drift-driven
retraining, orchestrated by Dagster.

Each sub-command lives in a module of this package that exposes ``register(subparsers)``;
errors exit non-zero with one line on stderr."""

from __future__ import annotations

import argparse
import importlib
import sys

from modelops.config.errors import ModelopsError

# Modules that add sub-commands; each has ``register(subparsers) -> None`` and sets
# ``func`` on its parsers: ``func(args) -> int`` (the exit code).
COMMAND_MODULES = (
    "modelops.cli.registry",
    "modelops.cli.reproduce",
    "modelops.cli.demo",
    "modelops.cli.setup",
    "modelops.cli.backfill",
    "modelops.cli.rebase",
    "modelops.cli.taxonomy",
    "modelops.cli.scenario",
    "modelops.cli.serve",
    "modelops.cli.ui",
    "modelops.cli.base",
    "modelops.cli.shards",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelops", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # sub-command not built yet
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ModelopsError as exc:
        print(f"modelops: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("modelops: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
