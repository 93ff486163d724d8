"""The adapter lifecycle: dataset -> adapter -> evaluation -> champion, and reproduce.

These are the platform's steps, written once against the core and the stores. The
Dagster assets and the CLI both call them, so what a run in the UI does and what
``modelops reproduce`` re-does are the same code. Nothing here imports Dagster.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from modelops.core.catalog import Catalog, ResolvedBase
from modelops.core.dataset import (
    PreparedDataset,
    from_parquet_bytes,
    incremental_split,
    to_parquet_bytes,
)
from modelops.core.dataset import prepare_dataset as _prepare
from modelops.core.evaluation import Evaluation, confusion_matrix_png, evaluate
from modelops.core.gates import GateDecision, decide
from modelops.core.lineage import (
    MANIFEST_FILE,
    MANIFEST_FORMAT,
    code_version,
    library_versions,
    now_iso,
)
from modelops.core.modeling import load_classifier, predict_proba
from modelops.core.recipe import LoadedRecipe, Recipe
from modelops.core.taxonomy_mapping import LabelMapping, load_chain
from modelops.core.training import BASELINE_FILE, WarmStart, train_classifier, weights_digest
from modelops.errors import IntegrityError, ModelopsError
from modelops.monitoring import build_bundle
from modelops.settings import Settings
from modelops.stores.artifacts import ArtifactStore, open_store
from modelops.stores.registry import AdapterVersion, AuditEntry, Registry

log = logging.getLogger(__name__)
Emit = Callable[[str], None]


@dataclass
class Platform:
    """The settings and the stores every step works against."""

    settings: Settings
    registry: Registry
    store: ArtifactStore
    catalog: Catalog

    @classmethod
    def from_settings(cls, settings: Settings) -> Platform:
        return cls(
            settings=settings,
            registry=Registry(settings.database_url),
            store=open_store(settings.artifacts_uri, s3_endpoint_url=settings.s3_endpoint_url),
            catalog=Catalog.load(settings.catalog_path),
        )

    @cached_property
    def production_log(self):
        """Predictions and feedback (same database as the registry)."""
        from modelops.stores.production_log import ProductionLog

        return ProductionLog(self.settings.database_url)

    def resolve_base(self, ref: str) -> ResolvedBase:
        return self.catalog.resolve(
            ref, cache_dir=self.settings.cache_dir, s3_endpoint_url=self.settings.s3_endpoint_url
        )

    def resolve_base_by_sha256(self, sha256: str) -> ResolvedBase:
        return self.catalog.find_by_sha256(
            sha256, cache_dir=self.settings.cache_dir, s3_endpoint_url=self.settings.s3_endpoint_url
        )


@dataclass
class DatasetRecord:
    recipe: str
    taxonomy: str
    labels: list[str]
    fingerprint: str
    key: str
    uri: str
    sha256: str
    stats: dict = field(default_factory=dict)
    taxonomy_version: str = ""
    mapping_fingerprint: str | None = None
    review_uri: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class EvaluationOutcome:
    adapter_id: int
    candidate: Evaluation
    champion: Evaluation | None
    champion_id: int | None
    baseline: Evaluation | None
    champion_note: str
    decision: GateDecision
    confusion_png: bytes
    report_uri: str

    def to_dict(self) -> dict:
        return {
            "adapter_id": self.adapter_id,
            "candidate": self.candidate.to_dict(),
            "champion": self.champion.to_dict() if self.champion else None,
            "champion_id": self.champion_id,
            "champion_note": self.champion_note,
            "baseline": self.baseline.to_dict() if self.baseline else None,
            "decision": self.decision.to_dict(),
            "report_uri": self.report_uri,
        }


def taxonomy_mapping(loaded: LoadedRecipe, version: str) -> LabelMapping | None:
    """The mapping from the version the data is labelled in to ``version`` (None: same)."""
    if version == loaded.data_version:
        return None
    return load_chain(loaded.taxonomies_root, loaded.taxonomy.name, loaded.data_version, version)


def build_dataset(
    platform: Platform,
    loaded: LoadedRecipe,
    emit: Emit = log.info,
    taxonomy_version: str | None = None,
    include_feedback: bool = False,
) -> DatasetRecord:
    """Validate, relabel into ``taxonomy_version`` (default: the data's own), add the
    labelled production feedback, split; store as Parquet under the content
    fingerprint, with the review queue beside it."""
    version = taxonomy_version or loaded.data_version
    mapping = taxonomy_mapping(loaded, version)
    feedback = None
    if include_feedback:
        feedback = platform.production_log.feedback(loaded.name)
        feedback = feedback.rename(columns={"true_label": "label"})[["text", "label"]]
        feedback = feedback[feedback["text"].notna()]
        emit(f"{len(feedback)} labelled feedback rows from production")
    dataset = _prepare(
        loaded,
        s3_endpoint_url=platform.settings.s3_endpoint_url,
        mapping=mapping,
        extra_rows=feedback,
    )
    if mapping is not None:
        emit(
            f"relabelled {mapping.source} -> {mapping.target}: "
            f"{dataset.stats['review_rows']} rows to review, "
            f"{dataset.stats['retired_rows']} rows of retired labels left out"
        )
    prefix = f"datasets/{loaded.name}/{version}/{dataset.fingerprint}"
    key = f"{prefix}.parquet"
    if platform.store.exists(key):
        sha = _stored_sha(platform.store, key)
        emit(f"dataset {dataset.fingerprint[:12]} already stored at {key}")
    else:
        sha = platform.store.put_bytes(key, to_parquet_bytes(dataset)).sha256
        emit(f"stored dataset {dataset.fingerprint[:12]} ({len(dataset.frame)} rows) at {key}")
    review_uri = None
    if dataset.review is not None and len(dataset.review):
        review_key = f"{prefix}.review.parquet"
        if not platform.store.exists(review_key):
            platform.store.put_bytes(review_key, _review_parquet(dataset.review))
        review_uri = platform.store.uri_for(review_key)
    return DatasetRecord(
        recipe=loaded.name,
        taxonomy=f"{loaded.taxonomy.name}:{version}",
        labels=dataset.labels,
        fingerprint=dataset.fingerprint,
        key=key,
        uri=platform.store.uri_for(key),
        sha256=sha,
        stats=dataset.stats,
        taxonomy_version=version,
        mapping_fingerprint=mapping.fingerprint() if mapping else None,
        review_uri=review_uri,
    )


def _review_parquet(review) -> bytes:
    import io

    frame = review.copy()
    frame["candidates"] = [",".join(c) for c in frame["candidates"]]
    buffer = io.BytesIO()
    frame.reset_index(drop=True).to_parquet(buffer, index=False)
    return buffer.getvalue()


def _stored_sha(store: ArtifactStore, key: str) -> str:
    from modelops.core.fingerprint import sha256_bytes

    return sha256_bytes(store.get_bytes(key))


def load_dataset(platform: Platform, manifest_dataset: dict) -> PreparedDataset:
    data = platform.store.get_bytes(
        manifest_dataset["key"], expected_sha256=manifest_dataset["sha256"]
    )
    return from_parquet_bytes(data, manifest_dataset["labels"], manifest_dataset["fingerprint"])


def train_adapter(
    platform: Platform,
    loaded: LoadedRecipe,
    dataset: DatasetRecord,
    emit: Emit = log.info,
    mode: str = "full",
) -> AdapterVersion:
    """Train an adapter from a stored dataset, store it, register it as candidate.

    ``mode="incremental"`` warm-starts from the champion of the same taxonomy version and
    trains on the rows it has not seen plus a replay sample of those it has (the recipe's
    ``retraining`` settings); without such a champion it trains in full.

    An adapter already registered with the same lineage (recipe fingerprint, dataset
    fingerprint, base-model hash, warm start) is returned without training: re-running
    finished work is a no-op. Identical weights are never registered twice.
    """
    recipe = loaded.recipe
    base = platform.resolve_base(recipe.base_model)
    emit(f"base model {base.entry.ref} sha256 {base.sha256[:12]} at {base.path}")
    recipe_fingerprint = loaded.fingerprint()
    version = dataset.taxonomy_version or loaded.data_version
    warm = None
    if mode == "incremental":
        warm = platform.registry.alias(loaded.name, "champion", taxonomy_version=version)
        if warm is None:
            emit(f"no champion of {version} to warm-start from: training in full")
    for existing in platform.registry.list(loaded.name):
        if (
            existing.recipe_fingerprint == recipe_fingerprint
            and existing.dataset_fingerprint == dataset.fingerprint
            and existing.base_model_sha256 == base.sha256
            and (existing.lineage.get("warm_start") or {}).get("adapter_id")
            == (warm.id if warm else None)
        ):
            emit(f"adapter {existing.id} already has this lineage; not training again")
            return existing
    record = dataset.to_dict()
    threads = platform.settings.torch_threads
    lineage = {
        "recipe": loaded.name,
        "recipe_fingerprint": recipe_fingerprint,
        "recipe_snapshot": loaded.snapshot(),
        "taxonomy": dataset.taxonomy,
        "taxonomy_version": version,
        "data_taxonomy": loaded.taxonomy.ref,
        "mapping_fingerprint": dataset.mapping_fingerprint,
        "dataset": {k: record[k] for k in ("key", "sha256", "fingerprint", "labels", "uri")},
        "base_model": {
            "ref": base.entry.ref,
            "sha256": base.sha256,
            "architecture": base.entry.architecture,
            "pooling": recipe.head.pooling or base.entry.pooling,
        },
        "seed": recipe.training.seed,
        "torch_threads": threads,
        "mode": "incremental" if warm else "full",
        "warm_start": None,
    }
    with tempfile.TemporaryDirectory(prefix="adapter-") as tmp:
        out = Path(tmp) / "adapter"
        if warm is not None:
            lineage["warm_start"] = {
                "adapter_id": warm.id,
                "weights_sha256": warm.weights_sha256,
                "replay_fraction": recipe.retraining.replay_fraction,
                "epochs": recipe.retraining.epochs or recipe.training.epochs,
            }
        result, prepared = _train(platform, recipe, base, record, lineage, out, threads, emit)
        for existing in platform.registry.find_by_weights(loaded.name, result.weights_sha256):
            if existing.taxonomy_version == version and (
                existing.lineage.get("dataset", {}).get("labels") == dataset.labels
            ):
                emit(f"identical weights already registered as adapter {existing.id}; reusing")
                return existing
        thresholds = build_bundle(
            recipe=recipe, base=base, dataset=prepared, adapter_dir=out, emit=emit
        )
        manifest = {
            "format": MANIFEST_FORMAT,
            **lineage,
            "weights_sha256": result.weights_sha256,
            "files": result.files,
            "history": result.history,
            "baseline": {k: v for k, v in result.baseline.items() if k != "test"},
            "drift_thresholds": thresholds,
            "code_version": code_version(),
            "libraries": library_versions(),
            "train_seconds": result.seconds,
            "train_rows": result.train_rows,
            "samples_per_second": result.samples_per_second,
            "created_at": now_iso(),
        }
        (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        key = f"adapters/{loaded.name}/{version}/{result.weights_sha256[:24]}"
        ref = platform.store.put_dir(key, out)
    last = result.history[-1] if result.history else {}
    metrics = {
        "train_loss": last.get("train_loss"),
        "validation_accuracy": last.get("validation_accuracy"),
        "validation_macro_f1": last.get("validation_macro_f1"),
        "samples_per_second": result.samples_per_second,
        "train_seconds": result.seconds,
        "train_rows": result.train_rows,
        "baseline_test_macro_f1": result.baseline["test"]["macro_f1"],
    }
    registered = platform.registry.register(
        recipe=loaded.name,
        taxonomy_version=version,
        base_model=base.entry.ref,
        base_model_sha256=base.sha256,
        dataset_fingerprint=dataset.fingerprint,
        recipe_fingerprint=lineage["recipe_fingerprint"],
        artifact_uri=ref.uri,
        artifact_sha256=ref.sha256,
        weights_sha256=result.weights_sha256,
        lineage={k: v for k, v in manifest.items() if k != "files"},
        metrics=metrics,
        who=platform.settings.user,
    )
    emit(f"registered adapter {registered.id} ({ref.uri}) as candidate")
    return registered


def _train(platform, recipe, base, record, lineage, out, threads, emit):
    """Train from a lineage (full, or incremental from its warm start); the training
    runs of ``train_adapter`` and ``reproduce`` are this one function."""
    prepared = load_dataset(platform, record)
    warm = lineage.get("warm_start")
    if not warm:
        result = train_classifier(
            recipe=recipe, base=base, dataset=prepared, out_dir=out, threads=threads, emit=emit
        )
        return result, prepared
    champion = platform.registry.get(warm["adapter_id"])
    previous = load_dataset(platform, champion.lineage["dataset"])
    subset = incremental_split(prepared, previous, warm["replay_fraction"])
    emit(
        f"incremental from adapter {champion.id}: "
        f"{subset.stats['incremental_new_train_rows']} new and "
        f"{subset.stats['incremental_replay_rows']} replayed training rows"
    )
    training = recipe.training.model_copy(update={"epochs": warm["epochs"]})
    seen = previous.split("train")  # the champion's training rows
    replayed = subset.split("train")["text_sha256"].isin(set(seen["text_sha256"])).to_numpy()
    with FetchedAdapter(platform, champion) as fetched:
        result = train_classifier(
            recipe=recipe.model_copy(update={"training": training}),
            base=base,
            dataset=subset,
            out_dir=out,
            threads=threads,
            emit=emit,
            warm_start=WarmStart(
                path=fetched.path,
                seen_labels=frozenset(seen["label"]),
                sample_weight=np.where(replayed, 1 / warm["replay_fraction"], 1.0),
            ),
        )
    return result, prepared


class FetchedAdapter:
    """An adapter copied out of the artifact store into a temporary directory."""

    def __init__(self, platform: Platform, version: AdapterVersion):
        self._tmp = tempfile.mkdtemp(prefix="adapter-")
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

    def __enter__(self) -> FetchedAdapter:
        return self

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)


def _predict(platform: Platform, fetched: FetchedAdapter, texts: list[str], max_length: int):
    """Load an adapter onto the exact base it was trained on, then score texts."""
    base = platform.resolve_base_by_sha256(fetched.manifest["base_model"]["sha256"])
    tokenizer, model, labels = load_classifier(fetched.path, base.path)
    return predict_proba(tokenizer, model, texts, max_length=max_length), labels


def evaluate_adapter(
    platform: Platform,
    adapter_id: int,
    emit: Emit = log.info,
    loaded: LoadedRecipe | None = None,
) -> EvaluationOutcome:
    """Score the candidate and the champion on the candidate's test split; decide gates.

    The champion is the one of the candidate's taxonomy version. When that version has
    none yet, the serving champion of an earlier version is compared instead, its
    predictions mapped onto the new labels through the taxonomy mapping (``loaded``
    gives the taxonomy files); predictions the mapping cannot carry over (splits no rule
    decides, retired labels) count as errors.
    """
    version = platform.registry.get(adapter_id)
    with FetchedAdapter(platform, version) as fetched:
        manifest = fetched.manifest
        recipe = Recipe.model_validate(manifest["recipe_snapshot"]["recipe"])
        dataset = load_dataset(platform, manifest["dataset"])
        test = dataset.split("test")
        texts, y = test["text"].tolist(), _indices(test, dataset.labels)
        max_length = recipe.training.max_length
        probs, labels = _predict(platform, fetched, texts, max_length)
        candidate = evaluate(y, probs, labels)
        baseline_doc = json.loads((fetched.path / BASELINE_FILE).read_text(encoding="utf-8"))
        baseline = Evaluation.from_dict(baseline_doc["test"])
    emit(
        f"adapter {adapter_id}: accuracy {candidate.accuracy:.4f}, "
        f"macro-F1 {candidate.macro_f1:.4f}"
    )
    champion_eval, champion_id, note, rows = _champion_evaluation(
        platform, version, texts, y, labels, max_length, loaded, emit
    )
    compared = None if rows is None else evaluate(y[rows], probs[rows], labels)
    decision = decide(
        candidate, settings=recipe.gates, champion=champion_eval, baseline=baseline,
        compared=compared,
    )
    png = confusion_matrix_png(candidate, title=f"{version.recipe} adapter {adapter_id}")
    outcome = EvaluationOutcome(
        adapter_id=adapter_id,
        candidate=candidate,
        champion=champion_eval,
        champion_id=champion_id,
        baseline=baseline,
        champion_note=note,
        decision=decision,
        confusion_png=png,
        report_uri="",
    )
    prefix = f"evaluations/{version.recipe}/adapter-{adapter_id}/{candidate_digest(outcome)}"
    platform.store.put_bytes(f"{prefix}/confusion_matrix.png", png)
    outcome.report_uri = platform.store.put_bytes(
        f"{prefix}/evaluation.json", json.dumps(outcome.to_dict(), indent=2).encode()
    ).uri
    metrics = {
        "test_accuracy": candidate.accuracy,
        "test_macro_f1": candidate.macro_f1,
        "test_ece": candidate.ece,
        "champion_test_macro_f1": champion_eval.macro_f1 if champion_eval else None,
        "evaluation_uri": outcome.report_uri,
    }
    platform.registry.record_evaluation(
        adapter_id, metrics=metrics, gate=decision.to_dict(), who=platform.settings.user
    )
    for check in decision.checks:
        emit(f"gate {check.name}: {'pass' if check.passed else 'FAIL'}: {check.description}")
    return outcome


def _champion_evaluation(platform, version, texts, y, labels, max_length, loaded, emit):
    """(champion Evaluation on the candidate's test split, champion id, note, rows): rows
    is None when the champion was scored on the whole split, else the mask of the rows."""
    registry = platform.registry
    champion = registry.alias(version.recipe, "champion", taxonomy_version=version.taxonomy_version)
    mapped = False
    if champion is None:
        champion = registry.alias(version.recipe, "champion")  # the serving one
        mapped = champion is not None and champion.taxonomy_version != version.taxonomy_version
    if champion is None or champion.id == version.id:
        return None, None, "no champion yet", None
    with FetchedAdapter(platform, champion) as fetched:
        c_probs, c_labels = _predict(platform, fetched, texts, max_length)
    if not mapped:
        if c_labels != labels:
            return None, None, f"champion {champion.id} has another label set", None
        result = evaluate(y, c_probs, labels)
        emit(f"champion {champion.id} on the same test split: macro-F1 {result.macro_f1:.4f}")
        return result, champion.id, f"champion {champion.id} ({champion.taxonomy_version})", None
    if loaded is None:
        note = f"champion {champion.id} is of {champion.taxonomy_version}; no mapping"
        return None, None, note, None
    mapping = load_chain(
        loaded.taxonomies_root,
        loaded.taxonomy.name,
        champion.taxonomy_version,
        version.taxonomy_version,
    )
    # Rows of labels a split rule derives are left out: their labels may come from the
    # same rules the champion's predictions are carried through (docs/taxonomies.md).
    derived = mapping.rule_derived_labels()
    rows = np.array([labels[i] not in derived for i in y], dtype=bool)
    head = f"champion {champion.id} of {champion.taxonomy_version}"
    if not rows.any():
        note = (
            f"{head} not compared: every test label of {version.taxonomy_version} comes from "
            "a split rule, which would also decide the mapped champion's predictions"
        )
        emit(note)
        return None, None, note, None
    mapped = _mapped_probs(mapping, c_probs, c_labels, texts, y, labels)
    result = evaluate(y[rows], mapped[rows], labels)
    note = f"{head}, predictions mapped onto {version.taxonomy_version} labels"
    if not rows.all():
        note += (
            f", on the {int(rows.sum())} of {len(rows)} test rows whose labels no split rule "
            f"derives ({len(derived)} labels left out)"
        )
    emit(f"{note}: macro-F1 {result.macro_f1:.4f}")
    return result, champion.id, note, (None if rows.all() else rows)


def _mapped_probs(mapping, probs, old_labels, texts, y, labels):
    """One-hot probabilities of the old model's predictions carried through ``mapping``;
    a prediction with no single new label becomes a (deliberately) wrong one."""
    index = {name: i for i, name in enumerate(labels)}
    out = np.zeros((len(texts), len(labels)))
    for row, (pred, text, truth) in enumerate(zip(probs.argmax(1), texts, y, strict=True)):
        new = mapping.map_label(old_labels[pred], text)
        out[row, index[new] if new in index else (truth + 1) % len(labels)] = 1.0
    return out


def candidate_digest(outcome: EvaluationOutcome) -> str:
    from modelops.core.fingerprint import sha256_json

    body = {k: v for k, v in outcome.to_dict().items() if k != "report_uri"}
    return sha256_json(body)[:16]


def _indices(frame, labels: list[str]):
    from modelops.core.dataset import encode_labels

    return encode_labels(frame, labels)


def promote_if_passed(
    platform: Platform, adapter_id: int, *, who: str, why: str
) -> AuditEntry | None:
    """Make the adapter its taxonomy version's champion when its recorded gate passed;
    the registry moves the recipe's serving alias with it when the version is current.

    Returns None when it already is the champion. Raises when the gate failed.
    """
    version = platform.registry.get(adapter_id)
    current = platform.registry.alias(
        version.recipe, "champion", taxonomy_version=version.taxonomy_version
    )
    if current is not None and current.id == adapter_id:
        return None
    gate = version.gate or {}
    if not gate.get("passed"):
        raise ModelopsError(f"adapter {adapter_id} did not pass its gates; not promoted")
    evidence = {"gate": gate, "metrics": version.metrics}
    return platform.registry.promote(adapter_id, who=who, why=why, evidence=evidence)


def reproduce(platform: Platform, adapter_id: int, emit: Emit = log.info) -> dict:
    """Re-run an adapter's recorded lineage and compare the new weights' sha256."""
    version = platform.registry.get(adapter_id)
    lineage = version.lineage
    recipe = Recipe.model_validate(lineage["recipe_snapshot"]["recipe"])
    base = platform.resolve_base_by_sha256(lineage["base_model"]["sha256"])
    if lineage["dataset"]["fingerprint"] != version.dataset_fingerprint:
        raise IntegrityError(f"adapter {adapter_id}: recorded dataset fingerprints differ")
    threads = int(lineage.get("torch_threads") or platform.settings.torch_threads)
    emit(f"re-training adapter {adapter_id} from its lineage ({threads} torch threads)")
    with tempfile.TemporaryDirectory(prefix="reproduce-") as tmp:
        result, _ = _train(
            platform,
            recipe,
            base,
            lineage["dataset"],
            lineage,
            Path(tmp) / "adapter",
            threads,
            emit,
        )
    return {
        "adapter_id": adapter_id,
        "recipe": version.recipe,
        "recorded_weights_sha256": version.weights_sha256,
        "reproduced_weights_sha256": result.weights_sha256,
        "identical": result.weights_sha256 == version.weights_sha256,
        "recipe_fingerprint": version.recipe_fingerprint,
        "dataset_fingerprint": version.dataset_fingerprint,
        "base_model_sha256": base.sha256,
        "seed": recipe.training.seed,
        "torch_threads": threads,
        "warm_start": lineage.get("warm_start"),
        "recorded_code_version": lineage.get("code_version"),
        "code_version": code_version(),
        "recorded_libraries": lineage.get("libraries"),
        "libraries": library_versions(),
    }
