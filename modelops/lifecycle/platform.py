"""The settings and the stores every lifecycle step works against."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property

from modelops.config.settings import Settings
from modelops.ml.catalog import Catalog, ResolvedBase
from modelops.stores.artifacts import ArtifactStore, open_store
from modelops.stores.registry import Registry

log = logging.getLogger(__name__)


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
