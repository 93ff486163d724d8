"""One copy of each base model in memory, every adapter trained on it loaded beside it.

Each base (identified by the sha256 the catalog records for it) is loaded once; the
adapters trained on it are PEFT adapters of one :class:`peft.PeftModel`, each under its
own name (``a<adapter id>``), with its own classification head, labels, pooling and
``max_length``. Scoring an adapter selects it (``set_adapter``) and runs its
:class:`~modelops.ml.model.PooledClassifier` (the shared encoder and its own head: the
forward pass of training), so a base's forward passes run one at a time (a lock per
base): the adapter chosen is the one used for the whole pass. Adding or removing an
adapter takes the same lock, so it never changes a model in the middle of a pass.

A full fine-tune (``adapter.method: full``) has no PEFT adapter to put on a shared base: it
gets a base of its own (``SharedBase(own=True)``), the base's encoder loaded once more with
the adapter's weights in place, counted as the adapter's parameters, not the base's.

The adapters are fetched out of the artifact store and verified (sha256) exactly as the
:class:`~modelops.serving.predictor.Predictor` does it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from modelops.config.errors import IntegrityError, NotFoundError
from modelops.config.recipe import Recipe
from modelops.domain.mapped_head import MappedHead
from modelops.lifecycle.fetch import FetchedAdapter, read_mapped_head, read_out_of_scope
from modelops.lifecycle.platform import Platform
from modelops.ml.adapter_methods import is_full_adapter, load_encoder
from modelops.ml.base_inspect import check_adapter_base
from modelops.ml.model import (
    PooledClassifier,
    load_base,
    load_head,
    run_batches,
    split_features,
    tokenize,
)
from modelops.monitoring.out_of_scope import OutOfScopeModel
from modelops.stores.registry_records import AdapterVersion

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Scored:
    """What one forward pass gives for some texts: the probabilities (n, labels) and, when
    the adapter has an out-of-scope model, each text's score and flag (else None). Sliced
    by rows (``scored[a:b]``) as a batch is handed back to its requests."""

    probs: np.ndarray
    oos_scores: np.ndarray | None = None
    oos_flags: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.probs)

    def oos(self, row: int) -> tuple[float | None, bool | None]:
        """Row ``row``'s out-of-scope score and flag; (None, None) without the model."""
        if self.oos_scores is None or self.oos_flags is None:
            return None, None
        return float(self.oos_scores[row]), bool(self.oos_flags[row])

    def __getitem__(self, rows: slice) -> Scored:
        def cut(values: np.ndarray | None) -> np.ndarray | None:
            return None if values is None else np.asarray(values[rows])

        return Scored(np.asarray(self.probs[rows]), cut(self.oos_scores), cut(self.oos_flags))


@dataclass(frozen=True)
class SharedBaseAdapter:
    """An adapter of the pool, ready to score on the shared copy of its base."""

    version: AdapterVersion
    name: str
    """Its PEFT adapter name on the base (``a<id>``)."""
    base: str
    """The catalog reference of its base (``minilm@v1``), as the response reports it."""
    base_sha256: str
    labels: list[str]
    classifier: PooledClassifier
    """The shared base's encoder (its PEFT model) with this adapter's own head."""
    max_length: int
    mapped: MappedHead | None = None
    """For a mapped candidate (a taxonomy change served by the previous champion), the
    mapping of its outputs onto ``labels``; None for a trained adapter."""
    out_of_scope: OutOfScopeModel | None = None
    """Its out-of-scope model (``modelops.monitoring.out_of_scope``); None for adapters
    trained without one (their predictions then carry no score)."""
    own_encoder: bool = False
    """A full fine-tune, on an encoder of its own (see the module's docstring)."""

    @property
    def id(self) -> int:
        return self.version.id

    @property
    def key(self) -> str:
        """Its base's key in the pool: the base's sha256, or its own for a full fine-tune."""
        return f"{self.base_sha256}/{self.name}" if self.own_encoder else self.base_sha256


class SharedBase:
    """One base encoder and the named PEFT adapters loaded on it; with ``own``, the encoder
    of one full fine-tune (its weights loaded into it, no PEFT)."""

    def __init__(
        self, sha256: str, ref: str, tokenizer: Any, encoder: nn.Module, own: bool = False
    ):
        self.sha256 = sha256
        self.ref = ref
        self.tokenizer = tokenizer
        self.encoder = encoder
        self.own = own
        self.model: Any = None  # the PeftModel (or own encoder), once an adapter is on it
        self.names: set[str] = set()
        self.merged = False
        """Whether the only adapter on the base is merged into its weights (see _settle)."""
        self.lock = threading.Lock()

    def add(self, name: str, adapter_dir: str) -> None:
        from peft import PeftModel

        with self.lock:
            if self.own:
                self.model = load_encoder(self.encoder, adapter_dir, trainable=False).eval()
                self.names.add(name)
                return
            self._unmerge()
            if self.model is None:
                self.model = PeftModel.from_pretrained(self.encoder, adapter_dir, adapter_name=name)
            else:
                self.model.load_adapter(adapter_dir, adapter_name=name)
            self.model.eval()
            self.names.add(name)
            self._settle()

    def remove(self, name: str) -> None:
        with self.lock:
            if name not in self.names:
                return
            if self.own:
                self.names.discard(name)
                return
            self._unmerge()
            if len(self.names) > 1:  # PEFT keeps one adapter: the last one stays until replaced
                if self.model.active_adapter == name:
                    self.model.set_adapter(next(n for n in self.names if n != name))
                self.model.delete_adapter(name)
            self.names.discard(name)
            self._settle()

    def _settle(self) -> None:
        """Merge the adapter into the base's weights while it is the only one on it, so a
        base serving one recipe runs as fast as a merged model (no LoRA branch per layer);
        with two or more (another recipe, a hot swap, a shadow candidate) each batch runs
        unmerged with its adapter active. Merging happens only when adapters come or go,
        never per batch, so the weights are not rounded back and forth. Under the lock."""
        if len(self.names) == 1 and not self.merged:
            (only,) = self.names
            self.model.set_adapter(only)
            self.model.merge_adapter([only])
            self.merged = True

    def _unmerge(self) -> None:
        if self.merged:
            self.model.unmerge_adapter()
            self.merged = False

    def classifier(self, name: str, head: nn.Linear, info: dict) -> PooledClassifier:
        """The classifier of adapter ``name`` (on the base already): this base's encoder
        and the adapter's ``head``, with the pooling of its ``labels.json`` ``info``."""
        with self.lock:
            if name not in self.names:
                raise NotFoundError(f"adapter {name} is not on base {self.ref}")
            classifier = PooledClassifier(
                self.model, len(info["labels"]), info["pooling"], info["normalize"], head=head
            )
            return classifier.eval()

    def logits(
        self, adapter: SharedBaseAdapter, texts: Sequence[str], batch_size: int
    ) -> np.ndarray:
        """The pooled features and the logits of ``texts``, side by side, from one forward
        pass (:meth:`PooledClassifier.features_and_logits`; split by
        :func:`~modelops.ml.model.split_features`)."""
        encoded = tokenize(self.tokenizer, texts, adapter.max_length)
        classifier = adapter.classifier
        with self.lock:
            if adapter.name not in self.names:
                raise NotFoundError(f"adapter {adapter.id} is no longer loaded")
            if not (self.merged or self.own):  # merged: the only adapter, in the weights
                self.model.set_adapter(adapter.name)
            return run_batches(
                classifier.features_and_logits, encoded, self.tokenizer.pad_token_id, batch_size
            )

    def base_tensors(self) -> list[torch.Tensor]:
        """The base's own parameters (not the adapters' LoRA weights; none of a full
        fine-tune's own encoder: those are the adapter's)."""
        if self.own:
            return []
        return [p for n, p in self.encoder.named_parameters() if "lora_" not in n]

    def adapter_tensors(self) -> list[torch.Tensor]:
        """What the adapters on it add to the base: LoRA weights, or a full fine-tune's
        whole encoder."""
        if self.own:
            return list(self.encoder.parameters())
        return [p for n, p in self.encoder.named_parameters() if "lora_" in n]


class ModelPool:
    """Adapters by id, each on the one shared copy of its base; thread-safe."""

    def __init__(self, platform: Platform, *, batch_size: int = 64):
        self.platform = platform
        self.batch_size = batch_size
        self._bases: dict[str, SharedBase] = {}
        self._adapters: dict[int, SharedBaseAdapter] = {}
        self._lock = threading.Lock()  # guards the two dicts
        self._load_lock = threading.Lock()  # one load at a time

    def get(self, adapter_id: int) -> SharedBaseAdapter | None:
        return self._adapters.get(adapter_id)

    def loaded(self) -> list[SharedBaseAdapter]:
        return sorted(self._adapters.values(), key=lambda a: a.id)

    def bases(self) -> list[SharedBase]:
        return list(self._bases.values())

    def load(self, version: AdapterVersion) -> SharedBaseAdapter:
        """The adapter, loaded onto its base (the base too, the first time); idempotent.

        Loads run one at a time; fetching and reading do not block scoring (only the
        moment the adapter joins its base does)."""
        with self._load_lock:
            loaded = self._adapters.get(version.id)
            if loaded is not None:
                return loaded
            with FetchedAdapter(self.platform, version) as fetched:
                manifest = fetched.manifest
                sha = manifest["base_model"]["sha256"]
                name = f"a{version.id}"
                own = is_full_adapter(fetched.path)
                base = self._base(version, sha, f"{sha}/{name}" if own else sha, own)
                head, info = load_head(fetched.path, base.encoder.config.hidden_size)
                mapped = read_mapped_head(fetched.path)
                if mapped is not None and list(mapped.source_labels) != list(info["labels"]):
                    raise IntegrityError(
                        f"adapter {version.id}: its label mapping's source labels differ from "
                        "the labels of its weights"
                    )
                check_adapter_base(fetched.path, base_sha256=sha, base_config=base.encoder.config)
                base.add(name, str(fetched.path))
                classifier = base.classifier(name, head, info)
                out_of_scope = read_out_of_scope(fetched.path)
            recipe = Recipe.model_validate(manifest["recipe_snapshot"]["recipe"])
            adapter = SharedBaseAdapter(
                version=version,
                name=name,
                base=version.base_model,
                base_sha256=sha,
                labels=list(mapped.target_labels if mapped else info["labels"]),
                classifier=classifier,
                max_length=recipe.training.max_length,
                mapped=mapped,
                out_of_scope=out_of_scope,
                own_encoder=own,
            )
            with self._lock:
                self._adapters[version.id] = adapter
            logger.info(
                "adapter %s of recipe %s loaded on %s", version.id, version.recipe, base.ref
            )
            return adapter

    def _base(self, version: AdapterVersion, sha: str, key: str, own: bool) -> SharedBase:
        """The base in the pool under ``key``, loaded the first time (``own``: a full
        fine-tune's encoder of its own, loaded for it alone)."""
        base = self._bases.get(key)
        if base is None:
            resolved = self.platform.resolve_base_by_sha256(sha)
            tokenizer, encoder = load_base(resolved.path)
            ref = version.base_model + (f" (fully fine-tuned by adapter {version.id})" * own)
            base = SharedBase(sha, ref, tokenizer, encoder, own=own)
            with self._lock:
                self._bases[key] = base
            logger.info("base %s loaded (sha256 %s)", base.ref, sha[:12])
        return base

    def unload(self, adapter_id: int) -> None:
        """Take an adapter off its base (the caller makes sure nothing still scores it)."""
        with self._lock:
            adapter = self._adapters.pop(adapter_id, None)
            if adapter is None:
                return
            base = self._bases[adapter.key]
            base.remove(adapter.name)
            logger.info("adapter %s unloaded", adapter_id)
            # no adapter left on it (its recipes moved to another base, or it was a full
            # fine-tune's own), and no load that may be putting one on it right now
            if not base.names and not self._load_lock.locked():
                del self._bases[adapter.key]
                logger.info("base %s unloaded", base.ref)

    def probabilities(self, adapter: SharedBaseAdapter, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities of cleaned ``texts`` under ``adapter``, shape (n, labels),
        in input order; scored sorted by length, in chunks of ``batch_size`` texts each
        padded to its own longest text."""
        return self.score(adapter, texts).probs

    def score(self, adapter: SharedBaseAdapter, texts: Sequence[str]) -> Scored:
        """:meth:`probabilities` and, from the same forward pass, the out-of-scope score
        and flag of each text (None without an out-of-scope model)."""
        if not texts:
            empty = np.zeros(0)
            oos = None if adapter.out_of_scope is None else (empty, empty.astype(bool))
            return Scored(np.zeros((0, len(adapter.labels)), np.float32), *(oos or (None, None)))
        out = self._bases[adapter.key].logits(adapter, texts, self.batch_size)
        probs, features = split_features(out, adapter.classifier)
        if adapter.mapped is not None:
            probs = adapter.mapped.apply(probs, texts)
        if adapter.out_of_scope is None:
            return Scored(probs)
        scores = adapter.out_of_scope.scores(features, probs.max(1))
        return Scored(probs, scores, adapter.out_of_scope.flags(scores))

    def base_parameter_count(self) -> int:
        """How many base-model parameters are in memory, over every base (shared
        storage counted once): what several adapters on one base must not multiply."""
        seen: set[int] = set()
        total = 0
        for base in self._bases.values():
            for tensor in base.base_tensors():
                ptr = tensor.untyped_storage().data_ptr()
                if ptr not in seen:
                    seen.add(ptr)
                    total += tensor.numel()
        return total

    def adapter_parameter_count(self) -> int:
        """Parameters the loaded adapters add (LoRA weights, full fine-tunes' encoders and
        heads)."""
        added = sum(p.numel() for base in self._bases.values() for p in base.adapter_tensors())
        return added + sum(
            sum(p.numel() for p in a.classifier.head.parameters()) for a in self.loaded()
        )
