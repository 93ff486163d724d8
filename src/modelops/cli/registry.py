"""``modelops registry``: list, show, promote, roll back and audit adapter versions."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from modelops.errors import InputError
from modelops.settings import Settings
from modelops.stores.registry import AdapterVersion, AuditEntry, Registry


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``registry`` and its sub-commands to the ``modelops`` parser."""
    parser = subparsers.add_parser(
        "registry", help="adapter versions, champion/candidate aliases and the audit log"
    )
    commands = parser.add_subparsers(dest="registry_command", required=True)

    p = commands.add_parser("list", help="adapter versions, newest first")
    p.add_argument("--recipe", help="only this recipe")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=cmd_list)

    p = commands.add_parser("show", help="one adapter version, its aliases and audit trail")
    p.add_argument("id", metavar="ID", help="adapter id")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=cmd_show)

    p = commands.add_parser("promote", help="make an adapter its recipe's champion")
    p.add_argument("id", metavar="ID", help="adapter id")
    p.add_argument("--why", required=True, help="reason, kept in the audit log")
    p.add_argument("--force", action="store_true", help="promote even though its gate did not pass")
    p.add_argument("--json", action="store_true", help="print the audit entry as JSON")
    p.set_defaults(func=cmd_promote)

    p = commands.add_parser("rollback", help="give the champion alias back to the previous one")
    p.add_argument("recipe", metavar="RECIPE")
    p.add_argument("--why", required=True, help="reason, kept in the audit log")
    p.add_argument("--json", action="store_true", help="print the audit entry as JSON")
    p.set_defaults(func=cmd_rollback)

    p = commands.add_parser("audit", help="the audit log, newest first")
    p.add_argument("--recipe", help="only this recipe")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=cmd_audit)


# --------------------------------------------------------------------------- commands


def cmd_list(args: argparse.Namespace) -> int:
    """``registry list [--recipe R] [--json]``."""
    _, registry = _open()
    with registry:
        versions = registry.list(args.recipe)
        names = _alias_names(registry, versions)
    if args.json:
        _print_json([{**v.to_dict(), "aliases": names.get(v.id, [])} for v in versions])
    elif not versions:
        print("no adapter versions" + (f" for recipe {args.recipe!r}" if args.recipe else ""))
    else:
        print(_versions_table(versions, names))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    """``registry show ID [--json]``."""
    adapter_id = _adapter_id(args.id)
    _, registry = _open()
    with registry:
        version = registry.get(adapter_id)
        names = _alias_names(registry, [version]).get(version.id, [])
        trail = registry.audit(adapter_id=version.id)
    if args.json:
        _print_json({**version.to_dict(), "aliases": names, "audit": [e.to_dict() for e in trail]})
        return 0
    fields: list[tuple[str, Any]] = [
        ("id", version.id),
        ("recipe", version.recipe),
        ("taxonomy", version.taxonomy_version),
        ("status", version.status),
        ("aliases", ", ".join(names) or "-"),
        ("base model", f"{version.base_model} (sha256 {version.base_model_sha256})"),
        ("dataset", version.dataset_fingerprint),
        ("recipe fingerprint", version.recipe_fingerprint),
        ("artifact", f"{version.artifact_uri} (sha256 {version.artifact_sha256})"),
        ("weights sha256", version.weights_sha256),
        ("created", f"{_time(version.created_at)} by {version.created_by}"),
        ("metrics", _compact(version.metrics)),
        ("gate", _gate_summary(version.gate)),
        ("lineage", _compact(version.lineage)),
    ]
    width = max(len(name) for name, _ in fields)
    for name, value in fields:
        print(f"{name + ':':<{width + 1}} {value}")
    print()
    print("audit trail:")
    print(_audit_table(trail) if trail else "  (none)")
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    """``registry promote ID --why TEXT [--force]``."""
    adapter_id = _adapter_id(args.id)
    settings, registry = _open()
    with registry:
        version = registry.get(adapter_id)
        evidence = {"via": "cli", "metrics": version.metrics, "gate": version.gate}
        entry = registry.promote(
            adapter_id, who=settings.user, why=args.why, evidence=evidence, force=args.force
        )
    if args.json:
        _print_json(entry.to_dict())
    else:
        was = f"adapter {entry.previous_adapter_id}" if entry.previous_adapter_id else "none"
        forced = " (forced)" if entry.evidence.get("forced") else ""
        print(
            f"adapter {entry.adapter_id} is now the champion of recipe {entry.recipe!r}"
            f"{forced}; previous champion: {was}"
        )
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    """``registry rollback RECIPE --why TEXT``."""
    settings, registry = _open()
    with registry:
        entry = registry.rollback(args.recipe, who=settings.user, why=args.why)
    if args.json:
        _print_json(entry.to_dict())
    else:
        print(
            f"recipe {entry.recipe!r} rolled back: champion is adapter {entry.adapter_id} "
            f"again (was adapter {entry.previous_adapter_id})"
        )
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    """``registry audit [--recipe R] [--json]``."""
    _, registry = _open()
    with registry:
        entries = registry.audit(recipe=args.recipe)
    if args.json:
        _print_json([e.to_dict() for e in entries])
    elif not entries:
        print("no audit entries" + (f" for recipe {args.recipe!r}" if args.recipe else ""))
    else:
        print(_audit_table(entries))
    return 0


# --------------------------------------------------------------------------- helpers


def _open() -> tuple[Settings, Registry]:
    settings = Settings.from_env()
    return settings, Registry(settings.database_url)


def _adapter_id(text: str) -> int:
    """Parse an adapter id from the command line; one clear error line otherwise."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise InputError(None, "ID", f"must be a positive integer adapter id, got {text!r}")
    return value


def _alias_names(registry: Registry, versions: Sequence[AdapterVersion]) -> dict[int, list[str]]:
    """``{adapter id: [alias names]}`` over the recipes of ``versions``."""
    names: dict[int, list[str]] = {}
    for recipe in sorted({v.recipe for v in versions}):
        for name, adapter_id in sorted(registry.aliases(recipe).items()):
            names.setdefault(adapter_id, []).append(name)
    return names


def _print_json(document: Any) -> None:
    print(json.dumps(document, indent=2, sort_keys=True))


def _time(value: Any) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _metric(metrics: dict, name: str) -> str:
    value = metrics.get(name)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:.4f}"
    return "-"


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True) if value else "-"


def _gate_summary(gate: dict | None) -> str:
    if gate is None:
        return "not evaluated"
    return ("passed " if gate.get("passed") else "FAILED ") + json.dumps(gate, sort_keys=True)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Plain-text columns, left-aligned, separated by two spaces."""
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=True)]
    lines = [headers, *rows]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def _versions_table(versions: Sequence[AdapterVersion], names: dict[int, list[str]]) -> str:
    headers = ("id", "recipe", "taxonomy", "status", "aliases", "macro_f1", "accuracy", "created")
    rows = [
        (
            str(v.id),
            v.recipe,
            v.taxonomy_version,
            v.status,
            ",".join(names.get(v.id, [])) or "-",
            _metric(v.metrics, "macro_f1"),
            _metric(v.metrics, "accuracy"),
            _time(v.created_at),
        )
        for v in versions
    ]
    return _table(headers, rows)


def _audit_table(entries: Sequence[AuditEntry]) -> str:
    headers = ("id", "at", "who", "action", "recipe", "adapter", "previous", "why")
    rows = [
        (
            str(e.id),
            _time(e.at),
            e.who,
            e.action,
            e.recipe,
            str(e.adapter_id) if e.adapter_id is not None else "-",
            str(e.previous_adapter_id) if e.previous_adapter_id is not None else "-",
            " ".join(e.why.split()),
        )
        for e in entries
    ]
    return _table(headers, rows)
