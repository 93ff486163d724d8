"""The settings and the stores every lifecycle step works against."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from modelops.config.settings import Settings
from modelops.ml.catalog import Catalog, ResolvedBase
from modelops.stores.artifacts.base import ArtifactStore
from modelops.stores.artifacts.open_store import open_store
from modelops.stores.registry import Registry
from modelops.stores.s3 import download_base_model

if TYPE_CHECKING:
    from modelops.stores.drift_evidence import DriftEvidenceStore
    from modelops.stores.production_log import ProductionLog

log = logging.getLogger(__name__)


@dataclass
class Platform:
    """The settings and the stores every step works against.

    Built from the settings (``from_settings``: the CLI, the demo, tests) or from stores
    opened elsewhere (the Dagster resources, one per store). The production log opens on
    first use unless one is given, and so does the drift evidence store.
    """

    settings: Settings
    registry: Registry
    store: ArtifactStore
    catalog: Catalog
    opened_production_log: ProductionLog | None = field(default=None, repr=False)
    opened_drift_evidence: DriftEvidenceStore | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Platform:
        return cls(
            settings=settings,
            registry=Registry(settings.database_url),
            store=open_store(settings.artifacts_uri, s3_endpoint_url=settings.s3_endpoint_url),
            catalog=Catalog.load(settings.catalog_path),
        )

    @property
    def production_log(self) -> ProductionLog:
        """Predictions and feedback (same database as the registry)."""
        if self.opened_production_log is None:
            from modelops.stores.production_log import ProductionLog

            self.opened_production_log = ProductionLog(self.settings.database_url)
        return self.opened_production_log

    @property
    def drift_evidence(self) -> DriftEvidenceStore:
        """The drift evidence accumulated per recipe (same database as the registry)."""
        if self.opened_drift_evidence is None:
            from modelops.stores.drift_evidence import DriftEvidenceStore

            self.opened_drift_evidence = DriftEvidenceStore(self.settings.database_url)
        return self.opened_drift_evidence

    def base_sources(self) -> dict[str, Any]:
        """What ``Catalog.resolve`` needs to make any base-model location local: the cache
        directory, the S3 download (on the settings' endpoint) and the artifact store."""
        return {
            "cache_dir": self.settings.cache_dir,
            "s3_download": partial(download_base_model, endpoint_url=self.settings.s3_endpoint_url),
            "store": self.store,
        }

    def resolve_base(self, ref: str) -> ResolvedBase:
        return self.catalog.resolve(ref, **self.base_sources())

    def resolve_base_by_sha256(self, sha256: str) -> ResolvedBase:
        return self.catalog.find_by_sha256(sha256, **self.base_sources())
