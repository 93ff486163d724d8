"""The alarm protocol of ``drift_banking77.py`` (issue 13): clean windows from test.csv
against the champion's reference from train.csv, detection at small novel-intent shares,
retraining runs by the recipe's policy, and the error of the accuracy estimate.

Each test.csv row is embedded by the frozen base and scored by the champion once; a window is
then rows of those, checked exactly as ``modelops.monitoring.check.check_window`` checks a
logged window (``signal_scores``, ``verdict`` over the recipe's signals, ``assess``,
``decide_retraining``), without feedback labels and without writing the HTML report.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

import numpy as np
import pandas as pd

from modelops.lifecycle.fetch import FetchedAdapter, predict_with
from modelops.monitoring.calibration import calibrate
from modelops.monitoring.evidently_scores import signal_scores
from modelops.monitoring.impact import assess, decide_retraining
from modelops.monitoring.novelty import novel_rows
from modelops.monitoring.reference import base_embeddings, load_bundle
from modelops.monitoring.signals import Window
from modelops.monitoring.verdict import verdict


def score_pool(plat, champion, rows: pd.DataFrame, max_length: int):
    """The bundle, and every row's embedding, prediction and confidence, computed once."""
    with FetchedAdapter(plat, champion) as fetched:
        bundle = load_bundle(fetched.path)
        probs, labels = predict_with(plat, fetched, rows["text"].tolist(), max_length)
    if bundle is None:
        raise SystemExit("the champion has no monitoring bundle (too few held-out rows)")
    base = plat.resolve_base_by_sha256(champion.base_model_sha256)
    embeddings = base_embeddings(base, rows["text"].tolist(), bundle.max_length)
    pool = Window(
        texts=rows["text"].tolist(),
        predicted=[labels[i] for i in probs.argmax(1)],
        confidence=probs.max(1),
        embeddings=embeddings,
    )
    return bundle, pool


def recalibrate(plat, champion, frame: pd.DataFrame, recipe, bundle, emit):
    """The champion's calibration again with the current code, from the same holdout
    ``build_bundle`` uses (held-out rows of ``frame``, the half whose text hash is odd)."""
    held = frame[frame["split"] != "train"].reset_index(drop=True)
    with FetchedAdapter(plat, champion) as fetched:
        probs, labels = predict_with(plat, fetched, held["text"].tolist(), bundle.max_length)
    base = plat.resolve_base_by_sha256(champion.base_model_sha256)
    odd = np.array([int(h[-1], 16) % 2 == 1 for h in held["text_sha256"]])
    holdout = Window(
        texts=held["text"].tolist(),
        predicted=[labels[i] for i in probs.argmax(1)],
        confidence=probs.max(1),
        embeddings=base_embeddings(base, held["text"].tolist(), bundle.max_length),
        labels=held["label"].tolist(),
    ).take(np.flatnonzero(odd))
    settings = recipe.monitoring
    return calibrate(
        bundle.reference,
        holdout,
        window_size=settings.window_size,
        false_alarm_rate=settings.false_alarm_rate,
        n_bootstrap=settings.n_bootstrap,
        confidence=settings.confidence,
        signals=settings.signals,
        seed=recipe.training.seed,
        vocabulary=bundle.vocabulary,
        pca=bundle.projection,
        emit=emit,
    )


def check(bundle, recipe, pool: Window, idx: np.ndarray, truth: np.ndarray) -> dict:
    """One window, as ``check_window`` checks it (no feedback): verdict, impact, decision."""
    current = pool.take(idx)
    scores = signal_scores(
        bundle.reference, current, vocabulary=bundle.vocabulary, pca=bundle.projection
    )
    novel, by_chance = novel_rows(current.embeddings, bundle.reference.embeddings)
    impact = assess(
        bundle.calibrator,
        current.confidence,
        predicted=current.predicted,
        labels=None,
        known_labels=set(),
        confidence=bundle.calibration.confidence,
        novel=novel,
        novel_by_chance=by_chance,
    )
    estimate = impact.estimated_accuracy
    result = verdict(
        scores,
        bundle.calibration,
        signals=[s for s in recipe.monitoring.signals if s in scores],
        estimated_accuracy=estimate,
        min_accuracy=recipe.monitoring.min_estimated_accuracy,
    )
    decision = decide_retraining(result, impact, recipe.retraining)
    measured = float(np.mean(np.asarray(current.predicted) == truth[idx]))
    return {
        "drifted": result.drifted,
        "fired": result.fired,
        "action": decision.action,
        "estimated_accuracy": estimate,
        "estimated_interval": list(impact.estimated_interval),
        "estimated_drop": impact.estimated_drop,
        "measured_accuracy": measured,
        "unadjusted_accuracy": impact.unadjusted_accuracy,
        "novel_share": impact.novel_share,
        "scores": {k: round(v, 4) for k, v in result.scores.items()},
        "reason": result.reason,
    }


def run_alarms(
    plat,
    loaded,
    champion,
    test: pd.DataFrame,
    held_out: list[str],
    args,
    emit: Callable[[str], None],
    dataset_frame: pd.DataFrame | None = None,
) -> dict:
    """100 clean windows, then drifted streams at each novel-intent share. With
    ``dataset_frame`` (the champion's dataset), the champion's calibration is redone with
    the current code first (``--workspace --recalibrate``)."""
    recipe = loaded.recipe
    size = args.batch_size
    emit(f"scoring and embedding the {len(test)} test.csv rows once")
    bundle, pool = score_pool(plat, champion, test, recipe.training.max_length)
    if dataset_frame is not None:
        emit("recalibrating the champion's drift thresholds with the current code")
        bundle.calibration = recalibrate(plat, champion, dataset_frame, recipe, bundle, emit)
    truth = test["label"].to_numpy()
    is_new = test["label"].isin(held_out).to_numpy()
    known_idx, new_idx = np.flatnonzero(~is_new), np.flatnonzero(is_new)
    rng = np.random.default_rng(args.seed)
    clean = []
    for i in range(args.clean):
        clean.append(check(bundle, recipe, pool, rng.choice(known_idx, size, replace=False), truth))
        if clean[-1]["drifted"] or (i + 1) % 20 == 0:
            emit(f"clean window {i}: {clean[-1]['reason']} -> {clean[-1]['action']}")
    streams = {}
    for share in args.shares:
        n_new = round(share * size)
        order = rng.permutation(new_idx)
        windows = []
        for j in range(args.drifted):
            novel = order[(j * n_new) % len(order) :][:n_new]
            old = rng.choice(known_idx, size - len(novel), replace=False)
            windows.append(check(bundle, recipe, pool, np.concatenate([old, novel]), truth))
        detected = [j for j, w in enumerate(windows) if w["drifted"]]
        streams[f"{share:g}"] = {
            "novel_rows_per_window": n_new,
            "windows": windows,
            "detected": len(detected),
            "delay": detected[0] if detected else None,
            "retraining_runs": sum(w["action"] == "retrain" for w in windows),
            "estimate_error_mean": statistics.mean(
                w["estimated_accuracy"] - w["measured_accuracy"] for w in windows
            ),
            "unadjusted_error_mean": statistics.mean(
                w["unadjusted_accuracy"] - w["measured_accuracy"] for w in windows
            ),
        }
        emit(
            f"share {share:g}: {len(detected)}/{args.drifted} windows drifted, first at "
            f"{streams[f'{share:g}']['delay']}, {streams[f'{share:g}']['retraining_runs']} "
            f"retrain decisions, estimate - measured "
            f"{streams[f'{share:g}']['estimate_error_mean']:+.3f} (unadjusted "
            f"{streams[f'{share:g}']['unadjusted_error_mean']:+.3f})"
        )
    within = [float(s) for s, r in streams.items() if r["delay"] is not None and r["delay"] <= 2]
    guarantee = bundle.calibration.joint(
        [s for s in recipe.monitoring.signals if s in bundle.calibration.null_scores]
    )
    return {
        "clean_windows": len(clean),
        "false_alarms": sum(w["drifted"] for w in clean),
        "retraining_runs_clean": sum(w["action"] == "retrain" for w in clean),
        "retraining_runs_drifted": {s: r["retraining_runs"] for s, r in streams.items()},
        "detection_delay_windows": {s: r["delay"] for s, r in streams.items()},
        "smallest_share_detected_within_3": min(within) if within else None,
        "estimate_error_drifted": {s: r["estimate_error_mean"] for s, r in streams.items()},
        "estimate_error_clean": statistics.mean(
            w["estimated_accuracy"] - w["measured_accuracy"] for w in clean
        ),
        "unadjusted_error_drifted": {s: r["unadjusted_error_mean"] for s, r in streams.items()},
        "unadjusted_error_clean": statistics.mean(
            w["unadjusted_accuracy"] - w["measured_accuracy"] for w in clean
        ),
        "measured_accuracy_clean": statistics.mean(w["measured_accuracy"] for w in clean),
        "fired_clean": sorted({s for w in clean for s in w["fired"]}),
        "calibration": {
            **guarantee.to_dict(),
            "holdout_rows": bundle.calibration.holdout_rows,
            "reference_rows": bundle.calibration.reference_rows,
        },
        "reference_accuracy": bundle.calibrator.fitted_accuracy,
        "streams": streams,
        "clean": clean,
    }
