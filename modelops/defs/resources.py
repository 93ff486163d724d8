"""Dagster resources: one per store, one for the non-secret runtime settings, and the
platform that nests them all.

- ``platform``: :class:`PlatformResource`, what an asset, sensor or schedule takes: the
  stores below as nested resources (Dagster's resources that depend on resources), and
  ``.platform``, the :class:`~modelops.lifecycle.platform.Platform` a lifecycle step takes;
- ``runtime``: :class:`RuntimeResource`, the home folder, torch threads, acting user;
- ``registry``: :class:`RegistryResource`, the adapter registry (database URL);
- ``production_log``: :class:`ProductionLogResource`, predictions and feedback (same URL);
- ``artifact_store``: :class:`ArtifactStoreResource`, the artifacts URI and S3 endpoint;
- ``catalog``: :class:`CatalogResource`, the base-model catalog file;
- ``io_manager``: :class:`~modelops.defs.io_manager.StepValueIOManager`, what one asset
  hands the next, stored beside the artifacts (local directory or S3).

Secrets stay out of the UI. :func:`build_resources` passes a database URL or S3 endpoint
that comes from the environment (``MODELOPS_DATABASE_URL``, ``MODELOPS_S3_ENDPOINT_URL``)
as a ``dg.EnvVar`` reference, which the UI shows by name and Dagster resolves inside the
run; the embedded defaults (the SQLite file under ``MODELOPS_HOME``, no endpoint) and
explicit test values are plain, and an explicit database URL that carries a password is
refused (it would show in the UI). The code location, the headless demo and the tests all
build their resources this way. S3 credentials are never configuration: boto3 reads them
from its own environment variables or profile.

The store resources are bound at the top level too, by the same objects the platform
nests: Dagster shows each once, by its key, and the platform as using them.
"""

from __future__ import annotations

import dataclasses
from functools import cached_property
from pathlib import Path

import dagster as dg

from modelops.config.errors import InputError
from modelops.config.settings import Settings
from modelops.defs.io_manager import StepValueIOManager
from modelops.lifecycle.platform import Platform
from modelops.ml.catalog import Catalog
from modelops.stores.artifacts.base import ArtifactStore
from modelops.stores.artifacts.open_store import open_store
from modelops.stores.db.engine import masked_url
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
    """The adapter registry, in the database at ``database_url``."""

    database_url: str

    @cached_property
    def registry(self) -> Registry:
        return Registry(self.database_url)


class ProductionLogResource(dg.ConfigurableResource):
    """Predictions and feedback, always in the registry's database (the nested registry
    resource holds the one URL)."""

    registry: RegistryResource

    @cached_property
    def log(self) -> ProductionLog:
        return ProductionLog(self.registry.database_url)


class ArtifactStoreResource(dg.ConfigurableResource):
    """Datasets, adapters and reports: a directory or ``s3://bucket/prefix``. The S3
    endpoint (MinIO and other S3 servers) also serves base models and landing folders."""

    artifacts_uri: str
    s3_endpoint_url: str | None = None

    @cached_property
    def store(self) -> ArtifactStore:
        return open_store(self.artifacts_uri, s3_endpoint_url=self.s3_endpoint_url)


class CatalogResource(dg.ConfigurableResource):
    """The base-model catalog file."""

    catalog_path: str

    @cached_property
    def catalog(self) -> Catalog:
        return Catalog.load(self.catalog_path)


class PlatformResource(dg.ConfigurableResource):
    """Every store of the platform, nested: assets take this one resource and hand
    :attr:`platform` to their lifecycle step; a sensor reads one nested store
    (``platform.registry.registry``) without opening the others."""

    runtime: RuntimeResource
    registry: RegistryResource
    production_log: ProductionLogResource
    artifact_store: ArtifactStoreResource
    catalog: CatalogResource

    @cached_property
    def platform(self) -> Platform:
        """The Platform of a lifecycle step, over the stores the nested resources opened.
        Settings no resource carries (recipes folder, Dagster home) are the environment's."""
        home = Path(self.runtime.home)
        settings = dataclasses.replace(
            Settings.from_env(),
            home=home,
            cache_dir=home / "cache",
            torch_threads=self.runtime.torch_threads,
            user=self.runtime.user,
            database_url=self.registry.database_url,
            artifacts_uri=self.artifact_store.artifacts_uri,
            s3_endpoint_url=self.artifact_store.s3_endpoint_url,
            catalog_path=Path(self.catalog.catalog_path),
        )
        return Platform(
            settings=settings,
            registry=self.registry.registry,
            store=self.artifact_store.store,
            catalog=self.catalog.catalog,
        )  # its production log opens on first use, on the registry's database


def _reference(variable: str, value: str | None, environment_value: str | None):
    """``value`` as a ``dg.EnvVar`` reference when it is the environment variable's own
    value (Dagster resolves it inside the run, and the UI shows only the name); else the
    value itself (an explicit setting, or the embedded default, which holds no secret)."""
    if value is not None and value == environment_value and dg.EnvVar(variable).get_value():
        return dg.EnvVar(variable)
    return value


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """The resources over ``settings``. A database URL or S3 endpoint that came from the
    environment is passed by reference (see :func:`_reference`), so the value never enters
    a resource's configuration, whoever builds the definitions: the code location, the
    headless demo, a test."""
    environment = Settings.from_env()
    database_url = _reference(DATABASE_URL_VAR, settings.database_url, environment.database_url)
    plain = isinstance(database_url, str) and not isinstance(database_url, dg.EnvVar)
    if plain and masked_url(database_url) != database_url:
        raise InputError(
            None,
            "database_url",
            f"{masked_url(database_url)} carries a password: pass it in {DATABASE_URL_VAR}, "
            "so that Dagster shows the variable's name and never the value",
        )
    registry = RegistryResource(database_url=database_url)
    s3_endpoint = _reference(S3_ENDPOINT_VAR, settings.s3_endpoint_url, environment.s3_endpoint_url)
    stores = {
        "runtime": RuntimeResource(
            home=str(settings.home), torch_threads=settings.torch_threads, user=settings.user
        ),
        "registry": registry,
        "production_log": ProductionLogResource(registry=registry),
        "artifact_store": ArtifactStoreResource(
            artifacts_uri=settings.artifacts_uri,
            s3_endpoint_url=s3_endpoint,
        ),
        "catalog": CatalogResource(catalog_path=str(settings.catalog_path)),
    }
    return {
        # The same objects, nested: Dagster resolves them once, by their keys.
        "platform": PlatformResource(**stores),
        **stores,
        # What crosses steps goes beside the artifacts, never to a local disk.
        "io_manager": StepValueIOManager(
            artifacts_uri=settings.artifacts_uri, s3_endpoint_url=s3_endpoint
        ),
    }


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=build_resources(Settings.from_env()))
