"""What the HTTP service writes to the production log: predictions (with the base that
answered), feedback by the service's prediction id or the sender's reference, and
shadow scores of candidates; each batch in one transaction.

Rows come as plain JSON-able dicts (they may have waited in the on-disk buffer of
:mod:`modelops.serving.prediction_buffer`), each with a ``kind``:

- ``prediction``: :meth:`PredictionRecord.to_json
  <modelops.stores.production_log.PredictionRecord.to_json>` (with ``base_model`` and
  ``at``, the ISO time of the request), built into its row by the production log's one
  builder (:func:`~modelops.stores.production_log.prediction_columns`). The service's
  prediction id is ``<batch_id>.<position>``: the server's id of the request (never the
  client's ``X-Request-ID``, which is kept as ``client_request_id``) and the text's place
  in the request.
- ``feedback``: ``recipe``, ``true_label``, ``at`` and either ``prediction_id`` (the
  service's id) or ``external_id`` (the newest prediction of the recipe with it).
  Feedback that matches no prediction is skipped and counted, never retried.
- ``shadow``: a candidate's label and confidence beside the champion's for one text.

A row that fails its checks (an unknown kind, a missing or malformed field) is dropped
and counted (``invalid``), with a warning naming the first error: it never blocks the
good rows of its batch, which are written (a batch the database refuses is retried).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from modelops.config.errors import InputError
from modelops.stores.db.orm import FeedbackRow, PredictionRow, ShadowRow
from modelops.stores.production_log import PredictionRecord, ProductionLog, prediction_columns

logger = logging.getLogger(__name__)

PREDICTION = "prediction"
FEEDBACK = "feedback"
SHADOW = "shadow"
INVALID = "invalid"
"""The count of rows :meth:`ServingLog.write` dropped because they failed their checks."""


def service_prediction_id(batch_id: str, position: int) -> str:
    """The id the service gives a prediction: its request id and its place in it."""
    return f"{batch_id}.{position}"


def _split_prediction_id(value: str) -> tuple[str, int] | None:
    batch_id, _, position = value.rpartition(".")
    if not batch_id or not position.isdigit():
        return None
    return batch_id, int(position)


def _time(value: Any, now: datetime) -> datetime:
    at = datetime.fromisoformat(value) if isinstance(value, str) else now
    return at if at.tzinfo else at.replace(tzinfo=UTC)


class ServingLog(ProductionLog):
    """The production log as the HTTP service writes and reads it."""

    what = "production log"

    def write(self, rows: Sequence[dict[str, Any]]) -> dict[str, int]:
        """Write a batch of rows (see the module docstring) in one transaction; counts
        by outcome (``prediction``, ``feedback``, ``shadow``, ``feedback_unmatched``,
        ``invalid``)."""
        checked, invalid = _checked(rows, datetime.now(UTC))
        counts = {PREDICTION: 0, FEEDBACK: 0, SHADOW: 0, "feedback_unmatched": 0}
        counts[INVALID] = invalid
        with self._session.begin() as session:
            # bulk inserts (one executemany each), in order: ids grow as rows came
            if checked[PREDICTION]:
                session.execute(sa.insert(PredictionRow), checked[PREDICTION])
            if checked[SHADOW]:
                session.execute(sa.insert(ShadowRow), checked[SHADOW])
            counts[PREDICTION], counts[SHADOW] = len(checked[PREDICTION]), len(checked[SHADOW])
            for r in checked[FEEDBACK]:
                ok = _add_feedback(session, r)
                counts[FEEDBACK if ok else "feedback_unmatched"] += 1
        if counts["feedback_unmatched"]:
            logger.warning("%d feedback rows matched no prediction", counts["feedback_unmatched"])
        return counts

    def request_ids(
        self, recipe: str, after_id: int = 0
    ) -> dict[int, tuple[str | None, str | None]]:
        """The server's request id (``batch_id``) and the client's ``X-Request-ID``
        (or None) of each prediction of the recipe above ``after_id``."""
        p = PredictionRow
        query = sa.select(p.id, p.batch_id, p.client_request_id).where(
            p.recipe == recipe, p.id > after_id
        )
        with self._session.begin() as session:
            return {i: (batch, client) for i, batch, client in session.execute(query)}

    def base_models(self, recipe: str, after_id: int = 0) -> dict[int, str | None]:
        """The base that answered each prediction of the recipe above ``after_id``."""
        query = sa.select(PredictionRow.id, PredictionRow.base_model).where(
            PredictionRow.recipe == recipe, PredictionRow.id > after_id
        )
        with self._session.begin() as session:
            return dict(session.execute(query).tuples().all())


def _checked(rows: Sequence[Any], now: datetime) -> tuple[dict[str, list], int]:
    """The rows of each kind as their table's values, and how many failed their checks
    (dropped, with one warning naming the first error)."""
    checked: dict[str, list] = {PREDICTION: [], FEEDBACK: [], SHADOW: []}
    invalid, first = 0, None
    for r in rows:
        try:
            kind = r["kind"]
            if kind not in _BUILDERS:
                raise InputError(None, "kind", f"unknown row kind {kind!r}")
            checked[kind].append(_BUILDERS[kind](r, now))
        except (InputError, KeyError, TypeError, ValueError, AttributeError) as exc:
            invalid += 1
            first = first or f"{type(exc).__name__}: {exc}"
    if invalid:
        logger.warning("production log: %d invalid rows dropped (first: %s)", invalid, first)
    return checked, invalid


def _prediction_row(r: dict[str, Any], now: datetime) -> dict[str, Any]:
    return prediction_columns(PredictionRecord.from_json(r), now)


def _shadow_row(r: dict[str, Any], now: datetime) -> dict[str, Any]:
    return dict(
        at=_time(r.get("at"), now),
        recipe=_text(r, "recipe"),
        candidate_adapter_id=int(r["candidate_adapter_id"]),
        champion_adapter_id=int(r["champion_adapter_id"]),
        batch_id=r.get("batch_id"),
        text_sha256=_text(r, "text_sha256"),
        candidate_label=_text(r, "candidate_label"),
        candidate_confidence=float(r["candidate_confidence"]),
        champion_label=_text(r, "champion_label"),
        champion_confidence=float(r["champion_confidence"]),
    )


def _feedback_row(r: dict[str, Any], now: datetime) -> dict[str, Any]:
    """A feedback row, checked; matched to its prediction when written."""
    checked = {
        "at": _time(r.get("at"), now),
        "recipe": _text(r, "recipe"),
        "true_label": _text(r, "true_label"),
        "source": r.get("source") or "api",
    }
    if r.get("prediction_id") is not None:
        return {**checked, "prediction_id": str(r["prediction_id"])}
    return {**checked, "external_id": _text(r, "external_id")}


_BUILDERS = {PREDICTION: _prediction_row, FEEDBACK: _feedback_row, SHADOW: _shadow_row}


def _text(r: dict[str, Any], field: str) -> str:
    value = r[field]
    if not isinstance(value, str) or not value.strip():
        raise InputError(None, field, "must be a non-empty string")
    return value


def _add_feedback(session: Session, r: dict[str, Any]) -> bool:
    p = PredictionRow
    query = sa.select(p.id, p.text_sha256).where(p.recipe == r["recipe"])
    if "prediction_id" in r:
        parts = _split_prediction_id(r["prediction_id"])
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
            at=r["at"],
            recipe=r["recipe"],
            prediction_id=found.id,
            text=None,
            text_sha256=found.text_sha256,
            true_label=r["true_label"],
            source=r["source"],
        )
    )
    return True
