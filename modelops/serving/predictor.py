"""The predictor: a recipe's serving adapter, kept loaded, scoring texts and logging them.

It loads the adapter the registry's ``serving`` alias names, onto the exact base model it
was trained on (found in the catalog by sha256), once; a mapped adapter (an earlier
version's champion through the taxonomy mapping) loads the same way
(``modelops.lifecycle.fetch.load_adapter``). It then looks at the alias again
at most every ``check_every_s`` seconds (or on :meth:`Predictor.refresh`) and loads the
new adapter only when the alias has moved. Each prediction goes to the production log
when one is given, with the caller's reference for it when given (``external_ids``); with
``redact_text`` the log keeps the text's sha256 and length only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from modelops.config.errors import InputError, NotFoundError
from modelops.config.recipe import Recipe
from modelops.domain.text import clean_text
from modelops.lifecycle.fetch import FetchedAdapter, LoadedAdapter, load_adapter
from modelops.lifecycle.platform import Platform
from modelops.serving.ranking import ranked
from modelops.stores.db.orm import MAX_EXTERNAL_ID_CHARS
from modelops.stores.production_log import PredictionRecord, ProductionLog, external_id_text
from modelops.stores.registry_records import SERVING, AdapterVersion

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prediction:
    """The label of one text, how sure, and which adapter said so."""

    label: str
    confidence: float
    top_k: list[dict[str, Any]]
    """``[{"label": ..., "p": ...}]``, most probable first."""
    adapter_id: int
    taxonomy_version: str
    prediction_id: int | None = None
    """Its id in the production log (None when not logged)."""
    base_model: str | None = None
    """The base revision (``name@revision``) the adapter answered on."""
    oos_score: float | None = None
    """How unlike the adapter's training rows the text is (``modelops.monitoring.out_of_scope``;
    higher: more out of scope); None when the adapter has no out-of-scope model."""
    out_of_scope: bool | None = None
    """Whether ``oos_score`` is past the adapter's threshold, calibrated so that at most its
    stated share of in-scope texts is flagged; None likewise."""


@dataclass(frozen=True)
class _Loaded:
    version: AdapterVersion
    adapter: LoadedAdapter
    labels: list[str]
    max_length: int


class Predictor:
    """Scores texts with a recipe's serving adapter; see the module docstring."""

    def __init__(
        self,
        platform: Platform,
        recipe_name: str,
        *,
        log: ProductionLog | None,
        redact_text: bool = False,
        top_k: int = 3,
        check_every_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        """Load the serving adapter of ``recipe_name`` now.

        ``check_every_s``: at most how often :meth:`predict` asks the registry whether
        the serving alias moved. Raises :class:`NotFoundError` when the recipe has no
        serving adapter.
        """
        if top_k < 1:
            raise InputError(None, "top_k", f"must be at least 1, got {top_k}")
        self.platform = platform
        self.recipe = recipe_name
        self.log = log
        self.redact_text = redact_text
        self.top_k = top_k
        self.check_every_s = check_every_s
        self._clock = clock
        self._lock = threading.Lock()
        version = self._serving()
        if version is None:
            raise NotFoundError(
                f"recipe {recipe_name!r} has no serving adapter: train one and promote it "
                "(materialize the recipe's assets) first"
            )
        self._loaded = self._load(version)
        self._checked_at = clock()

    @property
    def adapter(self) -> AdapterVersion:
        """The registry entry of the adapter that scores now."""
        return self._loaded.version

    @property
    def labels(self) -> list[str]:
        """The loaded adapter's labels, in the order of its outputs."""
        return list(self._loaded.labels)

    def refresh(self) -> bool:
        """Ask the registry now; load the serving adapter if it moved. Whether it did."""
        with self._lock:
            self._checked_at = self._clock()
            version = self._serving()
            if version is None:
                logger.warning(
                    "recipe %s lost its serving alias; keeping adapter %s",
                    self.recipe,
                    self._loaded.version.id,
                )
                return False
            if version.id == self._loaded.version.id:
                return False
            self._loaded = self._load(version)
            return True

    def score(self, texts: Sequence[str]) -> list[Prediction]:
        """Predictions for ``texts`` (cleaned as in training); nothing is logged."""
        cleaned = _clean(texts)
        if self._clock() - self._checked_at >= self.check_every_s:
            self.refresh()
        loaded = self._loaded  # one adapter for the whole call, even if another loads
        if not cleaned:
            return []
        probs, features = loaded.adapter.predict(cleaned, loaded.max_length)
        scores, flags = loaded.adapter.oos(features, probs)
        return [
            Prediction(
                label=top[0]["label"],
                confidence=top[0]["p"],
                top_k=top,
                adapter_id=loaded.version.id,
                taxonomy_version=loaded.version.taxonomy_version,
                base_model=loaded.version.base_model,
                oos_score=None if scores is None else float(scores[i]),
                out_of_scope=None if flags is None else bool(flags[i]),
            )
            for i, top in enumerate(ranked(probs, loaded.labels, self.top_k))
        ]

    def records(
        self,
        texts: Sequence[str],
        predictions: Sequence[Prediction],
        *,
        source: str,
        batch_id: str | None = None,
        true_labels: Sequence[str | None] | None = None,
        external_ids: Sequence[Any] | None = None,
    ) -> list[PredictionRecord]:
        """Production-log records of scored texts (redacted when this predictor redacts);
        ``true_labels`` (None entries: unknown) become feedback when logged, and
        ``external_ids`` (the caller's row references, None entries: none) are stored."""
        labels = true_labels if true_labels is not None else [None] * len(texts)
        refs = _external_ids(external_ids, len(texts))
        return [
            PredictionRecord.for_text(
                text,
                redact=self.redact_text,
                recipe=self.recipe,
                taxonomy_version=p.taxonomy_version,
                adapter_id=p.adapter_id,
                predicted_label=p.label,
                confidence=p.confidence,
                top_k=p.top_k,
                source=source,
                batch_id=batch_id,
                external_id=ref,
                true_label=label,
                base_model=p.base_model,
                oos_score=p.oos_score,
                out_of_scope=p.out_of_scope,
            )
            for text, p, label, ref in zip(texts, predictions, labels, refs, strict=True)
        ]

    def predict(
        self,
        texts: Sequence[str],
        *,
        source: str = "api",
        batch_id: str | None = None,
        external_ids: Sequence[Any] | None = None,
    ) -> list[Prediction]:
        """Score ``texts`` and, when this predictor has a log, log them in one
        transaction, each with its entry of ``external_ids`` (your row references) when
        given; the predictions then carry their log ids."""
        refs = _external_ids(external_ids, len(texts))  # checked before scoring
        predictions = self.score(texts)
        if self.log is None or not predictions:
            return predictions
        records = self.records(
            texts, predictions, source=source, batch_id=batch_id, external_ids=refs
        )
        ids = self.log.log_predictions(records)
        return [replace(p, prediction_id=i) for p, i in zip(predictions, ids, strict=True)]

    def predict_frame(
        self,
        frame: pd.DataFrame,
        *,
        text_column: str = "text",
        id_column: str | None = None,
        source: str = "api",
        batch_id: str | None = None,
    ) -> pd.DataFrame:
        """A copy of ``frame`` with ``predicted_label``, ``confidence``, ``top_k``,
        ``oos_score``, ``out_of_scope`` (None without an out-of-scope model), ``adapter_id``,
        ``taxonomy_version`` and ``prediction_id`` columns; the values of
        ``id_column``, when given, are logged as the rows' ``external_id``."""
        for column in (text_column, id_column):
            if column is not None and column not in frame.columns:
                raise InputError(None, f"column {column!r}", "missing")
        ids = frame[id_column].tolist() if id_column is not None else None
        predictions = self.predict(
            frame[text_column].tolist(), source=source, batch_id=batch_id, external_ids=ids
        )
        out = frame.copy()
        out["predicted_label"] = [p.label for p in predictions]
        columns = ("confidence", "top_k", "oos_score", "out_of_scope", "adapter_id")
        for column in (*columns, "taxonomy_version", "prediction_id"):
            out[column] = [getattr(p, column) for p in predictions]
        return out

    # ----------------------------------------------------------------- helpers

    def _serving(self) -> AdapterVersion | None:
        return self.platform.registry.alias(self.recipe, SERVING)

    def _load(self, version: AdapterVersion) -> _Loaded:
        """Fetch the adapter (sha256-verified), put it on its exact base, keep it in memory."""
        with FetchedAdapter(self.platform, version) as fetched:
            manifest = fetched.manifest
            adapter = load_adapter(self.platform, fetched)
        recipe = Recipe.model_validate(manifest["recipe_snapshot"]["recipe"])
        logger.info("recipe %s: serving adapter %s", self.recipe, version.id)
        return _Loaded(version, adapter, adapter.labels, recipe.training.max_length)


def _external_ids(ids: Sequence[Any] | None, n: int) -> list[str | None]:
    """One checked reference per text (see :func:`external_id_text`)."""
    if ids is None:
        return [None] * n
    if isinstance(ids, str):
        raise InputError(None, "external_ids", "must be a list, not one string")
    refs = [external_id_text(i) for i in ids]
    if len(refs) != n:
        raise InputError(None, "external_ids", f"has {len(refs)} entries for {n} texts")
    for i, ref in enumerate(refs):
        if ref is not None and len(ref) > MAX_EXTERNAL_ID_CHARS:
            raise InputError(
                None,
                f"external_ids[{i}]",
                f"has {len(ref)} characters (max {MAX_EXTERNAL_ID_CHARS})",
            )
    return refs


def _clean(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise InputError(None, "texts", "must be a list of strings, not one string")
    cleaned = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InputError(None, f"texts[{i}]", f"must be a string, got {type(text).__name__}")
        text = clean_text(text)
        if not text:
            raise InputError(None, f"texts[{i}]", "is empty")
        cleaned.append(text)
    return cleaned
