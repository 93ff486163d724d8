"""Adapters copied out of the artifact store, verified, and scored on their own base."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from modelops.config.errors import IntegrityError
from modelops.domain.lineage import (
    MANIFEST_FILE,
)
from modelops.lifecycle.platform import Platform
from modelops.ml.model import load_classifier, predict_proba
from modelops.ml.training import weights_digest
from modelops.stores.registry_records import AdapterVersion


class FetchedAdapter:
    """An adapter copied out of the artifact store into a temporary directory."""

    def __init__(self, platform: Platform, version: AdapterVersion):
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


def predict_with(platform: Platform, fetched: FetchedAdapter, texts: list[str], max_length: int):
    """Load an adapter onto the exact base it was trained on, then score texts."""
    base = platform.resolve_base_by_sha256(fetched.manifest["base_model"]["sha256"])
    tokenizer, model, labels = load_classifier(fetched.path, base.path)
    return predict_proba(tokenizer, model, texts, max_length=max_length), labels
