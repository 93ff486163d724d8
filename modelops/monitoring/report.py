"""Evidently's HTML report of a production window against the reference, for people to read.

Production texts are hostile: the page is stored escaped (``modelops.monitoring.html_safety``).

The same ``ValueDrift`` per column as the ``report`` engine of
``modelops.monitoring.evidently_scores``, with tests against the calibrated thresholds.
"""

from __future__ import annotations

from pathlib import Path

from modelops.monitoring.calibration import Calibration
from modelops.monitoring.evidently_scores import report_with_text_fallback
from modelops.monitoring.html_safety import safe_report_html
from modelops.monitoring.signals import Projection, Window, column_frames


def report_html(
    reference: Window,
    current: Window,
    path: Path,
    *,
    vocabulary: set[str] | frozenset[str] | None = None,
    pca: Projection | None = None,
    calibration: Calibration | None = None,
    thresholds: dict[str, float] | None = None,
) -> Path:
    """Write Evidently's HTML report of ``current`` against ``reference`` to ``path``.

    One ``ValueDrift`` per column (text, text length, OOV rate, embedding components,
    prediction, confidence, label), with tests against ``thresholds`` (those of the verdict),
    else the ``calibration``'s (Evidently's defaults without either). No ``EmbeddingsDrift``: its
    t-SNE plot is slow. The page is written with its data escaped
    (``modelops.monitoring.html_safety``): production texts in it stay data, never markup.
    Returns ``path``.
    """
    ref, cur, kinds = column_frames(reference, current, vocabulary, pca)
    if thresholds is None and calibration is not None:
        thresholds = calibration.thresholds
    snapshot, _ = report_with_text_fallback(ref, cur, kinds, thresholds, include_tests=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    page = safe_report_html(snapshot.get_html_str(as_iframe=False), source=path)
    path.write_text(page, encoding="utf-8")
    return path
