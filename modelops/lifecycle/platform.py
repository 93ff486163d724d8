"""The settings and the stores every lifecycle step works against."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from modelops.config.settings import Settings
from modelops.ml.catalog import Catalog, ResolvedBase
from modelops.stores.artifacts.base import ArtifactStore
from modelops.stores.artifacts.open_store import open_store
from modelops.stores.registry import Registry

if TYPE_CHECKING:
    from modelops.stores.production_log import ProductionLog

log = logging.getLogger(__name__)


@dataclass
class Platform:
    """The settings and the stores every step works against.

    Built from the settings (``from_settings``: the CLI, the demo, tests) or from stores
    opened elsewhere (the Dagster resources, one per store). The production log opens on
    first use unless one is given.
    """

    settings: Settings
    registry: Registry
    store: ArtifactStore
    catalog: Catalog
    opened_production_log: ProductionLog | None = field(default=None, repr=False)

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

    def resolve_base(self, ref: str) -> ResolvedBase:
        return self.catalog.resolve(
            ref, cache_dir=self.settings.cache_dir, s3_endpoint_url=self.settings.s3_endpoint_url,
            store=self.store,
        )

    def resolve_base_by_sha256(self, sha256: str) -> ResolvedBase:
        return self.catalog.find_by_sha256(
            sha256, cache_dir=self.settings.cache_dir,
            s3_endpoint_url=self.settings.s3_endpoint_url, store=self.store,
        )
