"""Shadow evidence: how a candidate scored live traffic beside the champion, as
``modelops serve`` logged it for recipes with ``serving: {shadow: true}``."""

from __future__ import annotations

from typing import Any

from modelops.lifecycle.platform import Platform


def shadow_evidence(platform: Platform, adapter_id: int) -> dict[str, Any] | None:
    """Rows, agreement with the champion and both mean confidences of the adapter's
    shadow scores (:meth:`ProductionLog.shadow_summary`); None when it has none. Reads
    through the platform's production log: no database opened per call."""
    version = platform.registry.get(adapter_id)
    return platform.production_log.shadow_summary(version.recipe, adapter_id)
