"""The production log: every prediction served and every true label fed back.

Two tables in the registry's database (:mod:`modelops.stores.db.orm`), created by the
registry's alembic chain (revision 0003; 0004 adds ``predictions.external_id``, 0006
``predictions.client_request_id``, 0007 ``predictions.oos_score`` and
``predictions.out_of_scope``), so one URL and one ``upgrade`` cover both:

- ``predictions``: what was scored, by which adapter, with what result, and the
  sender's reference for the row when there is one (``external_id``). The text may
  be redacted (stored as NULL); its sha256 (of the normalized text, as datasets
  compute it) and its length are always kept.
- ``feedback``: a true label for a prediction (by id) or for a text (linked to the
  newest prediction of the same text when there is one).

Rows are only ever appended; ids grow, so ``after_id`` windows ("everything since
the last drift check") are cheap on the ``(recipe, id)`` indexes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from modelops.config.errors import InputError, NotFoundError
from modelops.domain.text import clean_text
from modelops.stores.db.engine import Database
from modelops.stores.db.orm import FeedbackRow, PredictionRow, ShadowRow
from modelops.stores.prediction_records import (
    PredictionRecord,
    external_id_text,
    non_empty,
    prediction_columns,
    text_sha256,
)

__all__ = [
    "FEEDBACK_COLUMNS",
    "PREDICTION_COLUMNS",
    "PredictionRecord",
    "ProductionLog",
    "external_id_text",
    "prediction_columns",
    "text_sha256",
]

PREDICTION_COLUMNS = [
    "id", "at", "recipe", "taxonomy_version", "adapter_id", "text", "text_sha256",
    "text_chars", "predicted_label", "confidence", "top_k", "source", "batch_id",
    "external_id", "oos_score", "out_of_scope",
]  # fmt: skip
FEEDBACK_COLUMNS = [
    "id", "at", "recipe", "prediction_id", "text", "text_sha256", "true_label", "source",
    "predicted_label", "confidence", "adapter_id",
]  # fmt: skip
"""``feedback()`` columns; the last three come from the linked prediction (or are null)."""
# The order of ix_predictions_recipe_id, on both columns (see ProductionLog._of_recipe).
_OLDEST_FIRST = (PredictionRow.recipe, PredictionRow.id)
_NEWEST_FIRST = (PredictionRow.recipe.desc(), PredictionRow.id.desc())
_IN_CHUNK = 1000  # ids per IN (...) list: well inside SQLite's and PostgreSQL's limits


# --------------------------------------------------------------------------- the log


class ProductionLog(Database):
    """Predictions and feedback in the registry's database (SQLite or PostgreSQL).

    Each method is one transaction. Opening migrates the database to head, as
    :class:`~modelops.stores.registry.Registry` does.
    """

    what = "production log"

    # ----------------------------------------------------------------- writes

    def log_predictions(self, records: Sequence[PredictionRecord]) -> list[int]:
        """Append predictions (and the feedback of those with a ``true_label``) in one
        transaction; their ids, in the order of ``records``."""
        now = datetime.now(UTC)
        rows = [PredictionRow(**prediction_columns(r, now)) for r in records]
        labels = [
            None if r.true_label is None else non_empty("true_label", r.true_label) for r in records
        ]
        if not rows:
            return []
        with self._session.begin() as session:
            session.add_all(rows)
            session.flush()  # assigns the ids the feedback refers to
            session.add_all(
                FeedbackRow(
                    at=row.at,
                    recipe=row.recipe,
                    prediction_id=row.id,
                    text=None,  # the prediction holds it (or it was redacted)
                    text_sha256=row.text_sha256,
                    true_label=label,
                    source=row.source,
                )
                for row, label in zip(rows, labels, strict=True)
                if label is not None
            )
            return [row.id for row in rows]

    def add_feedback(
        self,
        recipe: str,
        *,
        true_label: str,
        prediction_id: int | None = None,
        text: str | None = None,
        source: str,
    ) -> int:
        """Record a true label; its id.

        Give the ``prediction_id`` it is about, or the ``text`` (or both: they must
        match). A text alone is linked to the newest prediction of the same text
        (by sha256 of the normalized text) in this recipe, when there is one.
        """
        true_label = non_empty("true_label", true_label)
        source = non_empty("source", source)
        if prediction_id is None and text is None:
            raise InputError(None, "feedback", "needs a prediction_id or a text")
        cleaned = clean_text(text) if text is not None else None
        if cleaned is not None and not cleaned:
            raise InputError(None, "text", "is empty")
        digest = text_sha256(cleaned) if cleaned is not None else None
        with self._session.begin() as session:
            if prediction_id is not None:
                prediction = session.get(PredictionRow, prediction_id)
                if prediction is None or prediction.recipe != recipe:
                    raise NotFoundError(
                        f"prediction {prediction_id} of recipe {recipe!r} not found"
                    )
                if digest is not None and digest != prediction.text_sha256:
                    raise InputError(None, "text", f"is not the text of prediction {prediction_id}")
                digest = prediction.text_sha256
            else:
                prediction_id = session.scalar(
                    sa.select(sa.func.max(PredictionRow.id)).where(
                        PredictionRow.recipe == recipe, PredictionRow.text_sha256 == digest
                    )
                )
            row = FeedbackRow(
                at=datetime.now(UTC),
                recipe=recipe,
                prediction_id=prediction_id,
                text=cleaned,
                text_sha256=digest,
                true_label=true_label,
                source=source,
            )
            session.add(row)
            session.flush()
            return row.id

    # ----------------------------------------------------------------- reads

    def _of_recipe(self, recipe: str) -> sa.ColumnElement[bool]:
        """``recipe = :r`` for the reads that walk the log in id order.

        On PostgreSQL it is written ``recipe = ANY(ARRAY[:r])``: with a plain equality the
        planner drops ``recipe`` from ``ORDER BY recipe, id`` and, taking rows to be spread
        evenly, walks the primary key backwards filtering on the recipe; for a recipe with
        no recent rows that reads the whole table (measured: 270,001 rows read for a
        200-row window in a 300,000-row log). ``ANY`` keeps the order on both columns, which
        only ``ix_predictions_recipe_id`` gives, so a window costs its own rows at any size
        (benchmarks/RESULTS.md, issue 23; modelops_tests/stores/test_drift_path_queries.py).
        """
        if self._engine.dialect.name == "postgresql":
            return PredictionRow.recipe == sa.any_(
                sa.literal([recipe], type_=postgresql.ARRAY(sa.String))
            )
        return PredictionRow.recipe == recipe

    def latest_prediction_id(self, recipe: str) -> int:
        """The id of the recipe's newest prediction; 0 when there is none."""
        query = (
            sa.select(PredictionRow.id)
            .where(self._of_recipe(recipe))
            .order_by(*_NEWEST_FIRST)
            .limit(1)
        )
        with self._session.begin() as session:
            return session.scalar(query) or 0

    def count_since(self, recipe: str, after_id: int, *, at_most: int | None = None) -> int:
        """How many predictions of the recipe have an id above ``after_id``; with
        ``at_most``, counting stops there (min(count, at_most)), so asking "is there a
        window yet?" reads at most ``at_most`` index entries however long the log is."""
        rows = sa.select(PredictionRow.id).where(
            self._of_recipe(recipe), PredictionRow.id > after_id
        )
        if at_most is not None:
            if at_most < 0:
                raise InputError(None, "at_most", f"must be at least 0, got {at_most}")
            rows = rows.order_by(*_OLDEST_FIRST).limit(at_most)
        query = sa.select(sa.func.count()).select_from(rows.subquery())
        with self._session.begin() as session:
            return session.scalar(query) or 0

    def new_rows(
        self, after: Mapping[str, int], *, at_most: int | None = None
    ) -> dict[str, tuple[int, int]]:
        """``{recipe: (rows, newest id)}`` of the predictions logged after each recipe's id
        in ``after`` (``{recipe: id}``), for the recipes that have any; with ``at_most``,
        each count stops there, as in :meth:`count_since`. One query for all of them: per
        recipe, the range of ``ix_predictions_recipe_id`` past its id (its count, then its
        newest entry), so its cost grows with the new rows (at most ``at_most`` of them),
        not with the table. The production-window sensor's read."""
        if not after:
            return {}
        if at_most is not None and at_most < 1:
            raise InputError(None, "at_most", f"must be at least 1, got {at_most}")
        payload = json.dumps({recipe: int(after_id) for recipe, after_id in after.items()})
        with self._session.begin() as session:
            rows = session.execute(
                sa.text(self._new_rows_sql(at_most)), {"cursors": payload, "at_most": at_most}
            )
            return {recipe: (count, newest) for recipe, count, newest in rows if count}

    def _new_rows_sql(self, at_most: int | None) -> str:
        """The query of :meth:`new_rows`: the cursors travel as one JSON parameter, whatever
        their number; each recipe's rows are read by two correlated subqueries shaped as
        :meth:`count_since` and :meth:`latest_prediction_id` (``ORDER BY recipe, id`` on
        the recipe's range, its recipe test written as in :meth:`_of_recipe`). A join of
        the cursors with the table, grouped by recipe, was planned on PostgreSQL as a scan
        of the whole index (1,000,000 entries read for a 1,000-row answer, 323 ms;
        benchmarks/RESULTS.md, issue 23)."""
        if self._engine.dialect.name == "postgresql":
            cursors = (
                "select key as recipe, value::bigint as after_id "
                "from json_each_text(cast(:cursors as json))"
            )
            of_recipe = "p.recipe = any(array[c.recipe])"
        else:
            cursors = "select key as recipe, value as after_id from json_each(:cursors)"
            of_recipe = "p.recipe = c.recipe"
        since = f"from predictions p where {of_recipe} and p.id > c.after_id"
        bound = "" if at_most is None else " limit :at_most"
        # (the recipes without new rows are dropped by the caller: a ``where`` on the
        # count would have PostgreSQL count them twice)
        return (
            f"with c as ({cursors}) select c.recipe, "
            f"(select count(*) from (select p.id {since} order by p.recipe, p.id{bound}) s), "
            f"(select p.id {since} order by p.recipe desc, p.id desc limit 1) from c"
        )

    def batch_logged(self, recipe: str, batch_id: str) -> bool:
        """Whether predictions of this batch are in the log."""
        query = sa.select(PredictionRow.id).where(
            PredictionRow.batch_id == batch_id, PredictionRow.recipe == recipe
        )
        with self._session.begin() as session:
            return session.scalar(query.limit(1)) is not None

    def predictions(
        self,
        recipe: str,
        *,
        after_id: int = 0,
        limit: int | None = None,
        newest: bool = False,
        batch_id: str | None = None,
    ) -> pd.DataFrame:
        """Predictions of the recipe with an id above ``after_id`` (and of one batch,
        when given), ordered by id: the first ``limit`` of them, or with ``newest``
        the last ``limit``. Columns: :data:`PREDICTION_COLUMNS`."""
        columns = [getattr(PredictionRow, c) for c in PREDICTION_COLUMNS]
        query = sa.select(*columns).where(self._of_recipe(recipe), PredictionRow.id > after_id)
        if batch_id is not None:
            query = query.where(PredictionRow.batch_id == batch_id)
        query = query.order_by(*(_NEWEST_FIRST if newest else _OLDEST_FIRST))
        if limit is not None:
            query = query.limit(limit)
        with self._session.begin() as session:
            rows = session.execute(query).all()
        if newest:
            rows.reverse()
        return _frame(rows, PREDICTION_COLUMNS)

    def feedback(self, recipe: str, *, after_id: int = 0) -> pd.DataFrame:
        """Feedback of the recipe with an id above ``after_id``, ordered by id, with the
        linked prediction's text where the feedback has none, and its predicted label,
        confidence and adapter. Columns: :data:`FEEDBACK_COLUMNS`."""
        f, p = FeedbackRow, PredictionRow
        query = (
            sa.select(
                f.id,
                f.at,
                f.recipe,
                f.prediction_id,
                sa.func.coalesce(f.text, p.text).label("text"),
                f.text_sha256,
                f.true_label,
                f.source,
                p.predicted_label,
                p.confidence,
                p.adapter_id,
            )
            .outerjoin(p, p.id == f.prediction_id)
            .where(f.recipe == recipe, f.id > after_id)
            .order_by(f.id)
        )
        with self._session.begin() as session:
            rows = session.execute(query).all()
        return _frame(rows, FEEDBACK_COLUMNS)

    def labels_for(self, recipe: str, prediction_ids: Sequence[int]) -> dict[int, str]:
        """The true label fed back for each of ``prediction_ids`` that has one (the last
        given), read through the ``feedback.prediction_id`` index: a drift window's labels
        cost as many lookups as the window has rows, not a read of all the feedback."""
        ids = sorted({int(i) for i in prediction_ids})
        labels: dict[int, str] = {}
        with self._session.begin() as session:
            for start in range(0, len(ids), _IN_CHUNK):
                chunk = ids[start : start + _IN_CHUNK]
                query = (
                    sa.select(FeedbackRow.prediction_id, FeedbackRow.true_label)
                    .where(FeedbackRow.recipe == recipe, FeedbackRow.prediction_id.in_(chunk))
                    .order_by(FeedbackRow.id)
                )
                for prediction_id, label in session.execute(query):
                    labels[int(prediction_id)] = label  # by id: the last given wins
        return labels

    def feedback_count(self, recipe: str, after_id: int = 0) -> int:
        """How many feedback rows of the recipe have an id above ``after_id``."""
        query = sa.select(sa.func.count()).where(
            FeedbackRow.recipe == recipe, FeedbackRow.id > after_id
        )
        with self._session.begin() as session:
            return session.scalar(query) or 0

    def shadow_summary(self, recipe: str, candidate_adapter_id: int) -> dict[str, Any] | None:
        """How a candidate scored live traffic in shadow: rows, agreement with the
        champion, mean confidences; None when it has no shadow rows."""
        s = ShadowRow
        agree = sa.case((s.candidate_label == s.champion_label, 1.0), else_=0.0)
        query = sa.select(
            sa.func.count(),
            sa.func.avg(agree),
            sa.func.avg(s.candidate_confidence),
            sa.func.avg(s.champion_confidence),
            sa.func.min(s.at),
            sa.func.max(s.at),
        ).where(s.recipe == recipe, s.candidate_adapter_id == candidate_adapter_id)
        champions = (
            sa.select(s.champion_adapter_id)
            .where(s.recipe == recipe, s.candidate_adapter_id == candidate_adapter_id)
            .distinct()
        )
        with self._session.begin() as session:
            n, agreement, cand, champ, first, last = session.execute(query).one()
            champion_ids = sorted(session.scalars(champions))
        if not n:
            return None
        return {
            "rows": int(n),
            "agreement": float(agreement),
            "candidate_confidence": float(cand),
            "champion_confidence": float(champ),
            "champion_adapter_ids": champion_ids,
            "first_at": first.isoformat(),
            "last_at": last.isoformat(),
        }


def _frame(rows: Sequence[sa.Row], columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records([tuple(r) for r in rows], columns=columns)
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    return frame
