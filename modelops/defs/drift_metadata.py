"""Dagster metadata of a drift report: the window's verdict, the evidence accumulated
since the serving champion started, and the accuracy impact (helpers in
``modelops.defs.metadata``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg

from modelops.defs.metadata import link, num, readable

if TYPE_CHECKING:
    from modelops.lifecycle.drift_check import DriftResult


def drift_metadata(result: DriftResult, serve_url: str | None = None) -> dict:
    """The drift report's materialization metadata (the drift sensor reads ``retrain``,
    ``drifted``, ``fired`` and ``report``). With ``serve_url``, ``report_url`` links the
    report as served by ``modelops.serving.reports``."""
    from modelops.serving.reports import report_url

    verdict, decision = result.verdict, result.decision
    crossed = [] if result.evidence is None else result.evidence.crossed()
    metadata = {
        "drifted": bool(result.alarm),
        "window_drifted": bool(verdict.drifted),
        "retrain": bool(decision.retrain) if decision is not None else bool(verdict.drifted),
        "action": decision.action if decision is not None else "n/a",
        "fired": ", ".join(verdict.fired + [f"evidence:{name}" for name in crossed]) or "none",
        "reason": verdict.reason,
        "policy": decision.sentence if decision is not None else "n/a",
        "estimated_accuracy": num(verdict.estimated_accuracy),
        "adapter_id": result.adapter_id,
        "rows": result.rows,
        "labelled_rows": result.labelled_rows,
        "last_prediction_id": result.last_id,
        "report": link(result.report_uri),
    }
    url = report_url(serve_url, result.report_key) if serve_url and result.report_key else None
    if url is not None:
        metadata["report_url"] = dg.MetadataValue.url(url)
    guarantee = verdict.guarantee
    if guarantee:
        metadata["false_alarm_rate_reachable"] = bool(guarantee.get("reachable"))
        metadata["false_alarm_rate_bound"] = num(guarantee.get("rate_bound"))
    if result.impact is not None:
        metadata.update(impact_metadata(result.impact))
    if result.evidence is not None:
        metadata.update(evidence_metadata(result.evidence))
    for signal, score in verdict.scores.items():
        metadata[f"score_{signal}"] = float(score)
        if signal in verdict.thresholds:
            metadata[f"threshold_{signal}"] = float(verdict.thresholds[signal])
    return readable(metadata)


def evidence_metadata(evidence) -> dict:
    """How much evidence accumulated for the champion and since when, the accumulated
    estimated accuracy with its confidence sequence, and each test's e-value against the
    one that rejects its null (``monitoring.evidence``)."""
    summary = evidence.summary()
    metadata = {
        "evidence_since": summary["since"],
        "evidence_rows": summary["rows"],
        "evidence_windows": summary["windows"],
        "evidence_first_id": summary["first_id"],
        "evidence_alpha": num(summary["alpha"]),
        "evidence_accuracy": num(summary["accuracy"]),
        "evidence_accuracy_low": num(summary["accuracy_low"]),
        "evidence_accuracy_high": num(summary["accuracy_high"]),
        "evidence_accuracy_row_mean": num(summary["accuracy_row_mean"]),
        "evidence_reference_low": num(summary["reference_low"]),
        "evidence_crossed": ", ".join(summary["crossed"]) or "none",
    }
    if evidence.note:
        metadata["evidence_note"] = evidence.note
    for name, test in summary["tests"].items():
        metadata[f"evidence_e_{name}"] = num(test["e_value"])
        metadata[f"evidence_needed_{name}"] = num(test["needed"])
    return readable(metadata)


def impact_metadata(impact) -> dict:
    """The window's estimated accuracy and drop (``monitoring``'s label-free estimate),
    the measured ones where feedback labels exist, and the labels it has not seen."""
    low, high = impact.estimated_interval
    metadata = {
        "estimated_accuracy_low": num(low),
        "estimated_accuracy_high": num(high),
        "reference_accuracy": num(impact.reference_accuracy),
        "estimated_drop": num(impact.estimated_drop),
    }
    if impact.estimated_drop_interval is not None:
        metadata["estimated_drop_low"] = num(impact.estimated_drop_interval[0])
        metadata["estimated_drop_high"] = num(impact.estimated_drop_interval[1])
    if impact.measured_accuracy is not None:
        metadata["measured_accuracy"] = num(impact.measured_accuracy)
        metadata["measured_drop"] = num(impact.measured_drop)
    if impact.unadjusted_accuracy is not None:
        metadata["unadjusted_estimated_accuracy"] = num(impact.unadjusted_accuracy)
        metadata["novel_share"] = num(impact.novel_share)
    if impact.novel_share_estimate is not None and impact.novel_share_interval is not None:
        metadata["novel_share_estimate"] = num(impact.novel_share_estimate)
        metadata["novel_share_low"] = num(impact.novel_share_interval[0])
        metadata["novel_share_high"] = num(impact.novel_share_interval[1])
    if impact.new_labels:
        metadata["new_labels"] = ", ".join(impact.new_labels)
    return readable(metadata)
