"""Adapters copied out of the artifact store, verified, and scored on their own base.

:func:`load_adapter` is the one place an adapter directory becomes a scorer: a trained
adapter scores as it is; a *mapped* adapter (the weights of an earlier version's champion
plus ``label_mapping.json``, see ``modelops.lifecycle.mapped``) sums the old model's
probabilities over each new label's group (``modelops.domain.mapped_head``). The
evaluation, the predictor and batch scoring all load through it; :func:`attached` scores
an adapter on a base already in memory (the training step scores the champion so).

torch, transformers and PEFT are imported by the functions that load or score, not by this
module: the landing sensor's tick reaches it through ``modelops.serving.batch_scoring`` and
must not load them into the code server (docs/concepts.md).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from modelops.config.errors import IntegrityError
from modelops.domain.lineage import (
    MANIFEST_FILE,
)
from modelops.domain.mapped_head import MAPPED_FILE, MappedHead
from modelops.lifecycle.platform import Platform
from modelops.ml.base_inspect import check_adapter_base
from modelops.ml.catalog import ResolvedBase
from modelops.monitoring.out_of_scope import MONITORING_FOLDER, OutOfScopeModel
from modelops.stores.registry_records import AdapterVersion

if TYPE_CHECKING:
    from modelops.ml.training import TrainedModel

ATTACHED_ADAPTER = "attached"
"""The PEFT name of an adapter :func:`attached` puts beside the trained one."""


class FetchedAdapter:
    """An adapter copied out of the artifact store into a temporary directory."""

    def __init__(self, platform: Platform, version: AdapterVersion):
        from modelops.ml.training import weights_digest

        self._tmp = tempfile.mkdtemp(prefix="adapter-")
        try:
            key = platform.store.key_for(version.artifact_uri)
            self.path = platform.store.get_dir(
                key, Path(self._tmp) / "adapter", expected_sha256=version.artifact_sha256
            )
            self.manifest = json.loads((self.path / MANIFEST_FILE).read_text(encoding="utf-8"))
            digest, _ = weights_digest(self.path)
            if digest != version.weights_sha256:
                raise IntegrityError(
                    f"adapter {version.id}: weights sha256 {digest} "
                    f"!= recorded {version.weights_sha256}"
                )
        except BaseException:
            shutil.rmtree(self._tmp, ignore_errors=True)  # nothing left behind on failure
            raise

    def __enter__(self) -> FetchedAdapter:
        return self

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)


@dataclass(frozen=True)
class LoadedAdapter:
    """An adapter on its base, ready to score: ``labels`` are those of its outputs (for
    a mapped adapter, the new version's labels)."""

    tokenizer: Any
    model: Any
    labels: list[str]
    head: MappedHead | None = None
    """The mapping onto the new labels of a mapped adapter; None for a trained one."""
    out_of_scope: OutOfScopeModel | None = None
    """Its out-of-scope model (``monitoring/out_of_scope.*``); None for adapters trained
    without one."""

    def predict_proba(self, texts: Sequence[str], max_length: int) -> np.ndarray:
        """Probabilities, shape (n, len(labels)), in the order of ``texts``."""
        from modelops.ml.model import predict_proba

        probs = predict_proba(self.tokenizer, self.model, list(texts), max_length=max_length)
        return self.head.apply(probs, texts) if self.head is not None else probs

    def predict(self, texts: Sequence[str], max_length: int) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities (n, len(labels)) and the pooled features the head consumed
        (n, hidden; a mapped adapter's are its old model's), from one forward pass."""
        from modelops.ml.model import predict_with_features

        probs, features = predict_with_features(
            self.tokenizer, self.model, list(texts), max_length=max_length
        )
        return (self.head.apply(probs, texts) if self.head is not None else probs), features

    def oos(
        self, features: np.ndarray, probs: np.ndarray
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Out-of-scope scores and flags of ``features`` and the probabilities served for
        them (``predict``'s pair); (None, None) without a model."""
        if self.out_of_scope is None:
            return None, None
        scores = self.out_of_scope.scores(features, probs.max(1))
        return scores, self.out_of_scope.flags(scores)


def read_mapped_head(directory: Path) -> MappedHead | None:
    """The mapping a mapped adapter directory carries, or None for a trained adapter."""
    path = directory / MAPPED_FILE
    if not path.is_file():
        return None
    return MappedHead.from_dict(json.loads(path.read_text(encoding="utf-8")), str(path))


def load_adapter(platform: Platform, fetched: FetchedAdapter) -> LoadedAdapter:
    """Load a fetched adapter onto the exact base it was trained on (mapped or not)."""
    from modelops.ml.model import load_classifier

    base = platform.resolve_base_by_sha256(fetched.manifest["base_model"]["sha256"])
    tokenizer, model, labels = load_classifier(fetched.path, base.path, base_sha256=base.sha256)
    model.eval()
    return _with_mapping(tokenizer, model, labels, fetched.path)


@contextlib.contextmanager
def loaded_adapters(
    platform: Platform, versions: Mapping[str, AdapterVersion]
) -> Iterator[dict[str, LoadedAdapter]]:
    """Each of ``versions`` fetched and loaded on its own base, by the same names; the
    fetched copies are removed on exit."""
    with contextlib.ExitStack() as stack:
        yield {
            name: load_adapter(platform, stack.enter_context(FetchedAdapter(platform, version)))
            for name, version in versions.items()
        }


@contextlib.contextmanager
def attached(
    trained: TrainedModel, fetched: FetchedAdapter, base: ResolvedBase
) -> Iterator[LoadedAdapter]:
    """``fetched`` as a second adapter on the base already in memory under ``trained``
    (PEFT holds several adapters on one base model): it scores as :func:`load_adapter`
    would load it, without loading the base again. ``base`` is the one in memory; an
    adapter of another base is refused. Removed again on exit. When either is a full
    fine-tune (no PEFT adapter to share a base with), ``fetched`` is loaded on a base of
    its own instead."""
    from safetensors.torch import load_file

    from modelops.ml.adapter_methods import is_full_adapter, is_peft
    from modelops.ml.model import (
        HEAD_FILE,
        LABELS_FILE,
        PooledClassifier,
        check_adapter_files,
        load_classifier,
    )

    path = fetched.path
    check_adapter_files(path)
    check_adapter_base(path, base_path=base.path, base_sha256=base.sha256)
    encoder = trained.model.encoder
    if is_full_adapter(path) or not is_peft(encoder):
        tokenizer, model, labels = load_classifier(path, base.path, base_sha256=base.sha256)
        yield _with_mapping(tokenizer, model.eval(), labels, path)
        return
    active = encoder.active_adapter
    try:
        encoder.load_adapter(str(path), adapter_name=ATTACHED_ADAPTER)
        encoder.set_adapter(ATTACHED_ADAPTER, inference_mode=True)
        info = json.loads((path / LABELS_FILE).read_text(encoding="utf-8"))
        model = PooledClassifier(encoder, len(info["labels"]), info["pooling"], info["normalize"])
        model.head.load_state_dict(load_file(str(path / HEAD_FILE)))
        model.eval()
        yield _with_mapping(trained.tokenizer, model, list(info["labels"]), path)
    finally:
        if ATTACHED_ADAPTER in encoder.peft_config:
            encoder.set_adapter(active, inference_mode=True)
            encoder.delete_adapter(ATTACHED_ADAPTER)


def _with_mapping(tokenizer, model, labels: list[str], directory: Path) -> LoadedAdapter:
    """The scorer of a loaded adapter: as it is, or through the mapping it carries."""
    oos = read_out_of_scope(directory)
    head = read_mapped_head(directory)
    if head is None:
        return LoadedAdapter(tokenizer, model, labels, out_of_scope=oos)
    if head.source_labels != labels:
        raise IntegrityError(
            f"{directory / MAPPED_FILE}: source_labels differ from the weights' labels"
        )
    return LoadedAdapter(tokenizer, model, list(head.target_labels), head, oos)


def read_out_of_scope(directory: Path) -> OutOfScopeModel | None:
    """The out-of-scope model an adapter directory carries in ``monitoring/``, or None."""
    return OutOfScopeModel.load(directory / MONITORING_FOLDER)


def adapter_features(
    platform: Platform, version: AdapterVersion, texts: Sequence[str], *, max_length: int
) -> np.ndarray:
    """The adapter's pooled features of ``texts`` (what its out-of-scope model scores):
    fetched, verified and loaded on its base for the call."""
    with FetchedAdapter(platform, version) as fetched:
        loaded = load_adapter(platform, fetched)
    return loaded.predict(list(texts), max_length)[1]


def predict_with(platform: Platform, fetched: FetchedAdapter, texts: list[str], max_length: int):
    """Load an adapter onto the exact base it was trained on, then score texts."""
    loaded = load_adapter(platform, fetched)
    return loaded.predict_proba(texts, max_length), loaded.labels
