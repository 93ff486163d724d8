"""The promotion step: a candidate that passed its gates becomes its version's champion."""

from __future__ import annotations

from modelops.config.errors import ModelopsError
from modelops.lifecycle.platform import Platform
from modelops.lifecycle.shadow import shadow_evidence
from modelops.stores.registry_records import AuditEntry


def promote_if_passed(
    platform: Platform, adapter_id: int, *, who: str, why: str
) -> AuditEntry | None:
    """Make the adapter its taxonomy version's champion when its recorded gate passed;
    the registry moves the recipe's serving alias with it when the version is current.

    Returns None when it already is the champion. Raises when the gate failed.
    """
    version = platform.registry.get(adapter_id)
    current = platform.registry.alias(
        version.recipe, "champion", taxonomy_version=version.taxonomy_version
    )
    if current is not None and current.id == adapter_id:
        return None
    gate = version.gate or {}
    if not gate.get("passed"):
        raise ModelopsError(f"adapter {adapter_id} did not pass its gates; not promoted")
    evidence = {"gate": gate, "metrics": version.metrics}
    shadow = shadow_evidence(platform, adapter_id)
    if shadow is not None:
        evidence["shadow"] = shadow
    return platform.registry.promote(adapter_id, who=who, why=why, evidence=evidence)
