"""Shadow evidence: how a candidate scored live traffic beside the champion, as
``modelops serve`` logged it for recipes with ``serving: {shadow: true}``."""

from __future__ import annotations

from typing import Any

from modelops.lifecycle.platform import Platform
from modelops.stores.serving_log import ServingLog


def shadow_evidence(platform: Platform, adapter_id: int) -> dict[str, Any] | None:
    """Rows, agreement with the champion and both mean confidences of the adapter's
    shadow scores (:meth:`ServingLog.shadow_summary`); None when it has none."""
    version = platform.registry.get(adapter_id)
    with ServingLog(platform.settings.database_url) as log:
        return log.shadow_summary(version.recipe, adapter_id)
