"""The promotion step: a candidate that passed its gates becomes its version's champion."""

from __future__ import annotations

from modelops.config.errors import ModelopsError
from modelops.lifecycle.platform import Platform
from modelops.lifecycle.shadow import shadow_evidence
from modelops.stores.registry_records import AuditEntry


def promote_if_passed(
    platform: Platform, adapter_id: int, *, who: str, why: str, evidence: dict | None = None
) -> AuditEntry | None:
    """Make the adapter its taxonomy version's champion when its recorded gate passed;
    the registry moves the recipe's serving alias with it when the version is current.
    ``evidence`` is added to the audit entry's (the gate and the metrics).

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
    evidence = {"gate": gate, "metrics": version.metrics, **(evidence or {})}
    shadow = shadow_evidence(platform, adapter_id)
    if shadow is not None:
        evidence["shadow"] = shadow
    try:
        return platform.registry.promote(adapter_id, who=who, why=why, evidence=evidence)
    except ModelopsError:
        # Two promotions of the same adapter raced (two runs on one event): the registry
        # serialized them and the other one won. That is the outcome asked for.
        now = platform.registry.alias(
            version.recipe, "champion", taxonomy_version=version.taxonomy_version
        )
        if now is not None and now.id == adapter_id:
            return None
        raise
