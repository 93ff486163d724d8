"""The side-by-side of an evaluation as Dagster metadata: the candidate beside the
champion it was compared with (each on its own base), on the same test rows, with their
cost (``modelops.domain.side_by_side``)."""

import dagster as dg

from modelops.defs.metadata import num
from modelops.domain.side_by_side import side_by_side_markdown


def side_by_side_metadata(doc: dict | None) -> dict:
    """``side_by_side`` (a markdown table), ``base_changed``, ``verdict`` and the
    candidate's cost figures as numbers (plotted by the UI across materializations)."""
    if not doc:
        return {}
    cand, champ = doc["candidate"], doc.get("champion") or {}
    out = {
        "side_by_side": dg.MetadataValue.md(side_by_side_markdown(doc)),
        "base_model": cand["base_model"],
        "champion_base_model": champ.get("base_model", "none"),
        "base_changed": bool(doc["base_changed"]),
        "verdict": doc.get("verdict", ""),
    }
    for field, value in cand["cost"].items():
        out[f"cost_{field}"] = num(value)
    return out
