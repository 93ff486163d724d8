"""Stores failing mid-write: the S3 endpoint disappears during an upload, the database
during a registry write. A clear error, nothing half-written visible, the next run works."""

from __future__ import annotations

import boto3
import pytest
import sqlalchemy as sa

from modelops.config.errors import ModelopsError
from modelops.stores.artifacts.s3 import S3ArtifactStore
from modelops.stores.db.engine import migrate
from modelops.stores.registry import Registry
from modelops.stores.s3 import s3_client
from modelops_tests.fixtures.network import free_port
from modelops_tests.fixtures.registry_rows import adapter_fields

FILES = {"a.txt": b"first", "b.txt": b"second", "c/d.txt": b"third"}


def write_tree(root):
    for rel, data in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def test_s3_endpoint_vanishing_mid_upload(tmp_path, s3_endpoint):
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
        Bucket="faults"
    )
    store = S3ArtifactStore(
        "faults", "root", client=s3_client(endpoint, "us-east-1", max_attempts=2)
    )
    uploads = []
    real_upload = store.client.upload_file

    def upload_then_vanish(*args, **kwargs):
        uploads.append(args[2])
        if len(uploads) == 2:
            server.stop()  # the endpoint disappears after the first file went up
        return real_upload(*args, **kwargs)

    store.client.upload_file = upload_then_vanish
    source = write_tree(tmp_path / "src")
    try:
        with pytest.raises(ModelopsError, match=r"s3://faults/root/adapters/x/b\.txt: S3 error"):
            store.put_dir("adapters/x", source)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()  # the endpoint is back (moto keeps the bucket's state)
        store.client.upload_file = real_upload
        assert not store.exists("adapters/x")  # the first file is there, the manifest is not
        ref = store.put_dir("adapters/x", source)  # the next run works
        out = store.get_dir("adapters/x", tmp_path / "out", expected_sha256=ref.sha256)
        assert {p: (out / p).read_bytes() for p in FILES} == FILES
    finally:
        server.stop()


@pytest.mark.postgres
def test_database_lost_during_a_registry_write(pg_url):
    migrate(pg_url)
    registry = Registry(pg_url)
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    killed = []

    def kill_before_commit(conn):
        if not killed:
            pid = conn.connection.dbapi_connection.get_backend_pid()
            with admin.connect() as other:
                other.execute(sa.text("select pg_terminate_backend(:p)"), {"p": pid})
            killed.append(pid)

    sa.event.listen(registry._engine, "commit", kill_before_commit)
    fields = adapter_fields()
    try:
        with pytest.raises(ModelopsError, match=r"registry postgresql\+psycopg2://.*rolled back"):
            registry.register(**fields)
        assert killed
        assert registry.list("demo") == []  # nothing half-written; the pool reconnected
        assert registry.audit("demo") == []
        version = registry.register(**fields)  # the next run works
        assert [v.id for v in registry.list("demo")] == [version.id]
        assert [e.action for e in registry.audit("demo")] == ["register"]
    finally:
        registry.close()
        admin.dispose()
