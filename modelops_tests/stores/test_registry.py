"""The registry on SQLite and PostgreSQL: versions, aliases, promotion, rollback, audit."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

import modelops
from modelops.config.errors import InputError, ModelopsError, NotFoundError
from modelops.config.fingerprint import sha256_bytes
from modelops.stores import champions
from modelops.stores.db.engine import UTCDateTime, migrate, registry_engine, upgrade
from modelops.stores.registry import Registry

HEAD = "0009"  # the newest migration: bump with every new revision

ADAPTER_COLUMNS = (
    "id", "recipe", "taxonomy_version", "base_model", "base_model_sha256", "dataset_fingerprint",
    "recipe_fingerprint", "artifact_uri", "artifact_sha256", "weights_sha256", "gate", "status",
    "created_by",
)  # fmt: skip
PASSED = {"passed": True, "checks": [{"name": "macro_f1_min", "passed": True}]}
FAILED = {
    "passed": False,
    "checks": [
        {"name": "macro_f1_min", "passed": False},
        {"name": "accuracy_min", "passed": True},
        {"name": "no_regression", "passed": False},
    ],
}


@pytest.fixture
def registry(db_url):
    migrate(db_url)
    reg = Registry(db_url)
    yield reg
    reg.close()


def register(reg: Registry, recipe: str = "demo", seed: str | None = None, **overrides):
    """Register an adapter with distinct hashes derived from ``seed``."""
    seed = seed or f"{recipe}-{len(reg.list())}"
    fields = dict(
        recipe=recipe,
        taxonomy_version="v1",
        base_model="minilm@2024-01",
        base_model_sha256=sha256_bytes(b"base"),
        dataset_fingerprint=sha256_bytes(f"data-{seed}".encode()),
        recipe_fingerprint=sha256_bytes(f"recipe-{recipe}".encode()),
        artifact_uri=f"file:///artifacts/{seed}",
        artifact_sha256=sha256_bytes(f"artifact-{seed}".encode()),
        weights_sha256=sha256_bytes(f"weights-{seed}".encode()),
        lineage={"parent": None, "seed": seed},
        metrics={"macro_f1": 0.5, "accuracy": 0.6},
        who="trainer",
    )
    fields.update(overrides)
    return reg.register(**fields)


def champion_of(reg: Registry, recipe: str = "demo") -> int | None:
    version = reg.alias(recipe, "champion")
    return version.id if version else None


def promoted(
    reg: Registry, recipe: str = "demo", seed: str | None = None, taxonomy_version: str = "v1"
) -> int:
    """Register, pass the gate and promote; returns the adapter id."""
    version = register(reg, recipe, seed, taxonomy_version=taxonomy_version)
    reg.record_evaluation(version.id, metrics={"macro_f1": 0.8}, gate=PASSED, who="ci")
    reg.promote(version.id, who="alice", why="better", evidence={"run": seed})
    return version.id


# --------------------------------------------------------------------- register and read


def test_register_list_get_aliases(registry):
    before = datetime.now(UTC)
    a = register(registry, "demo", "a")
    b = register(registry, "demo", "b", lineage={"parent": "a", "warm_start": True})
    other = register(registry, "other", "c")
    after = datetime.now(UTC)

    assert [v.id for v in registry.list()] == [other.id, b.id, a.id]
    assert [v.id for v in registry.list("demo")] == [b.id, a.id]
    assert registry.list("missing") == []

    got = registry.get(b.id)
    assert got == b
    assert got.lineage == {"parent": "a", "warm_start": True}
    assert got.metrics == {"macro_f1": 0.5, "accuracy": 0.6}
    assert got.status == "candidate" and got.gate is None
    assert got.created_by == "trainer"
    assert got.created_at.tzinfo is not None and got.created_at.utcoffset().total_seconds() == 0
    assert before <= got.created_at <= after
    json.dumps(got.to_dict())  # JSON-serialisable
    assert got.to_dict()["created_at"] == got.created_at.isoformat()

    assert registry.aliases("demo") == {"candidate": b.id}
    assert registry.aliases("other") == {"candidate": other.id}
    assert registry.alias("demo", "candidate") == b
    assert registry.alias("demo", "champion") is None

    entries = registry.audit(recipe="demo")
    assert [(e.action, e.adapter_id, e.who) for e in entries] == [
        ("register", b.id, "trainer"),
        ("register", a.id, "trainer"),
    ]
    json.dumps([e.to_dict() for e in entries])


def test_get_unknown_adapter_is_not_found(registry):
    with pytest.raises(NotFoundError, match=r"^adapter 7 not found$"):
        registry.get(7)


def test_register_rejects_bad_input(registry):
    with pytest.raises(InputError, match="weights_sha256: must be a sha256 hex digest"):
        register(registry, weights_sha256="abc")
    with pytest.raises(InputError, match="metrics: must be JSON-serialisable"):
        register(registry, metrics={"macro_f1": math.nan})
    with pytest.raises(InputError, match="recipe: must be a non-empty string"):
        register(registry, recipe=" ")
    assert registry.list() == []


def test_find_by_weights(registry):
    a = register(registry, "demo", "a")
    b = register(registry, "demo", "b", weights_sha256=a.weights_sha256)
    register(registry, "demo", "c")
    register(registry, "other", "d", weights_sha256=a.weights_sha256)
    assert [v.id for v in registry.find_by_weights("demo", a.weights_sha256)] == [b.id, a.id]
    assert registry.find_by_weights("demo", sha256_bytes(b"nothing")) == []


# --------------------------------------------------------------------- evaluation


def test_record_evaluation_merges_metrics_and_rejects_failed_gate(registry):
    v = register(registry)
    rejected = registry.record_evaluation(
        v.id, metrics={"macro_f1": 0.3, "ece": 0.1}, gate=FAILED, who="ci"
    )
    assert rejected.metrics == {"macro_f1": 0.3, "accuracy": 0.6, "ece": 0.1}
    assert rejected.gate == FAILED
    assert rejected.status == "rejected"
    assert registry.get(v.id) == rejected
    last = registry.audit(adapter_id=v.id)[0]
    assert (last.action, last.who) == ("reject", "ci")
    assert "macro_f1_min" in last.why and "no_regression" in last.why

    passed = registry.record_evaluation(v.id, metrics={"macro_f1": 0.9}, gate=PASSED, who="ci")
    assert passed.status == "candidate" and passed.gate == PASSED
    assert passed.metrics["macro_f1"] == 0.9
    assert registry.audit(adapter_id=v.id)[0].action == "evaluate"

    with pytest.raises(InputError, match="gate.passed"):
        registry.record_evaluation(v.id, metrics={}, gate={"checks": []}, who="ci")
    with pytest.raises(NotFoundError, match="adapter 999 not found"):
        registry.record_evaluation(999, metrics={}, gate=PASSED, who="ci")


def test_champion_stays_champion_after_failed_gate(registry):
    champion = promoted(registry, seed="a")
    after = registry.record_evaluation(champion, metrics={}, gate=FAILED, who="ci")
    assert after.status == "champion"
    assert champion_of(registry) == champion


# --------------------------------------------------------------------- promotion


def test_promote_moves_champion_and_retires_previous(registry):
    first = promoted(registry, seed="a")
    second = register(registry, seed="b")
    registry.record_evaluation(second.id, metrics={"macro_f1": 0.9}, gate=PASSED, who="ci")

    before = datetime.now(UTC)
    entry = registry.promote(
        second.id, who="alice", why="beats the champion", evidence={"delta_macro_f1": 0.1}
    )
    after = datetime.now(UTC)

    assert (entry.action, entry.recipe, entry.who) == ("promote", "demo", "alice")
    assert entry.adapter_id == second.id and entry.previous_adapter_id == first
    assert entry.why == "beats the champion"
    assert entry.evidence == {
        "delta_macro_f1": 0.1,
        "taxonomy_version": "v1",
        "serving_switched": True,
        "previous_serving_adapter_id": first,
    }
    assert before <= entry.at <= after and entry.at.tzinfo is not None
    assert registry.audit(recipe="demo")[0] == entry

    assert champion_of(registry) == second.id
    assert registry.get(second.id).status == "champion"
    assert registry.get(first).status == "retired"
    # The replaced champion's trail shows the promotion that retired it.
    assert entry in registry.audit(adapter_id=first)


def test_promote_refuses_failed_gate_unless_forced(registry):
    champion = promoted(registry, seed="a")
    bad = register(registry, seed="b")
    registry.record_evaluation(bad.id, metrics={}, gate=FAILED, who="ci")
    audit_before = registry.audit()

    with pytest.raises(ModelopsError) as refused:
        registry.promote(bad.id, who="alice", why="try", evidence={})
    message = str(refused.value)
    assert f"adapter {bad.id}" in message
    assert "macro_f1_min" in message and "no_regression" in message
    assert "accuracy_min" not in message
    assert champion_of(registry) == champion
    assert registry.get(bad.id).status == "rejected"
    assert registry.audit() == audit_before

    entry = registry.promote(bad.id, who="alice", why="hotfix", evidence={"ticket": 1}, force=True)
    assert entry.evidence["forced"] is True and entry.evidence["ticket"] == 1
    assert "macro_f1_min" in entry.evidence["overridden"]
    assert champion_of(registry) == bad.id
    assert registry.get(champion).status == "retired"


def test_promote_unevaluated_adapter_needs_force(registry):
    v = register(registry)
    with pytest.raises(ModelopsError, match=f"adapter {v.id}.*no recorded gate decision"):
        registry.promote(v.id, who="alice", why="x", evidence={})
    assert registry.promote(v.id, who="alice", why="x", evidence={}, force=True).evidence["forced"]


def test_promote_current_champion_again_is_an_error(registry):
    champion = promoted(registry, seed="a")
    with pytest.raises(ModelopsError, match=f"adapter {champion} is already the champion"):
        registry.promote(champion, who="alice", why="again", evidence={}, force=True)
    assert [e.action for e in registry.audit(recipe="demo")].count("promote") == 1


def test_promote_unknown_adapter_is_not_found(registry):
    with pytest.raises(NotFoundError, match="adapter 42 not found"):
        registry.promote(42, who="alice", why="x", evidence={})


def test_promotion_is_one_transaction(registry, monkeypatch):
    first = promoted(registry, seed="a")
    second = register(registry, seed="b")
    registry.record_evaluation(second.id, metrics={}, gate=PASSED, who="ci")
    audit_before = registry.audit()

    def broken(*args, **kwargs):
        raise RuntimeError("database went away")

    # Fails after the previous champion has been marked retired in the session.
    monkeypatch.setattr(champions, "set_alias", broken)
    with pytest.raises(RuntimeError):
        registry.promote(second.id, who="alice", why="x", evidence={})
    monkeypatch.undo()

    assert registry.get(first).status == "champion"
    assert registry.get(second.id).status == "candidate"
    assert champion_of(registry) == first
    assert registry.audit() == audit_before


def test_aliases_are_per_recipe(registry):
    a = promoted(registry, "demo", "a")
    b = promoted(registry, "other", "b")
    assert registry.aliases("demo") == {
        "candidate": a, "champion": a, "serving": a, "champion@v1": a
    }  # fmt: skip
    assert registry.aliases("other") == {
        "candidate": b, "champion": b, "serving": b, "champion@v1": b
    }  # fmt: skip
    assert registry.get(a).status == "champion"


# --------------------------------------------------------------------- rollback


def test_rollback_walks_back_through_champions(registry):
    a = promoted(registry, seed="a")
    b = promoted(registry, seed="b")
    c = promoted(registry, seed="c")

    entry = registry.rollback("demo", who="bob", why="c misbehaves in production")
    assert (entry.action, entry.who, entry.why) == (
        "rollback",
        "bob",
        "c misbehaves in production",
    )
    assert (entry.adapter_id, entry.previous_adapter_id) == (b, c)
    assert champion_of(registry) == b
    assert registry.get(b).status == "champion"
    assert registry.get(c).status == "retired"

    second = registry.rollback("demo", who="bob", why="b too")
    assert (second.adapter_id, second.previous_adapter_id) == (a, b)
    assert champion_of(registry) == a
    assert [registry.get(i).status for i in (a, b, c)] == ["champion", "retired", "retired"]

    with pytest.raises(ModelopsError, match="recipe 'demo' has no earlier champion"):
        registry.rollback("demo", who="bob", why="again")
    assert champion_of(registry) == a


def test_rollback_after_promotion_returns_to_the_replaced_champion(registry):
    a = promoted(registry, seed="a")
    b = promoted(registry, seed="b")
    registry.rollback("demo", who="bob", why="b is bad")  # champion a
    d = promoted(registry, seed="d")  # replaces a
    entry = registry.rollback("demo", who="bob", why="d is bad")
    assert (entry.adapter_id, entry.previous_adapter_id) == (a, d)
    assert champion_of(registry) == a
    assert registry.get(b).status == "retired"


def test_rollback_without_champion_names_the_recipe(registry):
    register(registry, "demo")
    with pytest.raises(NotFoundError, match="recipe 'demo' has no champion"):
        registry.rollback("demo", who="bob", why="x")
    with pytest.raises(NotFoundError, match="recipe 'nothing' has no champion"):
        registry.rollback("nothing", who="bob", why="x")


# --------------------------------------------------------------------- taxonomy versions


def evaluated(reg: Registry, seed: str, taxonomy_version: str) -> int:
    """Register an adapter of ``taxonomy_version`` whose gate passed; not promoted."""
    version = register(reg, seed=seed, taxonomy_version=taxonomy_version)
    reg.record_evaluation(version.id, metrics={}, gate=PASSED, who="ci")
    return version.id


def test_register_rejects_a_taxonomy_version_that_is_not_vN(registry):
    for bad in ("2", "v", "v1.1", "V1"):
        with pytest.raises(InputError, match=rf"taxonomy_version: must look like v1.*'{bad}'"):
            register(registry, taxonomy_version=bad)
    assert registry.list() == []


def test_candidate_alias_is_per_taxonomy_version(registry):
    a = register(registry, seed="a", taxonomy_version="v1").id
    b = register(registry, seed="b", taxonomy_version="v2").id
    c = register(registry, seed="c", taxonomy_version="v1").id
    assert registry.aliases("demo", "v1") == {"candidate": c}
    assert registry.aliases("demo", "v2") == {"candidate": b}
    assert registry.aliases("demo", "v3") == {}
    assert registry.aliases("demo") == {"candidate": c}
    assert registry.alias("demo", "candidate").id == c  # the newest, of any version
    assert registry.alias("demo", "candidate", "v2").id == b
    assert registry.alias("demo", "candidate@v2").id == b
    assert registry.alias("demo", "serving") is None
    assert registry.get(a).status == "candidate"


def test_champions_per_version_are_independent(registry):
    a1 = promoted(registry, seed="a", taxonomy_version="v1")
    b2 = promoted(registry, seed="b", taxonomy_version="v2")
    assert registry.get(a1).status == "champion"  # not retired by another version

    c1 = evaluated(registry, "c", "v1")
    entry = registry.promote(c1, who="alice", why="v1 fix", evidence={})
    assert entry.previous_adapter_id == a1
    assert entry.evidence == {
        "taxonomy_version": "v1",
        "serving_switched": False,
        "previous_serving_adapter_id": b2,
    }
    assert [registry.get(i).status for i in (a1, c1, b2)] == ["retired", "champion", "champion"]
    assert champion_of(registry) == b2
    assert registry.alias("demo", "serving").id == b2
    assert registry.alias("demo", "champion", "v1").id == c1
    assert registry.alias("demo", "champion@v2").id == b2
    assert registry.aliases("demo") == {
        "serving": b2, "champion": b2, "candidate": c1, "champion@v1": c1, "champion@v2": b2
    }  # fmt: skip
    assert registry.aliases("demo", "v1") == {"champion": c1, "candidate": c1}
    assert registry.versions("demo") == {
        "v1": {"champion": c1, "candidate": c1, "adapters": 2, "serving": False},
        "v2": {"champion": b2, "candidate": b2, "adapters": 1, "serving": True},
    }
    assert registry.versions("nothing") == {}
    with pytest.raises(ModelopsError, match=f"adapter {c1} is already the champion.*'v1'"):
        registry.promote(c1, who="alice", why="again", evidence={})
    with pytest.raises(InputError, match="taxonomy_version: serving is per recipe"):
        registry.alias("demo", "serving", "v1")


def test_promoting_a_newer_version_switches_serving(registry):
    a1 = promoted(registry, seed="a", taxonomy_version="v1")
    b2 = evaluated(registry, "b", "v2")
    entry = registry.promote(b2, who="alice", why="taxonomy v2", evidence={"k": 1})
    assert (entry.adapter_id, entry.previous_adapter_id) == (b2, None)  # no v2 champion before
    assert entry.evidence == {
        "k": 1,
        "taxonomy_version": "v2",
        "serving_switched": True,
        "previous_serving_adapter_id": a1,
    }
    assert champion_of(registry) == b2
    assert registry.alias("demo", "champion", "v1").id == a1
    assert registry.get(a1).status == "champion"
    assert [v.id for v in registry.list("demo")] == [b2, a1]


def test_taxonomy_versions_compare_by_number(registry):
    nine = promoted(registry, seed="nine", taxonomy_version="v9")
    ten = promoted(registry, seed="ten", taxonomy_version="v10")
    assert champion_of(registry) == ten
    other_nine = evaluated(registry, "nine-b", "v9")
    entry = registry.promote(other_nine, who="alice", why="v9 fix", evidence={})
    assert entry.evidence["serving_switched"] is False
    assert champion_of(registry) == ten
    assert registry.get(nine).status == "retired"
    assert list(registry.versions("demo")) == ["v9", "v10"]


def test_serving_switch_is_atomic(registry, monkeypatch):
    a1 = promoted(registry, seed="a", taxonomy_version="v1")
    b2 = evaluated(registry, "b", "v2")
    aliases_before, audit_before = registry.aliases("demo"), registry.audit()
    calls = []
    set_alias = champions.set_alias

    def fail_after_serving(session, recipe, taxonomy_version, name, *args):
        set_alias(session, recipe, taxonomy_version, name, *args)
        calls.append((taxonomy_version, name))
        if name == "serving":
            session.flush()  # both alias writes reached the database
            raise RuntimeError("connection lost")

    monkeypatch.setattr(champions, "set_alias", fail_after_serving)
    with pytest.raises(RuntimeError, match="connection lost"):
        registry.promote(b2, who="alice", why="v2", evidence={})
    monkeypatch.undo()

    assert calls == [("v2", "champion"), ("", "serving")]
    assert champion_of(registry) == a1
    assert registry.alias("demo", "champion", "v2") is None
    assert registry.aliases("demo") == aliases_before
    assert registry.get(b2).status == "candidate"
    assert registry.audit() == audit_before


def test_rollback_of_the_only_serving_champion_falls_back_to_the_older_version(registry):
    a1 = promoted(registry, seed="a", taxonomy_version="v1")
    b2 = promoted(registry, seed="b", taxonomy_version="v2")
    promote_b2 = registry.audit(recipe="demo")[0].id

    entry = registry.rollback("demo", who="bob", why="undo the v2 migration")
    assert (entry.action, entry.adapter_id, entry.previous_adapter_id) == ("rollback", a1, b2)
    assert entry.evidence == {
        "undone_audit_id": promote_b2,
        "taxonomy_version": "v2",
        "fallback_taxonomy_version": "v1",
        "serving_switched": True,
        "previous_serving_adapter_id": b2,
    }
    assert champion_of(registry) == a1
    assert registry.alias("demo", "champion", "v2") is None
    assert [registry.get(i).status for i in (a1, b2)] == ["champion", "retired"]
    assert registry.versions("demo") == {
        "v1": {"champion": a1, "candidate": a1, "adapters": 1, "serving": True},
        "v2": {"champion": None, "candidate": b2, "adapters": 1, "serving": False},
    }
    with pytest.raises(ModelopsError, match=r"no earlier champion.*'v1', and no older"):
        registry.rollback("demo", who="bob", why="again")
    with pytest.raises(NotFoundError, match="recipe 'demo' has no champion of taxonomy version"):
        registry.rollback("demo", who="bob", why="v2", taxonomy_version="v2")

    # Migrate again, and undo it again.
    registry.promote(b2, who="alice", why="v2 retry", evidence={})
    assert champion_of(registry) == b2
    assert registry.rollback("demo", who="bob", why="still bad").adapter_id == a1
    assert champion_of(registry) == a1


def test_rollback_within_the_serving_version_moves_serving(registry):
    promoted(registry, seed="a", taxonomy_version="v1")
    b2 = promoted(registry, seed="b", taxonomy_version="v2")
    c2 = promoted(registry, seed="c", taxonomy_version="v2")
    entry = registry.rollback("demo", who="bob", why="c2 regressed")
    assert (entry.adapter_id, entry.previous_adapter_id) == (b2, c2)
    assert entry.evidence["serving_switched"] is True
    assert "fallback_taxonomy_version" not in entry.evidence
    assert champion_of(registry) == b2
    assert registry.alias("demo", "champion", "v2").id == b2


def test_rollback_of_an_older_version_leaves_serving(registry):
    a1 = promoted(registry, seed="a", taxonomy_version="v1")
    c1 = promoted(registry, seed="c", taxonomy_version="v1")
    b2 = promoted(registry, seed="b", taxonomy_version="v2")
    entry = registry.rollback("demo", who="bob", why="c1 bad", taxonomy_version="v1")
    assert (entry.adapter_id, entry.previous_adapter_id) == (a1, c1)
    assert entry.evidence["serving_switched"] is False
    assert entry.evidence["previous_serving_adapter_id"] == b2
    assert registry.alias("demo", "champion", "v1").id == a1
    assert champion_of(registry) == b2
    with pytest.raises(ModelopsError, match=rf"adapter {a1} is the first champion.*'v1'\)"):
        registry.rollback("demo", who="bob", why="again", taxonomy_version="v1")
    with pytest.raises(NotFoundError, match="no champion of taxonomy version 'v3'"):
        registry.rollback("demo", who="bob", why="x", taxonomy_version="v3")
    assert registry.aliases("demo") == {
        "serving": b2, "champion": b2, "candidate": b2, "champion@v1": a1, "champion@v2": b2
    }  # fmt: skip


def test_audit_filters(registry):
    a = promoted(registry, "demo", "a")
    b = promoted(registry, "other", "b")
    everything = registry.audit()
    assert [e.id for e in everything] == sorted((e.id for e in everything), reverse=True)
    assert {e.recipe for e in registry.audit(recipe="demo")} == {"demo"}
    assert {e.adapter_id for e in registry.audit(adapter_id=b)} == {b}
    assert [e.action for e in registry.audit(recipe="demo", adapter_id=a)] == [
        "promote",
        "evaluate",
        "register",
    ]
    assert registry.audit(recipe="demo", adapter_id=b) == []


# --------------------------------------------------------------------- schema


def _schema(engine: sa.Engine) -> dict:
    inspector = sa.inspect(engine)
    return {
        table: (
            [c["name"] for c in inspector.get_columns(table)],
            sorted(i["name"] for i in inspector.get_indexes(table)),
        )
        for table in sorted(inspector.get_table_names())
    }


def test_migrations_twice_is_a_noop(db_url):
    assert migrate(db_url) == HEAD
    first = Registry(db_url)
    v = register(first)
    schema = _schema(first._engine)
    first.close()

    assert migrate(db_url) == HEAD  # again: nothing to do
    second = Registry(db_url)
    try:
        assert _schema(second._engine) == schema
        assert {"adapter_versions", "aliases", "audit_log", "alembic_version"} <= set(schema)
        assert "taxonomy_version" in schema["adapter_versions"][0]
        assert "ix_adapter_versions_recipe" in schema["adapter_versions"][1]
        assert "ix_audit_log_recipe" in schema["audit_log"][1]
        with second._engine.connect() as conn:
            versions = conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
        assert versions == [(HEAD,)]
        assert second.get(v.id) == v
    finally:
        second.close()


def test_upgrade_from_0001_keeps_aliases_with_their_versions(db_url):
    adapters = sa.table(
        "adapter_versions",
        *(sa.column(name) for name in ADAPTER_COLUMNS),
        sa.column("lineage", sa.JSON()),
        sa.column("metrics", sa.JSON()),
        sa.column("created_at", UTCDateTime()),
    )
    old_aliases = sa.table(
        "aliases", *(sa.column(n) for n in ("recipe", "name", "adapter_id")),
        sa.column("updated_at", UTCDateTime()),
    )  # fmt: skip
    new_aliases = sa.table(
        "aliases", *(sa.column(n) for n in ("recipe", "taxonomy_version", "name", "adapter_id")),
        sa.column("updated_at", UTCDateTime()),
    )  # fmt: skip
    audit = sa.table(
        "audit_log",
        *(sa.column(n) for n in ("who", "action", "recipe", "adapter_id", "previous_adapter_id")),
        sa.column("why"), sa.column("at", UTCDateTime()), sa.column("evidence", sa.JSON()),
    )  # fmt: skip
    at = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)

    def adapter(id_: int, recipe: str, version: str, status: str) -> dict:
        digest = sha256_bytes(str(id_).encode())
        return dict(
            id=id_, recipe=recipe, taxonomy_version=version, base_model="minilm@2024-01",
            base_model_sha256=digest, dataset_fingerprint=digest, recipe_fingerprint=digest,
            artifact_uri=f"file:///a/{id_}", artifact_sha256=digest, weights_sha256=digest,
            lineage={}, metrics={}, gate=None, status=status, created_at=at, created_by="t",
        )  # fmt: skip

    def alias(recipe: str, name: str, adapter_id: int) -> dict:
        return {"recipe": recipe, "name": name, "adapter_id": adapter_id, "updated_at": at}

    def promotion(recipe: str, adapter_id: int, previous: int | None) -> dict:
        return dict(
            at=at, who="alice", action="promote", recipe=recipe, adapter_id=adapter_id,
            previous_adapter_id=previous, why="old", evidence={},
        )  # fmt: skip

    engine = registry_engine(db_url)
    try:
        with engine.begin() as conn:
            upgrade(conn, "0001")
            conn.execute(
                adapters.insert(),
                [
                    adapter(1, "demo", "v1", "retired"),
                    adapter(2, "demo", "v2", "champion"),
                    adapter(3, "demo", "v2", "candidate"),
                    adapter(4, "other", "v1", "champion"),
                ],
            )
            conn.execute(
                old_aliases.insert(),
                [
                    alias("demo", "champion", 2),
                    alias("demo", "candidate", 3),
                    alias("other", "champion", 4),
                    alias("other", "candidate", 4),
                ],
            )
            conn.execute(
                audit.insert(),
                [promotion("demo", 1, None), promotion("demo", 2, 1), promotion("other", 4, None)],
            )
            if conn.dialect.name == "postgresql":  # ids were given: move the sequence on
                conn.execute(sa.text("SELECT setval('adapter_versions_id_seq', 4)"))
    finally:
        engine.dispose()

    migrate(db_url)  # modelops init
    with Registry(db_url) as reg:
        with reg._engine.connect() as conn:
            version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
            rows = conn.execute(
                sa.text("SELECT recipe, taxonomy_version, name, adapter_id FROM aliases")
            ).all()
        assert version == [(HEAD,)]
        assert sorted(rows) == [
            ("demo", "", "serving", 2),
            ("demo", "v2", "candidate", 3),
            ("demo", "v2", "champion", 2),
            ("other", "", "serving", 4),
            ("other", "v1", "candidate", 4),
            ("other", "v1", "champion", 4),
        ]
        assert reg.aliases("demo") == {
            "serving": 2, "champion": 2, "candidate": 3, "champion@v2": 2
        }  # fmt: skip
        assert reg.versions("demo") == {
            "v1": {"champion": None, "candidate": None, "adapters": 1, "serving": False},
            "v2": {"champion": 2, "candidate": 3, "adapters": 2, "serving": True},
        }
        assert [(v.id, v.status) for v in reg.list("demo")] == [
            (3, "candidate"), (2, "champion"), (1, "retired")
        ]  # fmt: skip
        assert reg.get(2).created_at == at
        assert champion_of(reg, "other") == 4

        # The migrated rows work with the new code and its constraints.
        reg.record_evaluation(3, metrics={}, gate=PASSED, who="ci")
        entry = reg.promote(3, who="alice", why="after the upgrade", evidence={})
        assert (entry.previous_adapter_id, entry.evidence["serving_switched"]) == (2, True)
        assert reg.rollback("demo", who="bob", why="undo").adapter_id == 2
        assert champion_of(reg) == 2
        new = register(reg, "demo", "new", taxonomy_version="v2")
        assert reg.aliases("demo", "v2") == {"champion": 2, "candidate": new.id}
        for recipe, version, name in (("demo", "v2", "champion"), ("demo", "v1", "serving")):
            with pytest.raises(sa.exc.IntegrityError), reg._engine.begin() as conn:
                conn.execute(
                    new_aliases.insert().values(
                        recipe=recipe,
                        taxonomy_version=version,
                        name=name,
                        adapter_id=1,
                        updated_at=at,
                    )
                )


def test_models_match_migrations(registry):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from modelops.stores.db import orm  # noqa: F401  (every table joins Base.metadata)
    from modelops.stores.db.engine import Base

    with registry._engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_concurrent_migration_of_a_new_database(db_url, tmp_path):
    """Several processes migrating one new database at the same moment (several
    ``modelops init``) all succeed."""
    url = db_url
    go = tmp_path / "go"
    src = str(Path(modelops.__file__).resolve().parents[1])
    child = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {src!r})
        from pathlib import Path
        from modelops.stores.db.engine import migrate
        while not Path({str(go)!r}).exists():
            time.sleep(0.01)
        migrate({url!r})
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", child], stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    go.touch()
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    assert [rc for rc, _ in results] == [0, 0, 0, 0], [err for _, err in results]
    with Registry(url) as reg:
        assert reg.list() == []


def test_unusable_database_url_is_one_clear_error(tmp_path):
    with pytest.raises(ModelopsError, match="nosuchdb"):
        Registry("nosuchdb://x/y")
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ModelopsError, match="cannot create the registry directory"):
        migrate(f"sqlite:///{blocker / 'sub' / 'r.db'}")
    with pytest.raises(ModelopsError, match="no database file: run `modelops init`"):
        Registry(f"sqlite:///{blocker / 'sub' / 'r.db'}")


def test_serving_adapters_of_every_recipe_in_one_query(registry):
    assert registry.serving_adapters() == {}
    first = register(registry, "demo")
    other = register(registry, "other")
    register(registry, "idle")  # registered, never promoted: serves nothing
    for version in (first, other):
        registry.promote(version.id, who="alice", why="test", evidence={}, force=True)
    newer = register(registry, "demo")
    registry.promote(newer.id, who="alice", why="test", evidence={}, force=True)
    serving = registry.serving_adapters()
    assert {recipe: v.id for recipe, v in serving.items()} == {"demo": newer.id, "other": other.id}
    # the same as asking recipe by recipe
    assert serving["other"] == registry.alias("other", "champion")
