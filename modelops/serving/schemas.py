"""Request bodies of the HTTP API, checked strictly, and the OpenAPI document.

Every check failure is a :class:`RequestError`: a 4xx answer whose JSON body names the
field (``texts[3]``, ``feedback[0].true_label``). Bodies are strict UTF-8 JSON objects;
unknown fields are refused, numbers are not strings and strings are not numbers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelops.domain.text import clean_text
from modelops.stores.db.orm import MAX_EXTERNAL_ID_CHARS

MAX_LABEL_CHARS = 200


class RequestError(Exception):
    """A bad request: HTTP ``status``, the ``field`` at fault (None: the whole body)."""

    def __init__(
        self, status: int, field: str | None, message: str, headers: dict[str, str] | None = None
    ):
        super().__init__(message)
        self.status = status
        self.field = field
        self.message = message
        self.headers = headers or {}
        """Extra response headers (``Retry-After`` of a 503)."""

    def body(self) -> dict[str, Any]:
        return {"error": self.message, "field": self.field}


@dataclass(frozen=True)
class Limits:
    """What one request may carry."""

    max_texts: int = 256
    max_chars: int = 2_000
    max_body_bytes: int = 4 * 1024 * 1024
    max_top_k: int = 100


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class PredictBody(_Strict):
    texts: list[str] = Field(description="the texts to classify, in order", min_length=1)
    top_k: int = Field(default=3, ge=1, description="how many most probable labels per text")
    ids: list[str | int] | None = Field(
        default=None,
        description="your reference for each text (same length as texts, unique); "
        "stored with the prediction, usable for feedback",
    )


class FeedbackItem(_Strict):
    true_label: str = Field(min_length=1, max_length=MAX_LABEL_CHARS)
    prediction_id: str | None = Field(default=None, description="as returned by predict")
    id: str | int | None = Field(default=None, description="your reference, as sent to predict")


class FeedbackBody(_Strict):
    feedback: list[FeedbackItem] = Field(min_length=1)


def parse_json(raw: bytes, limits: Limits) -> Any:
    """The JSON document of a request body (strict UTF-8)."""
    if len(raw) > limits.max_body_bytes:
        raise RequestError(413, None, f"body over {limits.max_body_bytes} bytes")
    if not raw.strip():
        raise RequestError(400, None, "empty body: send a JSON object")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(400, None, f"body is not valid UTF-8 (byte {exc.start})") from None
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise RequestError(400, None, f"body is not valid JSON: {exc}") from None


def _field(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("str", "int", "list[str]") or "[" in str(part):
            continue  # pydantic's union branch names
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


def _validate(model: type[_Strict], doc: Any) -> Any:
    if not isinstance(doc, dict):
        raise RequestError(422, None, f"body must be a JSON object, got {type(doc).__name__}")
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise RequestError(422, _field(first["loc"]), first["msg"]) from None


def _check_text(field: str, value: str, limit: int) -> str:
    if "\x00" in value:
        raise RequestError(422, field, "contains a NUL character")
    if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise RequestError(422, field, "contains an unpaired surrogate")
    if len(value) > limit:
        raise RequestError(422, field, f"has {len(value)} characters (max {limit})")
    return value


def _check_id(field: str, value: str | int) -> str:
    text = str(value).strip()
    if not text:
        raise RequestError(422, field, "is empty")
    _check_text(field, text, MAX_EXTERNAL_ID_CHARS)
    return text


@dataclass(frozen=True)
class PredictRequest:
    texts: list[str]
    """Cleaned as the model sees them."""
    top_k: int
    ids: list[str] | None


def predict_request(doc: Any, limits: Limits) -> PredictRequest:
    body = _validate(PredictBody, doc)
    if len(body.texts) > limits.max_texts:
        raise RequestError(
            422, "texts", f"has {len(body.texts)} texts (max {limits.max_texts} per request)"
        )
    if body.top_k > limits.max_top_k:
        raise RequestError(422, "top_k", f"must be at most {limits.max_top_k}")
    texts = []
    for i, text in enumerate(body.texts):
        cleaned = clean_text(_check_text(f"texts[{i}]", text, limits.max_chars))
        if not cleaned:
            raise RequestError(422, f"texts[{i}]", "is empty")
        texts.append(cleaned)
    ids = None
    if body.ids is not None:
        if len(body.ids) != len(texts):
            raise RequestError(422, "ids", f"has {len(body.ids)} entries for {len(texts)} texts")
        ids = [_check_id(f"ids[{i}]", v) for i, v in enumerate(body.ids)]
        seen: dict[str, int] = {}
        for i, ref in enumerate(ids):
            if ref in seen:
                raise RequestError(422, f"ids[{i}]", f"repeats ids[{seen[ref]}] ({ref!r})")
            seen[ref] = i
    return PredictRequest(texts, body.top_k, ids)


def feedback_request(doc: Any, limits: Limits) -> list[dict[str, Any]]:
    """One dict per item: ``true_label`` and ``prediction_id`` or ``external_id``."""
    body = _validate(FeedbackBody, doc)
    if len(body.feedback) > limits.max_texts:
        raise RequestError(
            422, "feedback", f"has {len(body.feedback)} items (max {limits.max_texts})"
        )
    items = []
    for i, item in enumerate(body.feedback):
        where = f"feedback[{i}]"
        label = _check_text(f"{where}.true_label", item.true_label, MAX_LABEL_CHARS).strip()
        if not label:
            raise RequestError(422, f"{where}.true_label", "is empty")
        if (item.prediction_id is None) == (item.id is None):
            raise RequestError(422, where, "give exactly one of prediction_id and id")
        if item.prediction_id is not None:
            ref = {"prediction_id": _check_id(f"{where}.prediction_id", item.prediction_id)}
        else:
            ref = {"external_id": _check_id(f"{where}.id", item.id)}
        items.append({"true_label": label, **ref})
    return items


def check_labels(items: list[dict[str, Any]], labels: list[str], taxonomy: str) -> None:
    """Every feedback item's ``true_label`` is one of ``labels`` (those of ``taxonomy``,
    e.g. ``"taxonomy v2"``); else a 422 naming the first one that is not."""
    known = set(labels)
    for i, item in enumerate(items):
        if item["true_label"] not in known:
            raise RequestError(
                422,
                f"feedback[{i}].true_label",
                f"{item['true_label']!r} is not a label of {taxonomy}; nothing was stored",
            )


# --------------------------------------------------------------------------- OpenAPI

_ERROR = {
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "field": {"type": ["string", "null"]},
        "request_id": {"type": "string"},
    },
    "required": ["error"],
}
_TOP = {
    "type": "object",
    "properties": {"label": {"type": "string"}, "p": {"type": "number"}},
}
_PREDICTION = {
    "type": "object",
    "properties": {
        "label": {"type": "string"},
        "confidence": {"type": "number"},
        "top_k": {"type": "array", "items": _TOP},
        "oos_score": {
            "type": ["number", "null"],
            "description": "how unlike the adapter's training texts (higher: more out of "
            "scope); null when the adapter has no out-of-scope model",
        },
        "out_of_scope": {
            "type": ["boolean", "null"],
            "description": "oos_score past the adapter's threshold, calibrated so that at most "
            "its stated share of in-scope texts is flagged; null likewise",
        },
        "prediction_id": {"type": "string"},
        "id": {"type": ["string", "null"]},
    },
}
_PREDICT_RESPONSE = {
    "type": "object",
    "properties": {
        "recipe": {"type": "string"},
        "adapter_id": {"type": "integer"},
        "taxonomy_version": {"type": "string"},
        "base_model": {"type": "string"},
        "request_id": {"type": "string"},
        "client_request_id": {"type": ["string", "null"]},
        "predictions": {"type": "array", "items": _PREDICTION},
    },
}


def _json(schema: dict) -> dict:
    return {"content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict:
    return {str(c): {"description": "error", **_json(_ERROR)} for c in codes}


_RECIPE = {"name": "recipe", "in": "path", "required": True, "schema": {"type": "string"}}
_PLAIN = {"200": {"description": "ok", **_json({"type": "object"})}}


def _post(summary: str, request: str, ok: tuple[str, str, dict], errors: tuple[int, ...]) -> dict:
    """A POST operation on a recipe: its JSON body (a schema of ``components``), its
    answer ``ok`` (status, description, schema) and its error statuses."""
    status, description, schema = ok
    return {
        "post": {
            "summary": summary,
            "parameters": [_RECIPE],
            "requestBody": {
                "required": True,
                **_json({"$ref": f"#/components/schemas/{request}"}),
            },
            "responses": {
                status: {"description": description, **_json(schema)},
                **_errors(*errors),
            },
        }
    }


def _get(summary: str, *, public: bool = False, responses: dict | None = None) -> dict:
    """A GET operation; ``public``: open without the token."""
    operation = {"summary": summary, **({"security": []} if public else {})}
    return {"get": {**operation, "responses": _PLAIN if responses is None else responses}}


def _paths() -> dict[str, Any]:
    return {
        "/v1/recipes/{recipe}/predict": _post(
            "Label texts with the recipe's serving adapter",
            "PredictRequest",
            ("200", "one prediction per text", _PREDICT_RESPONSE),
            (400, 401, 404, 413, 415, 421, 422, 503),
        ),
        "/v1/recipes/{recipe}/feedback": _post(
            "True labels, by prediction id or by your id",
            "FeedbackRequest",
            ("202", "queued for the production log", {"type": "object"}),
            (400, 401, 404, 413, 415, 421, 422, 503),
        ),
        "/v1/adapters": _get("Loaded adapters and routes"),
        "/healthz": _get("The process answers", public=True),
        "/readyz": _get(
            "Every served recipe has its adapter loaded",
            public=True,
            responses={**_PLAIN, **_errors(503)},
        ),
        "/metrics": _get("Prometheus metrics", responses={"200": {"description": "text format"}}),
        "/openapi.json": _get("This document", public=True),
    }


def openapi_document(version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the service."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "modelops serving", "version": version},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "PredictRequest": PredictBody.model_json_schema(),
                "FeedbackRequest": FeedbackBody.model_json_schema(),
                "Error": _ERROR,
            },
        },
        "security": [{"bearer": []}],
        "paths": _paths(),
    }
