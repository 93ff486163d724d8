"""The records of the production log: one prediction to log (:class:`PredictionRecord`),
checked into its ``predictions`` row (:func:`prediction_columns`), and the identity of a
text (:func:`text_sha256`). :mod:`modelops.stores.production_log` writes them (and
re-exports these names)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from modelops.config.errors import InputError
from modelops.config.fingerprint import sha256_bytes
from modelops.domain.text import clean_text, normalize_text
from modelops.stores.db.orm import MAX_CLIENT_REQUEST_ID_CHARS, MAX_EXTERNAL_ID_CHARS


def text_sha256(text: str) -> str:
    """The identity of a text: sha256 of its normalized form (as in datasets)."""
    return sha256_bytes(normalize_text(text).encode("utf-8"))


def external_id_text(value: Any) -> str | None:
    """A sender's row reference as it is stored: None for a missing or blank value, else
    its text, stripped (a whole number given as a float loses its ``.0``). The length is
    not checked here: callers name the row of one that is too long."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip() or None


@dataclass(frozen=True)
class PredictionRecord:
    """One prediction to log. ``text`` None means redacted."""

    recipe: str
    taxonomy_version: str
    adapter_id: int
    text: str | None
    text_sha256: str
    text_chars: int
    predicted_label: str
    confidence: float
    top_k: list[dict[str, Any]]
    """``[{"label": ..., "p": ...}]``, most probable first."""
    source: str
    """Where it came from: ``api``, ``batch:<file name>``, ..."""
    batch_id: str | None = None
    """The request (or batch) it came with; the HTTP service's own id of the request."""
    client_request_id: str | None = None
    """The ``X-Request-ID`` the client sent with the request, if any: kept beside the
    server's id, never used as one (at most :data:`MAX_CLIENT_REQUEST_ID_CHARS`)."""
    external_id: str | None = None
    """The sender's reference for this row (a batch file's ``id``), at most
    :data:`MAX_EXTERNAL_ID_CHARS` characters."""
    true_label: str | None = None
    """When known at scoring time (a labelled batch file): logged as feedback on this
    prediction, in the same transaction."""
    at: datetime | None = None
    """Default: when it is logged."""
    base_model: str | None = None
    """The catalog reference (``name@revision``) of the base that answered."""
    oos_score: float | None = None
    """The adapter's out-of-scope score of the text (``modelops.monitoring.out_of_scope``);
    None when the adapter has no out-of-scope model."""
    out_of_scope: bool | None = None
    """Whether ``oos_score`` is past the adapter's calibrated threshold (None likewise)."""

    @classmethod
    def for_text(cls, text: str, *, redact: bool = False, **fields: Any) -> PredictionRecord:
        """A record of ``text`` (cleaned as the model sees it), redacted when asked:
        the text is left out, its sha256 and length kept."""
        cleaned = clean_text(text)
        return cls(
            text=None if redact else cleaned,
            text_sha256=text_sha256(cleaned),
            text_chars=len(cleaned),
            **fields,
        )

    def to_json(self) -> dict[str, Any]:
        """Its fields as JSON-able values (``at`` in ISO form): how the HTTP service
        buffers it on its way to the log; :meth:`from_json` reads it back."""
        values = asdict(self)
        values["at"] = self.at.isoformat() if self.at is not None else None
        return values

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> PredictionRecord:
        """A record back from :meth:`to_json` (other keys, such as the buffer's ``kind``,
        are ignored). Raises :class:`InputError` (or ``KeyError``, ``TypeError``,
        ``ValueError``) for a row that is not one."""
        for name in _TEXT_FIELDS:
            if not isinstance(row[name], str):
                raise InputError(None, name, f"must be a string, got {type(row[name]).__name__}")
        if row.get("text") is not None and not isinstance(row["text"], str):
            raise InputError(None, "text", f"must be a string, got {type(row['text']).__name__}")
        at = row.get("at")
        if isinstance(at, str):
            at = datetime.fromisoformat(at)
            at = at if at.tzinfo else at.replace(tzinfo=UTC)
        else:
            at = None  # when it is logged
        given = {f: row[f] for f in _FIELDS if f in row}
        return cls(**{**given, "text": row.get("text"), "at": at})


_FIELDS = tuple(f.name for f in fields(PredictionRecord))
_TEXT_FIELDS = ("recipe", "taxonomy_version", "text_sha256", "predicted_label", "source")
"""Fields a buffered row must give as strings."""


def prediction_columns(r: PredictionRecord, now: datetime) -> dict[str, Any]:
    """The ``predictions`` row of a record, checked: the one row builder of the
    production log (:meth:`ProductionLog.log_predictions`) and of the HTTP service's
    writer (:class:`~modelops.stores.serving_log.ServingLog`). ``now``: its time when
    the record has none. Raises :class:`InputError` for a record that cannot be one
    (``TypeError``/``ValueError``/``KeyError`` for numbers or ``top_k`` that are not)."""
    return dict(
        at=r.at or now,
        recipe=non_empty("recipe", r.recipe),
        taxonomy_version=r.taxonomy_version,
        adapter_id=int(r.adapter_id),
        text=r.text,
        text_sha256=r.text_sha256,
        text_chars=int(r.text_chars),
        predicted_label=r.predicted_label,
        confidence=float(r.confidence),
        top_k=[{"label": str(t["label"]), "p": float(t["p"])} for t in r.top_k],
        source=non_empty("source", r.source),
        batch_id=r.batch_id,
        client_request_id=_client_request_id(r.client_request_id),
        external_id=_external_id(r.external_id),
        base_model=r.base_model,
        oos_score=_optional_float("oos_score", r.oos_score),
        out_of_scope=_optional_bool("out_of_scope", r.out_of_scope),
    )


def _optional_float(field: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(None, field, f"must be a number or null, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise InputError(None, field, f"must be finite, got {number}")
    return number


def _optional_bool(field: str, value: Any) -> bool | None:
    if value is None:
        return None
    if not isinstance(value, (bool, np.bool_)):
        raise InputError(None, field, f"must be true, false or null, got {type(value).__name__}")
    return bool(value)


def _external_id(value: str | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InputError(None, "external_id", f"must be a string, got {type(value).__name__}")
    if len(value) > MAX_EXTERNAL_ID_CHARS:
        raise InputError(
            None, "external_id", f"has {len(value)} characters (max {MAX_EXTERNAL_ID_CHARS})"
        )
    return value


def _client_request_id(value: str | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_CLIENT_REQUEST_ID_CHARS:
        raise InputError(
            None,
            "client_request_id",
            f"must be a string of at most {MAX_CLIENT_REQUEST_ID_CHARS} characters",
        )
    return value


def non_empty(field: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputError(None, field, "must be a non-empty string")
    return value.strip()
