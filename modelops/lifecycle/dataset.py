"""The dataset step: validate, relabel, add feedback, split, store under the fingerprint."""

from __future__ import annotations

import io
import logging
from dataclasses import asdict, dataclass, field
from functools import partial

from modelops.config.fingerprint import sha256_bytes
from modelops.config.progress import Emit
from modelops.config.recipe import LoadedRecipe
from modelops.domain.dataset import (
    PreparedDataset,
    ReadBytes,
    from_parquet_bytes,
    prepare_dataset,
    read_local,
    to_parquet_bytes,
)
from modelops.domain.label_mapping import LabelMapping
from modelops.domain.taxonomy_mapping import load_chain
from modelops.lifecycle.platform import Platform
from modelops.stores.artifacts.base import ArtifactStore
from modelops.stores.s3 import read_object

log = logging.getLogger(__name__)


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


def read_source(uri: str, *, s3_endpoint_url: str | None = None) -> bytes:
    """The bytes of a recipe's data source: ``s3://`` through the S3 store (on
    ``s3_endpoint_url``, default AWS), anything else a local file."""
    if uri.startswith("s3://"):
        return read_object(uri, endpoint_url=s3_endpoint_url)
    return read_local(uri)


def source_reader(platform: Platform) -> ReadBytes:
    """:func:`read_source` on the platform's S3 endpoint: what ``prepare_dataset`` reads with."""
    return partial(read_source, s3_endpoint_url=platform.settings.s3_endpoint_url)


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
    dataset = prepare_dataset(
        loaded,
        read=source_reader(platform),
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
    frame = review.copy()
    frame["candidates"] = [",".join(c) for c in frame["candidates"]]
    buffer = io.BytesIO()
    frame.reset_index(drop=True).to_parquet(buffer, index=False)
    return buffer.getvalue()


def _stored_sha(store: ArtifactStore, key: str) -> str:
    return sha256_bytes(store.get_bytes(key))


def load_dataset(platform: Platform, manifest_dataset: dict) -> PreparedDataset:
    data = platform.store.get_bytes(
        manifest_dataset["key"], expected_sha256=manifest_dataset["sha256"]
    )
    return from_parquet_bytes(
        data,
        manifest_dataset["labels"],
        manifest_dataset["fingerprint"],
        source=platform.store.uri_for(manifest_dataset["key"]),
    )
