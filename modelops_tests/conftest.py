"""Shared fixtures: a real S3 endpoint (moto), PostgreSQL, one torch thread."""

from __future__ import annotations

import os
import uuid

import pytest

from modelops_tests.fixtures.network import free_port

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PG_ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real HTTP S3 endpoint on localhost (moto's ThreadedMotoServer)."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint):
    """A fresh bucket on the moto endpoint; yields ``(endpoint_url, bucket_name)``."""
    import boto3

    name = f"modelops-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket=name)
    yield s3_endpoint, name


@pytest.fixture
def pg_url():
    """A fresh PostgreSQL database for one test, dropped afterwards.

    Skips, saying so, only when no server answers at 127.0.0.1:5432; with ``CI=true``
    (set by CI) it fails instead.
    """
    import sqlalchemy as sa

    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("select 1"))
    except Exception as exc:  # pragma: no cover - depends on the machine
        admin.dispose()
        reason = f"no PostgreSQL server answers at 127.0.0.1:5432 ({exc.__class__.__name__})"
        if os.environ.get("CI") == "true":  # CI has the server: a missing one is a failure
            pytest.fail(reason + "; CI=true, so this fails instead of skipping")
        pytest.skip(reason)
    name = f"modelops_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'create database "{name}"'))
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(
                sa.text(
                    "select pg_terminate_backend(pid) from pg_stat_activity where datname = :n"
                ),
                {"n": name},
            )
            conn.execute(sa.text(f'drop database if exists "{name}"'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    """The database of one test: SQLite in a new folder, then PostgreSQL (``pg_url``)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'modelops.db'}"
    return request.getfixturevalue("pg_url")


os.environ.setdefault("MODELOPS_TORCH_THREADS", "1")


@pytest.fixture(scope="session")
def tiny_base_dir(tmp_path_factory):
    """A tiny random BERT saved like a real base model, tokenizer trained on demo text."""
    from modelops.demo.generator import DemoKnobs, generate
    from modelops_tests.fixtures.tiny_models import save_tiny_bert

    texts = generate(DemoKnobs(n=600, seed=1))["text"].tolist()
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"), texts)


@pytest.fixture(scope="session")
def tiny_catalog(tiny_base_dir, tmp_path_factory):
    """A catalog file whose ``tiny@stable`` entry is the tiny BERT."""
    from modelops_tests.fixtures.tiny_models import write_catalog

    return write_catalog(tmp_path_factory.mktemp("catalog") / "base_models.yaml", tiny_base_dir)


# A workspace with a serving adapter, its production log and a predictor: the landing
# tests (local and S3) share them; each test module gets its own workspace.
@pytest.fixture(scope="module")
def trained(tiny_catalog, tmp_path_factory):
    from modelops_tests.fixtures.serving import trained_workspace

    return trained_workspace(tmp_path_factory.mktemp("served"), tiny_catalog)


@pytest.fixture
def plog(trained):
    from modelops.stores.production_log import ProductionLog

    with ProductionLog(trained[0].database_url) as log:
        yield log


@pytest.fixture
def predictor(trained, plog):
    from modelops.lifecycle.platform import Platform
    from modelops.serving.predictor import Predictor

    platform = Platform.from_settings(trained[0])
    yield Predictor(platform, "demo", log=plog)
    platform.registry.close()
