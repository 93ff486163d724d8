"""Turning step results into Dagster metadata: numbers, tables, links, check values.

One builder per step result (:func:`dataset_metadata`, :func:`adapter_metadata`,
:func:`evaluation_metadata`, ...), so an asset body reads: call the lifecycle step, hand
its result to the builder. Every builder passes its values through :func:`readable`:
floats show rounded to four decimals (0.9755, not 0.9755351681957186); the full values
stay in the JSON reports and the registry.
"""

from __future__ import annotations

import base64
import numbers
from typing import TYPE_CHECKING

import dagster as dg

from modelops.domain.evaluation import markdown_table
from modelops.domain.side_by_side import side_by_side_markdown

if TYPE_CHECKING:
    from modelops.domain.gates import GateCheck
    from modelops.lifecycle.candidate_evaluation import CandidateEvaluation
    from modelops.lifecycle.dataset import DatasetRecord
    from modelops.lifecycle.taxonomy_change import MappedOffer
    from modelops.stores.registry_records import AdapterVersion

DECIMALS = 4
"""How many decimals a float shows in Dagster's metadata."""

EPOCH_COLUMNS = [
    "epoch",
    "train_loss",
    "validation_accuracy",
    "validation_macro_f1",
    "samples_per_second",
]


def readable(value):
    """``value`` as people read it: a float rounded to :data:`DECIMALS` decimals, inside
    dicts and lists too (JSON metadata); booleans, integers, text and ``MetadataValue``
    objects as they are."""
    if isinstance(value, dg.MetadataValue):
        return value
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
        return round(float(value), DECIMALS)
    if isinstance(value, dict):
        return {key: readable(item) for key, item in value.items()}
    if type(value) in (list, tuple):
        return [readable(item) for item in value]
    return value


def num(value) -> float:
    """A float for the UI's number column, rounded (:func:`readable`); ``None`` shows as
    NaN."""
    return readable(float(value)) if value is not None else float("nan")


def fmt(value) -> str:
    """One table cell: floats to four decimals, anything else as text."""
    return f"{value:.{DECIMALS}f}" if isinstance(value, float) else str(value)


def md_table(rows: list[dict], columns: list[str]) -> str:
    """A Markdown table of ``rows`` with the given columns (missing cells show ``None``)."""
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    body = "".join("| " + " | ".join(fmt(r.get(c)) for c in columns) + " |\n" for r in rows)
    return head + body


def meta_value(value):
    """A check's metadata value: scalars as they are (``None`` as "none"), the rest as
    JSON; floats rounded (:func:`readable`)."""
    if isinstance(value, (int, float, str, bool)) or value is None:
        return readable(value) if value is not None else "none"
    return dg.MetadataValue.json(readable(value))


def link(uri: str) -> dg.MetadataValue:
    """A clickable URL for http(s), a path otherwise (local files, ``s3://``)."""
    if uri.startswith(("http://", "https://")):
        return dg.MetadataValue.url(uri)
    return dg.MetadataValue.path(uri)


def check_result(key: dg.AssetKey, check: GateCheck) -> dg.AssetCheckResult:
    """A gate's verdict as an asset check result. A skipped gate (nothing to compare) is
    not shown as passed: it is a failed check of severity WARN, which does not block,
    its description starting "skipped:" and its metadata ``state: skipped``."""
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=check.name,
        passed=check.passed,
        severity=dg.AssetCheckSeverity.WARN if check.skipped else dg.AssetCheckSeverity.ERROR,
        description=check.description,
        metadata={"state": check.state, **{k: meta_value(v) for k, v in check.metadata.items()}},
    )


def dataset_metadata(record: DatasetRecord) -> dict:
    """A training dataset: its fingerprint, where it is, its split sizes, what was dropped
    or left for review, and the rows per label."""
    stats = record.stats
    counts = [{"label": k, "rows": v} for k, v in stats["label_counts"].items()]
    return readable(
        {
            "fingerprint": record.fingerprint,
            "uri": dg.MetadataValue.path(record.uri),
            "dagster/row_count": stats["rows"],
            "train_rows": stats["train_rows"],
            "validation_rows": stats["validation_rows"],
            "test_rows": stats["test_rows"],
            "duplicates_dropped": stats["duplicates_dropped"],
            "conflicting_rows_dropped": stats["conflicting_rows_dropped"],
            "labels": len(record.labels),
            "taxonomy_version": record.taxonomy_version,
            "review_rows": stats.get("review_rows", 0),
            "retired_rows": stats.get("retired_rows", 0),
            "review_queue": dg.MetadataValue.path(record.review_uri or "none"),
            "feedback_rows": stats.get("feedback_rows", 0),
            "label_counts": dg.MetadataValue.md(md_table(counts, ["label", "rows"])),
        }
    )


def adapter_metadata(version: AdapterVersion) -> dict:
    """A trained adapter: its weights and base, how it was trained (mode, warm start,
    teacher, selected epoch), its training metrics and cost, and its drift calibration."""
    lineage, metrics = version.lineage, version.metrics
    history = lineage.get("history") or []
    return readable(
        {
            "adapter_id": version.id,
            "weights_sha256": version.weights_sha256,
            "artifact_uri": dg.MetadataValue.path(version.artifact_uri),
            "base_model": version.base_model,
            "mode": lineage.get("mode", "full"),
            "warm_start_adapter": (lineage.get("warm_start") or {}).get("adapter_id", "none"),
            "teacher_adapter": (lineage.get("distillation") or {}).get(
                "teacher_adapter_id", "none"
            ),
            "selected_epoch": int(lineage.get("selected_epoch", len(history))),
            "lora_weights_nonzero": bool(lineage.get("lora_nonzero", True)),
            "adapter_method": lineage.get("adapter_method", "lora"),
            "train_rows": int(metrics.get("train_rows") or 0),
            **drift_calibration_metadata(lineage.get("drift_calibration") or {}),
            "train_loss": num(metrics.get("train_loss")),
            "validation_accuracy": num(metrics.get("validation_accuracy")),
            "validation_macro_f1": num(metrics.get("validation_macro_f1")),
            "baseline_test_macro_f1": num(metrics.get("baseline_test_macro_f1")),
            "samples_per_second": num(metrics.get("samples_per_second")),
            **{f"cost_{k}": num(v) for k, v in (lineage.get("cost") or {}).items()},
            "epochs": dg.MetadataValue.md(md_table(history, EPOCH_COLUMNS)) if history else "",
        }
    )


def drift_calibration_metadata(summary: dict) -> dict:
    """The adapter's drift calibration in its metadata: whether the recipe's false-alarm
    rate is reachable with its reference, and the rate its thresholds do hold."""
    if not summary:
        return {"drift_rate_reachable": "no monitoring reference"}
    reachable = bool(summary.get("reachable"))
    note = (
        f"false-alarm rate {summary['rate']:g} of the verdict, bound {summary['rate_bound']:.3g} "
        f"at {summary['confidence']:.0%} confidence, {summary['windows']} null windows"
        + ("" if reachable else f" (needs {summary['windows_needed']}): NOT reachable")
        + "".join(f"; {n}" for n in summary.get("notes", []))
    )
    return readable(
        {
            "drift_rate_reachable": reachable,
            "drift_rate_bound": float(summary["rate_bound"]),
            "drift_calibration": note,
        }
    )


def mapped_metadata(offer: MappedOffer, metric: str) -> dict:
    """What the mapped-candidate step did: the candidate (or "none") and why."""
    return readable(
        {
            "policy": offer.policy,
            "mapped_adapter_id": offer.adapter_id if offer.adapter_id else "none",
            "mapped_from": offer.source_id if offer.source_id else "none",
            "outcome": offer.reason,
            "gates_passed": "n/a" if offer.passed is None else offer.passed,
            "promoted": offer.promoted,
            f"test_{metric}": num(offer.metric),
            "build_seconds": num(offer.build_seconds),
        }
    )


def evaluation_metadata(evaluated: CandidateEvaluation, adapter: dict) -> dict:
    """A candidate's evaluation: its test metrics beside the champion's and the probe's,
    the gates' verdict, the per-label table and confusion matrix, the review queue of its
    dataset (``adapter``: the adapter asset's output), then the mapped candidate, the
    side-by-side of bases and the shadow evidence."""
    outcome = evaluated.outcome
    cand, champ = outcome.candidate, outcome.champion
    png = base64.b64encode(outcome.confusion_png).decode()
    return readable(
        {
            "adapter_id": outcome.adapter_id,
            "accuracy": cand.accuracy,
            "macro_f1": cand.macro_f1,
            "ece": cand.ece,
            "champion_id": outcome.champion_id if outcome.champion_id else "none",
            "champion_compared": outcome.champion_note,
            "review_rows": adapter.get("review_rows", 0),
            "review_queue": dg.MetadataValue.path(adapter.get("review_uri") or "none"),
            "champion_macro_f1": num(champ.macro_f1 if champ else None),
            "baseline_macro_f1": num(outcome.baseline.macro_f1 if outcome.baseline else None),
            "gates_passed": outcome.decision.passed,
            "report": dg.MetadataValue.path(outcome.report_uri),
            "per_label": dg.MetadataValue.md(
                markdown_table(cand, champ, names=("candidate", "champion"))
            ),
            "confusion_matrix": dg.MetadataValue.md(
                f"![confusion matrix](data:image/png;base64,{png})"
            ),
            **versus_metadata(evaluated.versus),
            **side_by_side_metadata(outcome.side_by_side),
            **shadow_metadata(evaluated.shadow),
        }
    )


def champion_metadata(adapter_id: int, entry) -> dict:
    """The champion after the promotion step: ``entry`` is its audit entry, None when the
    adapter already was the champion."""
    previous = (entry.previous_adapter_id or "none") if entry else "unchanged"
    return {"champion_id": adapter_id, "previous_champion_id": previous}


def versus_metadata(versus: dict | None) -> dict:
    """The trained adapter against the mapped candidate, as evaluation metadata."""
    if not versus:
        return {"mapped_candidate": "none"}
    metric = versus["metric"]
    return readable(
        {
            "mapped_candidate": versus["mapped_id"],
            "winner": f"{versus['winner']} ({versus['why']})",
            "winner_id": versus["winner_id"] if versus["winner_id"] else "none",
            "winner_margin": versus["margin"],
            f"mapped_{metric}": versus[f"mapped_{metric}"],
            f"trained_{metric}": versus[f"trained_{metric}"],
            "mapped_seconds": versus["mapped_seconds"],
            "trained_seconds": versus["trained_seconds"],
        }
    )


def side_by_side_metadata(doc: dict | None) -> dict:
    """The candidate beside the champion it was compared with (each on its own base), on
    the same test rows, with their cost: ``side_by_side`` (a markdown table),
    ``base_changed``, ``verdict``, the candidate's cost figures as numbers (plotted by
    the UI across materializations), what the cost gate weighed
    (:func:`cost_gate_metadata`) and, for a distilled candidate, its teacher's scores."""
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
    teacher = doc.get("teacher")
    if teacher:  # a distilled candidate: its teacher on the same rows
        out["teacher_adapter_id"] = teacher["adapter_id"]
        out["teacher_accuracy"] = num(teacher["accuracy"])
        out["teacher_macro_f1"] = num(teacher["macro_f1"])
        out["teacher_inference_cost_ratio"] = num(doc["teacher_cost_ratio"]["seconds"])
    out.update(cost_gate_metadata(doc))
    return readable(out)


def cost_gate_metadata(doc: dict) -> dict:
    """What the ``gain_worth_cost`` gate weighed, from the side by side: the champion's
    measured inference cost, the ratios, and the gain against what the recipe asked
    (``none`` where the gate did not get that far: no champion, not costlier)."""
    gate = doc.get("cost_gate")
    if not gate:
        return {"cost_gate": "off"}
    meta, champ = gate.get("metadata", {}), doc.get("champion") or {}
    state = "skipped" if gate["skipped"] else ("passed" if gate["passed"] else "failed")
    return {
        "cost_gate": state,
        "champion_cost_inference_seconds_per_32": num(
            champ.get("cost", {}).get("inference_seconds_per_32")
        ),
        "inference_cost_ratio": num(meta.get("cost_ratio")),
        "inference_cost_ratio_lower_bound": num(meta.get("cost_ratio_lower_bound")),
        "memory_cost_ratio": num(meta.get("memory_ratio")),
        "costlier": meta.get("costlier", "n/a"),
        "cost_gain": num(meta.get("gain")),
        "cost_gain_lower_bound": num(meta.get("gain_lower_bound")),
        "cost_required_gain": num(meta.get("required_gain")),
    }


def shadow_metadata(shadow: dict | None) -> dict:
    """A candidate's shadow scores on live traffic as evaluation metadata (promotion
    evidence); nothing when ``modelops serve`` logged none for it."""
    if shadow is None:
        return {}
    return readable(
        {
            "shadow_rows": shadow["rows"],
            "shadow_agreement": shadow["agreement"],
            "shadow_candidate_confidence": shadow["candidate_confidence"],
            "shadow_champion_confidence": shadow["champion_confidence"],
            "shadow_champions": ", ".join(str(i) for i in shadow["champion_adapter_ids"]),
            "shadow_window": f"{shadow['first_at']} .. {shadow['last_at']}",
        }
    )
