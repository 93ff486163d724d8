"""Dagster resources: one per store, and one for the non-secret runtime settings.

- ``runtime``: :class:`RuntimeResource`, the home folder, torch threads, acting user;
- ``registry``: :class:`RegistryResource`, the adapter registry (database URL);
- ``production_log``: :class:`ProductionLogResource`, predictions and feedback (same URL);
- ``artifact_store``: :class:`ArtifactStoreResource`, the artifacts URI and S3 endpoint;
- ``catalog``: :class:`CatalogResource`, the base-model catalog file.

Secrets stay out of the UI. The code location builds its resources from the environment
(:func:`resources_from_env`): the database URL and the S3 endpoint are then
``dg.EnvVar`` references, which the UI shows by name and Dagster resolves inside the run;
when a variable is not set the field stays empty and the resource takes the embedded
default from :meth:`Settings.from_env` when the run opens it. Tests and the demo pass
explicit values (:func:`build_resources`). S3 credentials are never configuration: boto3
reads them from its own environment variables or profile.

The lifecycle steps take a :class:`~modelops.lifecycle.platform.Platform`;
:func:`platform_from` assembles it from the resources an asset declares.
"""

from __future__ import annotations

import dataclasses
from functools import cached_property
from pathlib import Path

import dagster as dg

from modelops.config.settings import Settings
from modelops.lifecycle.platform import Platform
from modelops.ml.catalog import Catalog
from modelops.stores.artifacts.base import ArtifactStore
from modelops.stores.artifacts.open_store import open_store
from modelops.stores.production_log import ProductionLog
from modelops.stores.registry import Registry

# The environment variables (see modelops.config.settings) that hold connection details.
DATABASE_URL_VAR = "MODELOPS_DATABASE_URL"
S3_ENDPOINT_VAR = "MODELOPS_S3_ENDPOINT_URL"


class RuntimeResource(dg.ConfigurableResource):
    """Where local state lives, how many torch threads to use, who acts (for the audit)."""

    home: str
    torch_threads: int = 1
    user: str = "dagster"


class RegistryResource(dg.ConfigurableResource):
    """The adapter registry. ``database_url`` empty: the embedded default (SQLite)."""

    database_url: str | None = None

    def url(self) -> str:
        return self.database_url or Settings.from_env().database_url

    @cached_property
    def registry(self) -> Registry:
        return Registry(self.url())


class ProductionLogResource(dg.ConfigurableResource):
    """Predictions and feedback, in the registry's database."""

    database_url: str | None = None

    def url(self) -> str:
        return self.database_url or Settings.from_env().database_url

    @cached_property
    def log(self) -> ProductionLog:
        return ProductionLog(self.url())


class ArtifactStoreResource(dg.ConfigurableResource):
    """Datasets, adapters and reports: a directory or ``s3://bucket/prefix``. The S3
    endpoint (MinIO and other S3 servers) also serves base models and landing folders."""

    artifacts_uri: str
    s3_endpoint_url: str | None = None

    def endpoint(self) -> str | None:
        return self.s3_endpoint_url or Settings.from_env().s3_endpoint_url

    @cached_property
    def store(self) -> ArtifactStore:
        return open_store(self.artifacts_uri, s3_endpoint_url=self.endpoint())


class CatalogResource(dg.ConfigurableResource):
    """The base-model catalog file."""

    catalog_path: str

    @cached_property
    def catalog(self) -> Catalog:
        return Catalog.load(self.catalog_path)


def _from_env(name: str) -> dg.EnvVar | None:
    """A reference to the variable when it is set (its value never enters the config)."""
    return dg.EnvVar(name) if dg.EnvVar(name).get_value() else None


def resources_from_env() -> dict[str, dg.ConfigurableResource]:
    """The code location's resources: plain values for what is not secret, environment
    variable references for the database URL and the S3 endpoint."""
    settings = Settings.from_env()
    return {
        "runtime": RuntimeResource(
            home=str(settings.home), torch_threads=settings.torch_threads, user=settings.user
        ),
        "registry": RegistryResource(database_url=_from_env(DATABASE_URL_VAR)),
        "production_log": ProductionLogResource(database_url=_from_env(DATABASE_URL_VAR)),
        "artifact_store": ArtifactStoreResource(
            artifacts_uri=settings.artifacts_uri, s3_endpoint_url=_from_env(S3_ENDPOINT_VAR)
        ),
        "catalog": CatalogResource(catalog_path=str(settings.catalog_path)),
    }


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """The same resources with explicit values (tests, the demo scenario)."""
    return {
        "runtime": RuntimeResource(
            home=str(settings.home), torch_threads=settings.torch_threads, user=settings.user
        ),
        "registry": RegistryResource(database_url=settings.database_url),
        "production_log": ProductionLogResource(database_url=settings.database_url),
        "artifact_store": ArtifactStoreResource(
            artifacts_uri=settings.artifacts_uri, s3_endpoint_url=settings.s3_endpoint_url
        ),
        "catalog": CatalogResource(catalog_path=str(settings.catalog_path)),
    }


def platform_from(
    runtime: RuntimeResource,
    registry: RegistryResource,
    artifact_store: ArtifactStoreResource,
    catalog: CatalogResource,
    production_log: ProductionLogResource | None = None,
) -> Platform:
    """The Platform of a lifecycle step, over the stores the resources opened. Settings
    no resource carries (recipes folder, Dagster home) are the environment's."""
    home = Path(runtime.home)
    settings = dataclasses.replace(
        Settings.from_env(),
        home=home,
        cache_dir=home / "cache",
        torch_threads=runtime.torch_threads,
        user=runtime.user,
        database_url=registry.url(),
        artifacts_uri=artifact_store.artifacts_uri,
        s3_endpoint_url=artifact_store.endpoint(),
        catalog_path=Path(catalog.catalog_path),
    )
    return Platform(
        settings=settings,
        registry=registry.registry,
        store=artifact_store.store,
        catalog=catalog.catalog,
        opened_production_log=production_log.log if production_log else None,
    )


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=resources_from_env())
