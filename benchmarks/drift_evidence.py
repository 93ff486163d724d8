"""``drift_banking77.py --evidence`` (issue 24): the champion's streams through
``modelops.monitoring.check.check_window`` window by window, and out-of-scope AUROC.

Each stream (``banking77_streams``) is checked window by window as a logged window would be
(columns id, text, predicted_label, confidence, and ``oos_score``/``out_of_scope`` when the
champion's bundle has an out-of-scope model), with a fresh accumulating
``EvidenceState`` per stream when ``check_window`` takes ``evidence=``; without it, each
window is decided alone and the JSON says ``"evidence": false``. A window "alarms" when
its decision is not ``ok`` (``warn`` or ``retrain``). Row ids run on within a stream.

Every test.csv row is scored once (``banking77_features``): the check's frozen-base
embeddings are looked up from that pass rather than recomputed per window (the same
function on the same texts; only the batch padding differs), which keeps 200-odd checks
affordable on a shared CPU.

Last JSON keys (issue 24): ``false_alarms_clean`` (alarming windows of the clean stream),
``retraining_runs_mild_shift`` (``retrain`` decisions in the mild-shift stream),
``smallest_share_detected_within_3`` (smallest novel share whose every replicate stream
alarmed within its first 3 windows), ``estimate_abs_error_novel`` (mean over the novel
streams of |mean over the stream's windows of estimated - measured accuracy|),
``oos_auroc`` (the bundle's out-of-scope score; without one, today's novelty score
``base_nn``, named in ``oos_source``) and ``oos_auroc_confidence_baseline`` (1 - max
softmax).
"""

from __future__ import annotations

import inspect
import multiprocessing
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

import modelops.monitoring.check as check_module
from banking77_features import score_rows
from banking77_streams import build_streams
from modelops.lifecycle.dataset import load_dataset
from modelops.lifecycle.fetch import FetchedAdapter
from modelops.monitoring.reference import load_bundle
from oos_candidates import Mahalanobis, auroc_table, candidate_scores, markdown, standardised_sums

COMBINATIONS = [
    ("knn1", "msp"),
    ("knn5", "msp"),
    ("knn10", "msp"),
    ("mahalanobis", "msp"),
    ("knn5", "energy"),
    ("mahalanobis", "knn5"),
    ("base_nn", "msp"),
    ("knn1", "max_logit"),
    ("knn1", "energy"),
    ("knn1", "base_nn"),
    ("knn1", "base_nn", "msp"),
    ("knn1", "base_nn", "max_logit"),
]


class TrainPart:
    """The training rows as scored (features, frozen-base embeddings) and the class-means
    model built on them."""

    def __init__(self, scored, labels: np.ndarray) -> None:
        self.scored = scored
        self.mahalanobis = Mahalanobis(scored.features, labels)


def out_of_scope_model(bundle, recipe, train, held, held_splits, held_correct, emit):
    """The bundle's out-of-scope model; for a champion trained before it existed (or before
    it kept the novelty test's rank reference), one fitted as training would fit it
    (``modelops.monitoring.out_of_scope``) from the cached features: training rows as
    reference, validation rows to calibrate, test split rows to measure. None where the
    platform has no such model."""
    stored = getattr(bundle, "out_of_scope", None)
    if stored is not None and getattr(stored, "rank_edges", 0) is not None:
        return stored, "bundle"
    try:
        from modelops.monitoring.out_of_scope import OutOfScopeModel
    except ImportError:
        return None, None
    settings = recipe.monitoring.out_of_scope
    calibrate_on = held_splits == "validation"
    model = OutOfScopeModel.fit(
        train.scored.features,
        held.features[calibrate_on],
        false_flag_rate=settings.false_flag_rate,
        k=settings.k,
        max_reference_rows=settings.max_reference_rows,
        seed=recipe.training.seed,
        measure_features=held.features[~calibrate_on],
        measure_correct=held_correct[~calibrate_on],
        method=settings.method,
        calibration_confidence=held.probs[calibrate_on].max(1),
        measure_confidence=held.probs[~calibrate_on].max(1),
    )
    emit(f"out-of-scope model built from cached features: {model.to_dict()}")
    bundle.out_of_scope = model
    return model, "built from the cached features of the stored adapter"


def fresh_state(champion, first_id: int):
    """A new ``EvidenceState`` (``modelops.monitoring.evidence``), or None without it."""
    try:
        from modelops.monitoring.evidence import EvidenceState
    except ImportError:
        return None
    now = datetime.now(UTC)
    try:
        return EvidenceState.fresh(champion.id, first_id, now.isoformat(timespec="seconds"))
    except (TypeError, AttributeError, ValueError):
        return EvidenceState.fresh(champion.id, first_id, now)


def run_stream(stream, pool, bundle, base, recipe, oos, champion, emit) -> dict:
    """Check the stream's windows in order; one record per window."""
    use_evidence = "evidence" in inspect.signature(check_module.check_window).parameters
    state = fresh_state(champion, 1) if use_evidence else None
    use_evidence = state is not None
    records, next_id = [], 1
    for j, idx in enumerate(stream.windows):
        frame = pd.DataFrame(
            {
                "id": np.arange(next_id, next_id + len(idx)),
                "text": [pool["texts"][i] for i in idx],
                "predicted_label": [pool["predicted"][i] for i in idx],
                "confidence": pool["confidence"][idx],
            }
        )
        next_id += len(idx)
        if oos is not None:
            frame["oos_score"] = pool["oos_scores"][idx]
            frame["out_of_scope"] = oos.flags(pool["oos_scores"][idx])
        started = time.perf_counter()
        kwargs = {"evidence": state} if use_evidence else {}
        check = check_module.check_window(bundle, frame, base=base, recipe=recipe, **kwargs)
        seconds = time.perf_counter() - started
        if use_evidence:
            state = check.evidence
        impact = check.impact
        record = {
            "window": j,
            "alarm": check.decision.action != "ok",
            "action": check.decision.action,
            "window_drifted": check.verdict.drifted,
            "fired": check.verdict.fired,
            "estimated_accuracy": impact.estimated_accuracy,
            "unadjusted_accuracy": impact.unadjusted_accuracy,
            "estimated_drop": impact.estimated_drop,
            "estimated_drop_interval": list(impact.estimated_drop_interval or []),
            "measured_accuracy": float(pool["correct"][idx].mean()),
            "novel_share": impact.novel_share,
            "novel_rows_true": int(pool["is_new"][idx].sum()),
            "seconds": seconds,
        }
        if use_evidence and state is not None and hasattr(state, "to_dict"):
            record["evidence"] = state.to_dict()
        records.append(record)
    alarms = [r["window"] for r in records if r["alarm"]]
    summary = {
        "name": stream.name,
        "kind": stream.kind,
        "share": stream.share,
        "windows": len(records),
        "alarms": len(alarms),
        "first_alarm": alarms[0] if alarms else None,
        "retrain": sum(r["action"] == "retrain" for r in records),
        "measured_accuracy_mean": statistics.mean(r["measured_accuracy"] for r in records),
        "estimated_accuracy_mean": statistics.mean(r["estimated_accuracy"] for r in records),
        "estimate_error_mean": statistics.mean(
            r["estimated_accuracy"] - r["measured_accuracy"] for r in records
        ),
        "estimate_abs_error_per_window": statistics.mean(
            abs(r["estimated_accuracy"] - r["measured_accuracy"]) for r in records
        ),
        "evidence": use_evidence,
        "records": records,
    }
    emit(
        f"{stream.name}: {len(alarms)}/{len(records)} windows alarmed (first "
        f"{summary['first_alarm']}), {summary['retrain']} retrain; accuracy measured "
        f"{summary['measured_accuracy_mean']:.4f}, estimated "
        f"{summary['estimated_accuracy_mean']:.4f}"
    )
    return summary


_SHARED: dict = {}


def _run_one(i: int) -> dict:
    """Stream ``i`` of the state ``run_evidence`` put in ``_SHARED`` (no pickling)."""
    streams, *rest = _SHARED["args"]
    return run_stream(streams[i], *rest)


def run_evidence(plat, loaded, champion, test: pd.DataFrame, held_out, args, emit) -> dict:
    """Everything ``--evidence`` measures; the issue's keys at the top level."""
    recipe = loaded.recipe
    max_length = recipe.training.max_length
    cache = args.cache or (args.home / "features" if args.home else None)
    with FetchedAdapter(plat, champion) as fetched:
        bundle = load_bundle(fetched.path)
    if bundle is None:
        raise SystemExit("the champion has no monitoring bundle (too few held-out rows)")
    base = plat.resolve_base_by_sha256(champion.base_model_sha256)
    frame = load_dataset(plat, champion.lineage["dataset"]).frame
    train_rows = frame[frame["split"] == "train"]
    held_rows = frame[frame["split"] != "train"].reset_index(drop=True)

    texts = test["text"].tolist()
    scored = score_rows(plat, champion, texts, max_length, cache, "testcsv", emit)
    train_scored = score_rows(
        plat,
        champion,
        train_rows["text"].tolist(),
        max_length,
        cache,
        "train",
        emit,
        with_base=False,
    )
    held = score_rows(plat, champion, held_rows["text"].tolist(), max_length, cache, "held", emit)
    labels = np.array(scored.labels)
    probs = scored.probs
    predicted = labels[probs.argmax(1)]
    truth = test["label"].to_numpy()
    is_new = test["label"].isin(held_out).to_numpy()
    correct = predicted == truth
    held_splits = held_rows["split"].to_numpy()
    held_correct = labels[held.logits.argmax(1)] == held_rows["label"].to_numpy()
    accuracy = {
        "validation_metric": champion.metrics.get("validation_accuracy"),
        "validation_split": float(held_correct[held_splits == "validation"].mean()),
        "test_split": float(held_correct[held_splits == "test"].mean()),
        "test_csv_in_scope": float(correct[~is_new].mean()),
        "reference_accuracy_monitoring": bundle.calibrator.fitted_accuracy,
    }
    emit(f"champion accuracy: {accuracy}")

    emit("out-of-scope candidates")
    train = TrainPart(train_scored, train_rows["label"].to_numpy())
    reference_base = bundle.reference.embeddings
    test_scores = candidate_scores(scored, train, reference_base)
    validation = held.take(np.flatnonzero(held_splits == "validation"))
    calibration = candidate_scores(validation, train, reference_base)
    test_scores.update(standardised_sums(test_scores, calibration, COMBINATIONS))
    calibration.update(standardised_sums(calibration, calibration, COMBINATIONS))
    oos, oos_origin = out_of_scope_model(
        bundle, recipe, train, held, held_splits, held_correct, emit
    )
    if oos is not None:
        test_scores["platform_out_of_scope"] = oos.scores(scored.features, scored.probs.max(1))
        calibration["platform_out_of_scope"] = oos.scores(
            validation.features, validation.probs.max(1)
        )
    table = auroc_table(test_scores, is_new, calibration)
    if args.oos_notes:
        header = (
            f"# Out-of-scope AUROC, Banking77 (issue 24), "
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n\n"
            f"Champion adapter {champion.id} ({champion.metrics.get('train_rows')} training rows, "
            f"67 intents; validation accuracy {accuracy['validation_split']:.4f}). Positives: "
            f"{int(is_new.sum())} test.csv rows of the 10 held-out intents; negatives: "
            f"{int((~is_new).sum())} in-scope test.csv rows. kNN and Mahalanobis reference: "
            f"the {len(train_rows)} training rows' adapter features; z-scores and held-out "
            f"thresholds from the {int((held_splits == 'validation').sum())} validation rows. "
            f"Command: `{args.command}`"
        )
        Path(args.oos_notes).write_text(markdown(table, header), encoding="utf-8")
        emit(f"wrote {args.oos_notes}")
    for row in table[:6]:
        emit(f"oos {row['score']}: AUROC {row['auroc']:.4f}")

    pool = {
        "texts": texts,
        "predicted": predicted.tolist(),
        "confidence": probs.max(1),
        "correct": correct,
        "is_new": is_new,
        "oos_scores": test_scores.get("platform_out_of_scope"),
    }
    embedded = dict(zip(texts, scored.base, strict=True))

    def lookup(_base, rows, _max_length):
        return np.stack([embedded[t] for t in rows])

    check_module.base_embeddings = lookup  # the pool's embeddings, see the module docstring
    streams, stream_info = build_streams(
        labels=truth,
        correct=correct,
        is_new=is_new,
        validation_accuracy=accuracy["validation_split"],
        size=args.batch_size,
        clean=args.clean,
        mild=args.mild,
        shares=args.novel_shares,
        replicates=args.novel_replicates,
        novel_windows=args.novel_windows,
        seed=args.seed,
    )
    emit(f"streams: {stream_info}")
    _SHARED["args"] = (streams, pool, bundle, base, recipe, oos, champion, emit)
    if args.workers > 1:  # streams are independent; forked workers inherit the state above
        with multiprocessing.get_context("fork").Pool(args.workers) as workers:
            results = workers.map(_run_one, range(len(streams)), chunksize=1)
    else:
        results = [_run_one(i) for i in range(len(streams))]
    clean = next(r for r in results if r["kind"] == "clean")
    mild = next(r for r in results if r["kind"] == "mild")
    novel = [r for r in results if r["kind"] == "novel"]
    by_share = {}
    for share in args.novel_shares:
        runs = [r for r in novel if r["share"] == share]
        within = [r["first_alarm"] is not None and r["first_alarm"] <= 2 for r in runs]
        by_share[f"{share:g}"] = {
            "replicates": len(runs),
            "detected_within_3": sum(within),
            "first_alarms": [r["first_alarm"] for r in runs],
            "retrain": sum(r["retrain"] for r in runs),
            "estimate_error_mean": statistics.mean(r["estimate_error_mean"] for r in runs),
            "measured_accuracy_mean": statistics.mean(r["measured_accuracy_mean"] for r in runs),
        }
    detected = [float(s) for s, v in by_share.items() if v["detected_within_3"] == v["replicates"]]
    auroc = {row["score"]: row["auroc"] for row in table}
    oos_name = "platform_out_of_scope" if oos is not None else "base_nn"
    return {
        "false_alarms_clean": clean["alarms"],
        "retraining_runs_mild_shift": mild["retrain"],
        "smallest_share_detected_within_3": min(detected) if detected else None,
        "estimate_abs_error_novel": statistics.mean(abs(r["estimate_error_mean"]) for r in novel),
        "oos_auroc": auroc[oos_name],
        "oos_auroc_confidence_baseline": auroc["msp"],
        "evidence": clean["evidence"],
        "oos_source": oos_name + (f" ({oos_origin})" if oos_origin else ""),
        "clean_windows": clean["windows"],
        "mild_windows": mild["windows"],
        "mild_alarms": mild["alarms"],
        "mild_measured_accuracy": mild["measured_accuracy_mean"],
        "clean_measured_accuracy": clean["measured_accuracy_mean"],
        "novel_by_share": by_share,
        "estimate_abs_error_novel_per_window": statistics.mean(
            r["estimate_abs_error_per_window"] for r in novel
        ),
        "accuracy": accuracy,
        "stream_construction": stream_info,
        "oos_table": table,
        "oos_model": oos.to_dict() if oos is not None else None,
        "streams": results,
        "check_seconds_mean": statistics.mean(
            rec["seconds"] for r in results for rec in r["records"]
        ),
    }
