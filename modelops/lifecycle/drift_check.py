"""The drift check step: the newest production window of a recipe against its serving
champion's monitoring reference; the HTML report goes to the artifact store."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from modelops.config.errors import ModelopsError
from modelops.config.progress import Emit
from modelops.lifecycle.fetch import FetchedAdapter, adapter_features
from modelops.monitoring.check import check_window
from modelops.monitoring.evidence import EvidenceState
from modelops.monitoring.impact import Decision, Impact
from modelops.monitoring.reference import load_bundle
from modelops.monitoring.verdict import Verdict

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DriftResult:
    """The verdict on one production window, with the window and the adapter it is of.

    The verdict is monitoring's own (``modelops.monitoring.verdict.Verdict``); the rest
    says which window and adapter it is of, and where its HTML report is."""

    verdict: Verdict
    """Drifted or not, the signals that fired, scores, thresholds, estimated accuracy and
    the one-sentence reason."""
    adapter_id: int
    """The serving champion the window was checked against."""
    taxonomy_version: str
    rows: int
    labelled_rows: int
    first_id: int
    last_id: int
    """The production log ids the window spans."""
    report_uri: str
    """The HTML report in the artifact store."""
    window_size: int
    """The window size the adapter's thresholds were calibrated for."""
    report_key: str = ""
    """The report's key in the artifact store (``drift/<recipe>/adapter-N/window-A-B.html``),
    which ``modelops.serving.reports`` serves over HTTP."""
    impact: Impact | None = None
    """Estimated (and, with feedback, measured) accuracy and its drop, with intervals."""
    decision: Decision | None = None
    """The recipe's retraining policy applied to the accumulated evidence: ``retrain``,
    ``warn`` or ``ok``."""
    evidence: EvidenceState | None = None
    """The evidence accumulated for the champion, this window included (as stored)."""

    @property
    def alarm(self) -> bool:
        """The accumulated alarm: the decision on the evidence is not ``ok``. Without
        evidence (or decision), the window's own verdict."""
        if self.evidence is None or self.decision is None:
            return self.verdict.drifted
        return self.decision.action != "ok"


def run_drift_check(platform, loaded, emit: Emit = log.info) -> DriftResult:
    """The newest production window of a recipe against its serving champion.

    Returns the verdict with the window's ids, the adapter and the stored HTML report's
    URI. Raises when there is no serving adapter or fewer rows than the window size.
    """
    champion, bundle = _champion_reference(platform, loaded)
    # Thresholds hold for the window size they were calibrated at: use that one.
    size = bundle.calibration.window_size
    if size != loaded.recipe.monitoring.window_size:
        emit(
            f"adapter {champion.id} was calibrated for windows of {size} rows; the recipe now "
            f"asks {loaded.recipe.monitoring.window_size} (takes effect with the next adapter)"
        )
    window = _labelled_window(platform.production_log, loaded.name, size)
    stored, evidence = stored_evidence(platform, loaded.name, champion.id, window, emit)
    check, key, uri = _check_and_store(platform, loaded, champion, bundle, window, evidence)
    verdict = check.verdict
    emit(f"drift check of rows {check.first_id}-{check.last_id}: {verdict.reason}")
    if check.evidence is not None:
        _save_evidence(platform, loaded.name, check.evidence, stored, emit)
    if check.decision is not None:
        emit(check.decision.sentence)
    return DriftResult(
        verdict=verdict,
        adapter_id=champion.id,
        taxonomy_version=champion.taxonomy_version,
        rows=check.rows,
        labelled_rows=check.labelled_rows,
        first_id=check.first_id,
        last_id=check.last_id,
        report_uri=uri,
        window_size=size,
        report_key=key,
        impact=check.impact,
        decision=check.decision,
        evidence=check.evidence,
    )


def stored_evidence(platform, recipe: str, adapter_id: int, window, emit: Emit):
    """The recipe's stored evidence (or None) and the state this check goes on from: the
    stored one while ``adapter_id`` serves, else a fresh one from the first row of the
    window it served (a new champion resets the evidence)."""
    stored = platform.drift_evidence.load(recipe)
    note = ""
    if stored is not None:
        try:
            state = EvidenceState.from_dict(stored.state)
        except ModelopsError as exc:
            note = f"the stored evidence was unreadable ({exc}): evidence restarted"
            emit(note)
        else:
            if state.adapter_id == adapter_id:
                return stored, state
            note = f"new champion: adapter {adapter_id} replaced {state.adapter_id}"
    ours = window[window["adapter_id"] == adapter_id] if "adapter_id" in window else window
    if not len(ours):  # it has served none of these rows yet: its evidence starts after them
        first_id, at = int(window["id"].max()) + 1, datetime.now(UTC)
    else:
        row = ours.loc[ours["id"].idxmin()]
        first_id = int(row["id"])
        at = row["at"] if "at" in ours and row["at"] == row["at"] else datetime.now(UTC)
    started = at.isoformat() if hasattr(at, "isoformat") else str(at)
    return stored, EvidenceState.fresh(adapter_id, first_id, started, note=note)


def _save_evidence(platform, recipe: str, state: EvidenceState, stored, emit: Emit) -> None:
    """Store the new state unless another drift check stored one since it was loaded (its
    rows stay above the stored ``last_id``: the next check counts them)."""
    expected = None if stored is None else stored.version
    if not platform.drift_evidence.save(recipe, state.to_dict(), expected_version=expected):
        emit(
            f"drift evidence of {recipe!r} changed while this check ran (another check "
            "stored first): this window's evidence is not stored; the next check counts its rows"
        )


def _champion_reference(platform, loaded):
    """The serving champion and its monitoring reference; raises when either is missing."""
    champion = platform.registry.alias(loaded.name, "champion")
    if champion is None:
        raise ModelopsError(f"recipe {loaded.name!r} has no serving adapter to monitor")
    with FetchedAdapter(platform, champion) as fetched:
        bundle = load_bundle(fetched.path)
    if bundle is None:
        raise ModelopsError(f"adapter {champion.id} was trained without a monitoring reference")
    return champion, bundle


def _labelled_window(plog, recipe: str, size: int):
    """The newest ``size`` predictions, with the feedback label of each where there is one
    (``true_label``, the last given); raises when the log holds fewer rows."""
    window = plog.predictions(recipe, newest=True, limit=size)
    if len(window) < size:
        raise ModelopsError(
            f"recipe {recipe!r}: {len(window)} production rows, a window needs {size}"
        )
    labels = plog.labels_for(recipe, window["id"].astype(int).tolist())
    if labels:
        window = window.assign(true_label=[labels.get(int(i)) for i in window["id"]])
    return window


def _check_and_store(platform, loaded, champion, bundle, window, evidence):
    """Check ``window`` on the champion's own base, adding it to ``evidence``; store the
    HTML report once under ``drift/<recipe>/adapter-N/window-A-B.html``. Returns the
    check, the key and its URI."""
    base = platform.resolve_base_by_sha256(champion.base_model_sha256)
    with tempfile.TemporaryDirectory(prefix="drift-") as tmp:
        check = check_window(
            bundle,
            window,
            base=base,
            recipe=loaded.recipe,
            report_path=Path(tmp) / "report.html",
            evidence=evidence,
            features=partial(adapter_features, platform, champion, max_length=bundle.max_length),
        )
        window_name = f"window-{check.first_id}-{check.last_id}"
        key = f"drift/{loaded.name}/adapter-{champion.id}/{window_name}.html"
        uri = (
            platform.store.uri_for(key)
            if platform.store.exists(key)
            else platform.store.put_file(key, check.report_path).uri
        )
    return check, key, uri
