"""Every setting the platform reads from the environment, in one place.

Nothing else reads ``os.environ``. Defaults are the embedded ones: SQLite and a local
directory under ``.modelops/`` in the working directory.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from modelops.config.recipe_shard import VARIABLE as SHARD_VARIABLE
from modelops.config.recipe_shard import RecipeShard


@dataclass(frozen=True)
class Settings:
    home: Path
    """Root of local state (``MODELOPS_HOME``, default ``.modelops``)."""
    database_url: str = field(repr=False)
    """Registry database (``MODELOPS_DATABASE_URL``, default SQLite under home). Left out
    of the repr: the URL may carry a password."""
    artifacts_uri: str
    """Artifact store: a directory or ``s3://bucket/prefix`` (``MODELOPS_ARTIFACTS``)."""
    s3_endpoint_url: str | None
    """S3 endpoint for MinIO and other S3 servers (``MODELOPS_S3_ENDPOINT_URL``)."""
    recipes_dir: Path
    """Where ``*.yaml`` recipes are read from (``MODELOPS_RECIPES``, default ``recipes``)."""
    catalog_path: Path
    """Base-model catalog file (``MODELOPS_CATALOG``, default ``catalog/base_models.yaml``)."""
    cache_dir: Path
    """Local cache for base models fetched from S3 (under home)."""
    torch_threads: int
    """Torch intra-op threads for training and scoring (``MODELOPS_TORCH_THREADS``)."""
    user: str
    """Who acts, for the audit log (``MODELOPS_USER``, default the OS user)."""
    dagster_home: Path | None = None
    """Dagster's instance folder (``DAGSTER_HOME``, default ``<home>/dagster``)."""
    dagster_url: str = "http://127.0.0.1:3000"
    """The running Dagster webserver that ``modelops backfill`` talks to
    (``MODELOPS_DAGSTER_URL``)."""
    checkpoint_steps: int = 50
    """Training saves a checkpoint every this many optimizer steps (and at each epoch's
    end), so a killed run resumes (``MODELOPS_CHECKPOINT_STEPS``)."""
    serve_url: str = "http://127.0.0.1:8080"
    """Where ``modelops serve`` answers, as people and links reach it: prediction
    requests and the stored drift reports linked from the UI (``MODELOPS_SERVE_URL``)."""
    executor: str = "in_process"
    """How a Dagster run executes its steps (``MODELOPS_EXECUTOR``): ``in_process``, all
    in the run's own process (or container, or pod), or ``multiprocess``, a process per
    step (``modelops.defs.executor``)."""
    serve_token: str | None = field(default=None, repr=False)
    """Bearer token ``modelops serve`` requires (``MODELOPS_SERVE_TOKEN``); needed to bind
    beyond loopback. Left out of the repr."""
    recipe_shard: RecipeShard | None = None
    """The share of the recipes folder this code location holds
    (``MODELOPS_RECIPE_SHARD=<index>/<count>``, default all: ``config/recipe_shard.py``).
    Only the Dagster definitions read it; the CLI and the API see every recipe."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        home = Path(env.get("MODELOPS_HOME", ".modelops")).absolute()
        return cls(
            home=home,
            database_url=env.get("MODELOPS_DATABASE_URL", f"sqlite:///{home / 'modelops.db'}"),
            artifacts_uri=env.get("MODELOPS_ARTIFACTS", str(home / "artifacts")),
            s3_endpoint_url=env.get("MODELOPS_S3_ENDPOINT_URL") or None,
            recipes_dir=Path(env.get("MODELOPS_RECIPES", "recipes")).absolute(),
            catalog_path=Path(env.get("MODELOPS_CATALOG", "catalog/base_models.yaml")).absolute(),
            cache_dir=home / "cache",
            torch_threads=int(env.get("MODELOPS_TORCH_THREADS", "0") or 0) or _default_threads(),
            user=env.get("MODELOPS_USER") or _os_user(),
            dagster_home=Path(env.get("DAGSTER_HOME") or home / "dagster").absolute(),
            dagster_url=env.get("MODELOPS_DAGSTER_URL", "http://127.0.0.1:3000").rstrip("/"),
            serve_url=env.get("MODELOPS_SERVE_URL", "http://127.0.0.1:8080").rstrip("/"),
            checkpoint_steps=max(1, int(env.get("MODELOPS_CHECKPOINT_STEPS", "50") or 50)),
            serve_token=env.get("MODELOPS_SERVE_TOKEN") or None,
            recipe_shard=RecipeShard.parse(env.get(SHARD_VARIABLE)),
            executor=env.get("MODELOPS_EXECUTOR") or "in_process",
        )


def _default_threads() -> int:
    return max(1, min(os.cpu_count() or 1, 4))


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "unknown"
