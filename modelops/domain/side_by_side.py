"""The candidate beside the champion on the same test rows, with what each costs: the
evidence of a base-model change (``docs/runbooks/upgrade-base-model.md``).

:func:`side_by_side` builds a plain JSON document (kept in the evaluation report, the
registry's metrics and the promotion's audit entry); :func:`side_by_side_markdown` renders
it for Dagster's metadata. Pure functions: the numbers come from the evaluation step.
"""

from __future__ import annotations

from modelops.domain.evaluation import Evaluation

COST_FIELDS = (
    "train_wall_seconds",
    "train_cpu_seconds",
    "train_gpu_seconds",
    "peak_rss_bytes",
    "peak_gpu_bytes",
    "latency_seconds_per_32",
    "inference_seconds_per_32",
    "inference_memory_bytes",
    "adapter_bytes",
    "base_bytes",
)
"""Cost fields, in the order the table shows them (a missing one shows as n/a).
``latency_seconds_per_32`` is the scoring of the test rows (by the training step, or the
evaluation when it scored the model); ``inference_seconds_per_32`` and
``inference_memory_bytes`` are what the ``gain_worth_cost`` gate weighed: both models timed
in the evaluation, interleaved, and the bytes of each loaded model
(``modelops.lifecycle.inference_cost``)."""


def model_side(
    adapter_id: int, base_model: str, evaluation: Evaluation, cost: dict, rows: int
) -> dict:
    """One column of the side-by-side: an adapter on its base, scored on ``rows`` rows."""
    return {
        "adapter_id": int(adapter_id),
        "base_model": base_model,
        "rows": int(rows),
        "accuracy": float(evaluation.accuracy),
        "macro_f1": float(evaluation.macro_f1),
        "ece": float(evaluation.ece),
        "per_label_f1": {str(k): float(v["f1"]) for k, v in evaluation.per_label.items()},
        "cost": {k: cost[k] for k in COST_FIELDS if cost.get(k) is not None},
    }


def side_by_side(candidate: dict, champion: dict | None, *, note: str = "") -> dict:
    """The two columns and what changed; ``base_changed`` when the bases differ."""
    return {
        "candidate": candidate,
        "champion": champion,
        "base_changed": bool(champion and champion["base_model"] != candidate["base_model"]),
        "same_rows": bool(champion and champion["rows"] == candidate["rows"]),
        "note": note,
    }


def verdict_sentence(doc: dict, passed: bool, failed_gates: list[str], cost_words: str = "") -> str:
    """What happens to serving after the gates, in one sentence; ``cost_words`` (the
    ``gain_worth_cost`` check's description) follows it after "cost:"."""
    cand, champ = doc["candidate"], doc.get("champion")
    head = f"adapter {cand['adapter_id']} on {cand['base_model']}"
    tail = f". Cost: {cost_words}" if cost_words else ""
    if passed:
        return f"{head} passed every gate and may be promoted{tail}"
    keeps = (
        f"; champion {champ['adapter_id']} on {champ['base_model']} keeps serving"
        if champ
        else "; nothing is promoted"
    )
    return f"{head} failed gate(s) {', '.join(failed_gates) or 'n/a'}{keeps}{tail}"


def _fmt(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _bytes(value) -> str:
    if value is None:
        return "n/a"
    return f"{value / 2**20:.1f} MiB"


def side_by_side_markdown(doc: dict) -> str:
    """A markdown table: metrics, per-label F1 and cost, candidate beside champion (and,
    for a distilled candidate, beside its teacher)."""
    cand, champ = doc["candidate"], doc.get("champion") or {}
    teacher = doc.get("teacher")
    columns = [cand, champ] + ([teacher] if teacher else [])
    head = f"| | candidate {cand['adapter_id']} ({cand['base_model']}) | " + (
        f"champion {champ['adapter_id']} ({champ['base_model']}) |" if champ else "champion |"
    )
    if teacher:
        head += f" teacher {teacher['adapter_id']} ({teacher['recipe']}, {teacher['base_model']}) |"
    lines = [head, "|---|" + "---:|" * len(columns)]

    def row(name, values):
        lines.append(f"| {name} | " + " | ".join(str(v) for v in values) + " |")

    row("test rows", [c.get("rows", "n/a") for c in columns])
    for metric in ("accuracy", "macro_f1", "ece"):
        row(metric, [_fmt(c.get(metric)) for c in columns])
    for label in sorted({k for c in columns for k in c.get("per_label_f1", {})}):
        row(f"F1 {label}", [_fmt(c.get("per_label_f1", {}).get(label)) for c in columns])
    for field in COST_FIELDS:
        values = [c.get("cost", {}).get(field) for c in columns]
        if all(v is None for v in values):
            continue
        show = _bytes if field.endswith("_bytes") else _fmt
        row(field, [show(v) for v in values])
    lines.extend(_ratio_lines(doc))
    return "\n".join(lines)


def _ratio_lines(doc: dict) -> list[str]:
    """The cost ratios and notes under the table."""
    lines = []
    ratio = doc.get("cost_ratio")
    if ratio:
        memory = ratio.get("memory")
        lines.append("")
        lines.append(
            f"Inference cost, candidate / champion: {ratio['seconds']:.2f}x seconds per 32 "
            f"texts ({ratio['confidence']:.0%} lower bound {ratio['seconds_lower_bound']:.2f}x)"
            + (f", {memory:.2f}x memory" if memory is not None else "")
            + f"; {ratio['measured']}."
        )
    taught = doc.get("teacher_cost_ratio")
    if taught and taught.get("seconds") is not None:
        memory = taught.get("memory")
        lines.append("")
        lines.append(
            f"Inference cost, teacher / candidate: {taught['seconds']:.2f}x seconds per 32 "
            "texts"
            + (f", {memory:.2f}x memory" if memory is not None else "")
            + " (timed in this evaluation, interleaved)."
        )
    for note in (doc.get("note"), doc.get("teacher_note")):
        if note:
            lines.append("")
            lines.append(note)
    return lines
