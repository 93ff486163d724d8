"""Dagster resources: the platform's stores, configured from Settings."""

from __future__ import annotations

from functools import cached_property

import dagster as dg

from modelops.config.settings import Settings
from modelops.lifecycle.platform import Platform


class PlatformResource(dg.ConfigurableResource):
    """Registry, artifact store and base-model catalog, as one resource.

    Built from the environment by default (see ``modelops.config.settings``); tests pass
    explicit values.
    """

    database_url: str
    artifacts_uri: str
    catalog_path: str
    home: str
    s3_endpoint_url: str | None = None
    torch_threads: int = 1
    user: str = "dagster"

    @classmethod
    def from_settings(cls, settings: Settings) -> PlatformResource:
        return cls(
            database_url=settings.database_url,
            artifacts_uri=settings.artifacts_uri,
            catalog_path=str(settings.catalog_path),
            home=str(settings.home),
            s3_endpoint_url=settings.s3_endpoint_url,
            torch_threads=settings.torch_threads,
            user=settings.user,
        )

    @cached_property
    def platform(self) -> Platform:
        from pathlib import Path

        settings = Settings(
            home=Path(self.home),
            database_url=self.database_url,
            artifacts_uri=self.artifacts_uri,
            s3_endpoint_url=self.s3_endpoint_url,
            recipes_dir=Path(self.home),
            catalog_path=Path(self.catalog_path),
            cache_dir=Path(self.home) / "cache",
            torch_threads=self.torch_threads,
            user=self.user,
        )
        return Platform.from_settings(settings)
