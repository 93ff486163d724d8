"""``modelops base``: the base-model catalog as reviewable records.

- ``base list``: every revision, its aliases, which recipes follow which reference and
  what each resolves to now;
- ``base register NAME@REVISION (PATH | package:MODULE | --parts PART...)``: measure a
  model (hashes, architecture, shapes, tokenizer, parameters) and add it to the catalog file;
- ``base alias NAME@ALIAS REVISION``: move an alias (one change of the catalog file);
- ``base adapt --recipe R``: continue masked-LM pretraining of the recipe's base on its own
  texts, store the result and register it as a new revision.

docs/base-models.md describes the catalog fields; each command takes ``--json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "base",
        help="base-model catalog: list, register, alias, adapt (domain-adaptive pretraining)",
    )
    commands = parser.add_subparsers(dest="base_command", required=True)

    p = commands.add_parser("list", help="revisions, aliases and the recipes following them")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=cmd_list)

    p = commands.add_parser("register", help="measure a model and add it as a catalog revision")
    p.add_argument("ref", metavar="NAME@REVISION")
    p.add_argument(
        "location",
        nargs="?",
        metavar="PATH",
        help="a model directory or package:MODULE (or give --parts)",
    )
    p.add_argument(
        "--parts",
        nargs="+",
        metavar="PART",
        default=[],
        help="the pieces of a split zip archive, in order: files, or "
        "dist:DISTRIBUTION:PATH-SUFFIX for a file an installed package ships",
    )
    p.add_argument(
        "--alias",
        action="append",
        default=[],
        metavar="ALIAS",
        help="an alias of the new revision (repeatable); moving an existing alias is `base alias`",
    )
    p.add_argument("--pooling", choices=("mean", "cls"), default="mean")
    p.add_argument("--license", default="", help="the weights' licence, e.g. Apache-2.0")
    p.add_argument("--source", default="", help="where the weights came from")
    p.add_argument("--description", default="")
    p.add_argument("--json", action="store_true", help="print the new entry as JSON")
    p.set_defaults(func=cmd_register)

    p = commands.add_parser("alias", help="point NAME@ALIAS at another revision")
    p.add_argument("alias", metavar="NAME@ALIAS")
    p.add_argument("revision", metavar="REVISION", help="REVISION or NAME@REVISION")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=cmd_alias)

    p = commands.add_parser(
        "adapt",
        help="domain-adaptive pretraining (masked LM) of a base "
        "on a recipe's texts, registered as a new revision",
    )
    p.add_argument("--recipe", required=True, metavar="RECIPE")
    p.add_argument("--base", metavar="NAME@REF", help="default: the recipe's base_model")
    p.add_argument("--steps", type=_positive, default=300)
    p.add_argument("--batch-size", type=_positive, default=32)
    p.add_argument("--learning-rate", type=float, default=5e-5)
    p.add_argument("--max-length", type=_positive, default=64)
    p.add_argument("--seed", type=int, default=13)
    p.add_argument(
        "--production-texts",
        type=int,
        default=5000,
        metavar="N",
        help="at most the N newest production-log texts (0: none)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=cmd_adapt)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def _platform():
    from modelops.config.settings import Settings
    from modelops.lifecycle.platform import Platform

    return Platform.from_settings(Settings.from_env())


def _emit(message: str) -> None:
    print(message, file=sys.stderr)


def _print(args: argparse.Namespace, doc: Any, lines: list[str]) -> int:
    if args.json:
        print(json.dumps(doc, indent=2, default=str))
    else:
        print("\n".join(lines))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from modelops.lifecycle.catalog import list_bases

    doc = list_bases(_platform())
    lines = [f"catalog {doc['catalog']}"]
    for r in doc["revisions"]:
        aliases = ", ".join(f"@{a}" for a in r.get("aliases", [])) or "-"
        shape = " ".join(
            f"{k}={r[k]}"
            for k in ("architecture", "hidden_size", "num_layers", "vocab_size", "parameters")
            if k in r
        )
        lines.append(
            f"{r['ref']:<40} aliases {aliases:<16} sha256 "
            f"{str(r.get('sha256') or 'unrecorded')[:12]}  {shape}"
        )
        lines.extend(f"    followed by {f}" for f in r["recipes"])
    lines.append("recipes:")
    lines.extend(
        f"  {f['recipe']}: {f['base_model']} -> {f['resolves_to'] or 'NOT IN CATALOG'}"
        for f in doc["recipes"]
    )
    return _print(args, doc, lines)


def cmd_register(args: argparse.Namespace) -> int:
    from modelops.config.catalog import entry_document
    from modelops.config.errors import InputError
    from modelops.lifecycle.catalog import NewRevision, register_base

    name, sep, revision = args.ref.partition("@")
    if not sep:
        raise InputError(None, "NAME@REVISION", f"{args.ref!r} has no @")
    new = NewRevision(
        name=name,
        revision=revision,
        location=args.location,
        parts=tuple(args.parts),
        aliases=tuple(args.alias),
        pooling=args.pooling,
        license=args.license,
        source=args.source,
        description=args.description,
    )
    entry = register_base(_platform(), new, emit=_emit)
    doc = entry_document(entry)
    return _print(
        args,
        doc,
        [
            f"registered {entry.ref}: sha256 {entry.sha256}, "
            f"{entry.architecture} hidden {entry.hidden_size}, "
            f"{entry.num_layers} layers, vocab {entry.vocab_size}, "
            f"{entry.parameters} parameters"
        ],
    )


def cmd_alias(args: argparse.Namespace) -> int:
    from modelops.lifecycle.catalog import alias_base

    doc = alias_base(_platform(), args.alias, args.revision)
    followers = ", ".join(doc["recipes"]) or "no recipe"
    return _print(
        args,
        doc,
        [f"{doc['alias']}: {doc['from'] or '(new)'} -> {doc['to']} (followed by {followers})"],
    )


def cmd_adapt(args: argparse.Namespace) -> int:
    from modelops.config.catalog import entry_document
    from modelops.config.errors import NotFoundError
    from modelops.config.recipe import load_recipes
    from modelops.lifecycle.base_adapt import adapt_base
    from modelops.ml.mlm import MlmSettings

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    platform = _platform()
    recipes = {r.name: r for r in load_recipes(platform.settings.recipes_dir)}
    if args.recipe not in recipes:
        raise NotFoundError(
            f"recipe {args.recipe!r} not in {platform.settings.recipes_dir} "
            f"(known: {', '.join(sorted(recipes)) or 'none'})"
        )
    settings = MlmSettings(
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        max_length=args.max_length,
        seed=args.seed,
    )
    out = adapt_base(
        platform,
        recipes[args.recipe],
        settings,
        base=args.base,
        max_production=args.production_texts,
        emit=_emit,
    )
    entry = out["entry"]
    doc = {
        "entry": entry_document(entry),
        "ref": entry.ref,
        "created": out["created"],
        "result": out["result"],
    }
    verb = "registered" if out["created"] else "already registered:"
    return _print(args, doc, [f"{verb} {entry.ref} (sha256 {entry.sha256}) at {entry.location}"])
