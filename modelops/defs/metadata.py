"""Turning step results into Dagster metadata: numbers, tables, links, check values."""

from __future__ import annotations

import dagster as dg


def num(value) -> float:
    """A float for the UI's number column; ``None`` shows as NaN."""
    return float(value) if value is not None else float("nan")


def fmt(value) -> str:
    """One table cell: floats to four decimals, anything else as text."""
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def md_table(rows: list[dict], columns: list[str]) -> str:
    """A Markdown table of ``rows`` with the given columns (missing cells show ``None``)."""
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    body = "".join("| " + " | ".join(fmt(r.get(c)) for c in columns) + " |\n" for r in rows)
    return head + body


def meta_value(value):
    """A check's metadata value: scalars as they are (``None`` as "none"), the rest as JSON."""
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value if value is not None else "none"
    return dg.MetadataValue.json(value)


def link(uri: str) -> dg.MetadataValue:
    """A clickable URL for http(s), a path otherwise (local files, ``s3://``)."""
    if uri.startswith(("http://", "https://")):
        return dg.MetadataValue.url(uri)
    return dg.MetadataValue.path(uri)


def shadow_metadata(shadow: dict | None) -> dict:
    """A candidate's shadow scores on live traffic as evaluation metadata (promotion
    evidence); nothing when ``modelops serve`` logged none for it."""
    if shadow is None:
        return {}
    return {
        "shadow_rows": shadow["rows"],
        "shadow_agreement": shadow["agreement"],
        "shadow_candidate_confidence": shadow["candidate_confidence"],
        "shadow_champion_confidence": shadow["champion_confidence"],
        "shadow_champions": ", ".join(str(i) for i in shadow["champion_adapter_ids"]),
        "shadow_window": f"{shadow['first_at']} .. {shadow['last_at']}",
    }
