"""What the HTTP service writes to the production log: predictions (with the base that
answered), feedback by the service's prediction id or the sender's reference, and
shadow scores of candidates; each batch in one transaction.

Rows come as plain JSON-able dicts (they may have waited in the on-disk buffer of
:mod:`modelops.serving.prediction_buffer`), each with a ``kind``:

- ``prediction``: the fields of :class:`~modelops.stores.production_log.PredictionRecord`
  plus ``base_model`` and ``at`` (ISO time of the request). The service's prediction id
  is ``<batch_id>.<position>``: the request id and the text's place in the request.
- ``feedback``: ``recipe``, ``true_label``, ``at`` and either ``prediction_id`` (the
  service's id) or ``external_id`` (the newest prediction of the recipe with it).
  Feedback that matches no prediction is skipped and counted, never retried.
- ``shadow``: a candidate's label and confidence beside the champion's for one text.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from modelops.stores.db.orm import FeedbackRow, PredictionRow, ShadowRow
from modelops.stores.production_log import ProductionLog

logger = logging.getLogger(__name__)

PREDICTION = "prediction"
FEEDBACK = "feedback"
SHADOW = "shadow"


def service_prediction_id(batch_id: str, position: int) -> str:
    """The id the service gives a prediction: its request id and its place in it."""
    return f"{batch_id}.{position}"


def _split_prediction_id(value: str) -> tuple[str, int] | None:
    batch_id, _, position = value.rpartition(".")
    if not batch_id or not position.isdigit():
        return None
    return batch_id, int(position)


def _time(value: Any) -> datetime:
    at = datetime.fromisoformat(value) if isinstance(value, str) else datetime.now(UTC)
    return at if at.tzinfo else at.replace(tzinfo=UTC)


class ServingLog(ProductionLog):
    """The production log as the HTTP service writes and reads it."""

    what = "production log"

    def write(self, rows: Sequence[dict[str, Any]]) -> dict[str, int]:
        """Write a batch of rows (see the module docstring) in one transaction; counts
        by outcome (``prediction``, ``feedback``, ``shadow``, ``feedback_unmatched``)."""
        counts = {PREDICTION: 0, FEEDBACK: 0, SHADOW: 0, "feedback_unmatched": 0}
        with self._session.begin() as session:
            # bulk inserts (one executemany each), in order: ids grow as rows came
            predictions = [_prediction_row(r) for r in rows if r["kind"] == PREDICTION]
            if predictions:
                session.execute(sa.insert(PredictionRow), predictions)
            shadows = [_shadow_row(r) for r in rows if r["kind"] == SHADOW]
            if shadows:
                session.execute(sa.insert(ShadowRow), shadows)
            counts[PREDICTION], counts[SHADOW] = len(predictions), len(shadows)
            for r in rows:
                if r["kind"] == FEEDBACK:
                    ok = _add_feedback(session, r)
                    counts[FEEDBACK if ok else "feedback_unmatched"] += 1
        if counts["feedback_unmatched"]:
            logger.warning("%d feedback rows matched no prediction", counts["feedback_unmatched"])
        return counts

    def base_models(self, recipe: str, after_id: int = 0) -> dict[int, str | None]:
        """The base that answered each prediction of the recipe above ``after_id``."""
        query = sa.select(PredictionRow.id, PredictionRow.base_model).where(
            PredictionRow.recipe == recipe, PredictionRow.id > after_id
        )
        with self._session.begin() as session:
            return dict(session.execute(query).tuples().all())


def _prediction_row(r: dict[str, Any]) -> dict[str, Any]:
    return dict(
        at=_time(r.get("at")),
        recipe=r["recipe"],
        taxonomy_version=r["taxonomy_version"],
        adapter_id=int(r["adapter_id"]),
        text=r.get("text"),
        text_sha256=r["text_sha256"],
        text_chars=int(r["text_chars"]),
        predicted_label=r["predicted_label"],
        confidence=float(r["confidence"]),
        top_k=[{"label": str(t["label"]), "p": float(t["p"])} for t in r["top_k"]],
        source=r["source"],
        batch_id=r.get("batch_id"),
        external_id=r.get("external_id"),
        base_model=r.get("base_model"),
    )


def _shadow_row(r: dict[str, Any]) -> dict[str, Any]:
    return dict(
        at=_time(r.get("at")),
        recipe=r["recipe"],
        candidate_adapter_id=int(r["candidate_adapter_id"]),
        champion_adapter_id=int(r["champion_adapter_id"]),
        batch_id=r.get("batch_id"),
        text_sha256=r["text_sha256"],
        candidate_label=r["candidate_label"],
        candidate_confidence=float(r["candidate_confidence"]),
        champion_label=r["champion_label"],
        champion_confidence=float(r["champion_confidence"]),
    )


def _add_feedback(session: Session, r: dict[str, Any]) -> bool:
    p = PredictionRow
    query = sa.select(p.id, p.text_sha256).where(p.recipe == r["recipe"])
    if r.get("prediction_id") is not None:
        parts = _split_prediction_id(str(r["prediction_id"]))
        if parts is None:
            return False
        batch_id, position = parts
        query = query.where(p.batch_id == batch_id).order_by(p.id).offset(position).limit(1)
    else:
        query = query.where(p.external_id == r["external_id"]).order_by(p.id.desc()).limit(1)
    found = session.execute(query).first()
    if found is None:
        return False
    session.add(
        FeedbackRow(
            at=_time(r.get("at")),
            recipe=r["recipe"],
            prediction_id=found.id,
            text=None,
            text_sha256=found.text_sha256,
            true_label=r["true_label"],
            source=r.get("source") or "api",
        )
    )
    return True
