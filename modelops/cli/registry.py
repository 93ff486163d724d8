"""``modelops registry``: list, show, promote, roll back and audit adapter versions, and
show each taxonomy version's champion and candidate.

Alias names read ``champion@v2`` (the champion of taxonomy version v2) and ``serving``
(the adapter that serves the recipe now)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from modelops.config.errors import InputError
from modelops.config.settings import Settings
from modelops.stores.registry import Registry
from modelops.stores.registry_records import AdapterVersion, AuditEntry


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``registry`` and its sub-commands to the ``modelops`` parser."""
    parser = subparsers.add_parser(
        "registry", help="adapter versions, champion/candidate/serving aliases and the audit log"
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

    p = commands.add_parser(
        "promote",
        help="make an adapter the champion of its taxonomy version (and serving, unless a "
        "newer version serves)",
    )
    p.add_argument("id", metavar="ID", help="adapter id")
    p.add_argument("--why", required=True, help="reason, kept in the audit log")
    p.add_argument("--force", action="store_true", help="promote even though its gate did not pass")
    p.add_argument("--json", action="store_true", help="print the audit entry as JSON")
    p.set_defaults(func=cmd_promote)

    p = commands.add_parser(
        "rollback", help="give a taxonomy version's champion alias back to the previous one"
    )
    p.add_argument("recipe", metavar="RECIPE")
    p.add_argument(
        "--taxonomy-version",
        metavar="VERSION",
        help="the taxonomy version to roll back (default: the one serving)",
    )
    p.add_argument("--why", required=True, help="reason, kept in the audit log")
    p.add_argument("--json", action="store_true", help="print the audit entry as JSON")
    p.set_defaults(func=cmd_rollback)

    p = commands.add_parser(
        "versions", help="per taxonomy version of a recipe: champion, candidate, adapters"
    )
    p.add_argument("recipe", metavar="RECIPE")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=cmd_versions)

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


def _shadow(settings, version) -> dict | None:
    """The candidate's shadow scores on live traffic (``modelops serve``), if any."""
    from modelops.stores.production_log import ProductionLog

    with ProductionLog(settings.database_url) as log:
        return log.shadow_summary(version.recipe, version.id)


def cmd_promote(args: argparse.Namespace) -> int:
    """``registry promote ID --why TEXT [--force]``."""
    adapter_id = _adapter_id(args.id)
    settings, registry = _open()
    with registry:
        version = registry.get(adapter_id)
        evidence = {"via": "cli", "metrics": version.metrics, "gate": version.gate}
        shadow = _shadow(settings, version)
        if shadow is not None:
            evidence["shadow"] = shadow
        entry = registry.promote(
            adapter_id, who=settings.user, why=args.why, evidence=evidence, force=args.force
        )
    if args.json:
        _print_json(entry.to_dict())
    else:
        was = f"adapter {entry.previous_adapter_id}" if entry.previous_adapter_id else "none"
        forced = " (forced)" if entry.evidence.get("forced") else ""
        print(
            f"adapter {entry.adapter_id} is now the champion of recipe {entry.recipe!r} "
            f"taxonomy version {entry.evidence.get('taxonomy_version')}{forced}; "
            f"previous champion: {was}; {_serving_summary(entry)}"
        )
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    """``registry rollback RECIPE [--taxonomy-version V] --why TEXT``."""
    settings, registry = _open()
    with registry:
        entry = registry.rollback(
            args.recipe, who=settings.user, why=args.why, taxonomy_version=args.taxonomy_version
        )
    if args.json:
        _print_json(entry.to_dict())
        return 0
    version = entry.evidence.get("taxonomy_version")
    fallback = entry.evidence.get("fallback_taxonomy_version")
    if fallback:
        print(
            f"recipe {entry.recipe!r} taxonomy version {version} rolled back: it has no "
            f"champion now (was adapter {entry.previous_adapter_id}); serving falls back to "
            f"adapter {entry.adapter_id}, champion of taxonomy version {fallback}"
        )
    else:
        print(
            f"recipe {entry.recipe!r} taxonomy version {version} rolled back: champion is "
            f"adapter {entry.adapter_id} again (was adapter {entry.previous_adapter_id}); "
            f"{_serving_summary(entry)}"
        )
    return 0


def cmd_versions(args: argparse.Namespace) -> int:
    """``registry versions RECIPE [--json]``."""
    _, registry = _open()
    with registry:
        versions = registry.versions(args.recipe)
    if args.json:
        _print_json(versions)
    elif not versions:
        print(f"no adapter versions for recipe {args.recipe!r}")
    else:
        headers = ("taxonomy", "champion", "candidate", "adapters", "serving")
        rows = [
            (
                version,
                _id(info["champion"]),
                _id(info["candidate"]),
                str(info["adapters"]),
                "yes" if info["serving"] else "-",
            )
            for version, info in versions.items()
        ]
        print(_table(headers, rows))
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
    """``{adapter id: [alias names]}`` over the recipes of ``versions``: ``champion@v1``,
    ``candidate@v1``, ... and ``serving``."""
    names: dict[int, list[str]] = {}
    for recipe in sorted({v.recipe for v in versions}):
        serving = registry.aliases(recipe).get("serving")
        if serving is not None:
            names.setdefault(serving, []).append("serving")
        for version, info in registry.versions(recipe).items():
            for name in ("champion", "candidate"):
                if info[name] is not None:
                    names.setdefault(info[name], []).append(f"{name}@{version}")
    return {adapter_id: sorted(found) for adapter_id, found in names.items()}


def _serving_summary(entry: AuditEntry) -> str:
    """What a promote or rollback did to the ``serving`` alias, from its audit evidence."""
    before = entry.evidence.get("previous_serving_adapter_id")
    if not entry.evidence.get("serving_switched"):
        return f"serving unchanged (adapter {before})"
    if before is None or before == entry.adapter_id:
        return f"serving: adapter {entry.adapter_id}"
    return f"serving switched from adapter {before} to adapter {entry.adapter_id}"


def _id(value: int | None) -> str:
    return str(value) if value is not None else "-"


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
            _metric(v.metrics, "test_macro_f1"),
            _metric(v.metrics, "test_accuracy"),
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
