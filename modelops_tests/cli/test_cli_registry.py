"""``modelops registry ...``: exit codes, JSON on stdout, one-line errors on stderr."""

from __future__ import annotations

import json

import pytest

from modelops.cli import main
from modelops.config.fingerprint import sha256_bytes
from modelops.stores.db.engine import migrate
from modelops.stores.registry import Registry

PASSED = {"passed": True, "checks": [{"name": "macro_f1_min", "passed": True}]}
FAILED = {"passed": False, "checks": [{"name": "macro_f1_min", "passed": False}]}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path, monkeypatch):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'state' / 'registry.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    monkeypatch.setenv("MODELOPS_DATABASE_URL", url)
    monkeypatch.setenv("MODELOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MODELOPS_USER", "alice")
    migrate(url)  # modelops init
    return url


@pytest.fixture
def registry(db_url):
    reg = Registry(db_url)
    yield reg
    reg.close()


def register(
    reg: Registry, recipe: str, seed: str, gate: dict | None = PASSED, taxonomy_version: str = "v2"
) -> int:
    version = reg.register(
        recipe=recipe,
        taxonomy_version=taxonomy_version,
        base_model="minilm@2024-01",
        base_model_sha256=sha256_bytes(b"base"),
        dataset_fingerprint=sha256_bytes(seed.encode()),
        recipe_fingerprint=sha256_bytes(recipe.encode()),
        artifact_uri=f"file:///artifacts/{seed}",
        artifact_sha256=sha256_bytes(f"artifact-{seed}".encode()),
        weights_sha256=sha256_bytes(f"weights-{seed}".encode()),
        lineage={"seed": seed},
        metrics={"test_macro_f1": 0.75, "test_accuracy": 0.8125},
        who="trainer",
    )
    if gate is not None:
        reg.record_evaluation(version.id, metrics={}, gate=gate, who="ci")
    return version.id


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_list_json_and_table(registry, capsys):
    code, out, _ = run(capsys, "registry", "list", "--json")
    assert (code, json.loads(out)) == (0, [])

    a = register(registry, "demo", "a")
    b = register(registry, "demo", "b")
    c = register(registry, "other", "c")
    registry.promote(a, who="alice", why="first", evidence={})

    code, out, _ = run(capsys, "registry", "list", "--json")
    assert code == 0
    listed = json.loads(out)
    assert [v["id"] for v in listed] == [c, b, a]
    assert {v["id"]: v["aliases"] for v in listed} == {
        c: ["candidate@v2"],
        b: ["candidate@v2"],
        a: ["champion@v2", "serving"],
    }
    assert listed[-1]["status"] == "champion"

    code, out, _ = run(capsys, "registry", "list", "--recipe", "demo", "--json")
    assert [v["id"] for v in json.loads(out)] == [b, a]

    code, out, _ = run(capsys, "registry", "list")
    assert code == 0
    header, *rows = out.strip().splitlines()
    assert header.split() == [
        "id", "recipe", "taxonomy", "status", "aliases", "macro_f1", "accuracy", "created"
    ]  # fmt: skip
    assert [r.split()[0] for r in rows] == [str(c), str(b), str(a)]
    assert rows[-1].split()[1:7] == [
        "demo", "v2", "champion", "champion@v2,serving", "0.7500", "0.8125"
    ]  # fmt: skip
    # Aligned: every column starts at the same offset on every line.
    start = header.index("status")
    assert all(r[start:].startswith(("candidate", "champion")) for r in rows)


def test_show_includes_aliases_and_audit_trail(registry, capsys):
    a = register(registry, "demo", "a")
    registry.promote(a, who="alice", why="first", evidence={})

    code, out, _ = run(capsys, "registry", "show", str(a), "--json")
    assert code == 0
    shown = json.loads(out)
    assert shown["id"] == a and shown["recipe"] == "demo"
    assert shown["aliases"] == ["candidate@v2", "champion@v2", "serving"]
    assert [e["action"] for e in shown["audit"]] == ["promote", "evaluate", "register"]
    assert shown["gate"] == PASSED

    code, out, _ = run(capsys, "registry", "show", str(a))
    assert code == 0
    assert "champion" in out and "audit trail:" in out and "promote" in out


@pytest.mark.parametrize("bad", ["999", "abc", "0", "-3"])
def test_show_bad_id_is_one_error_line(db_url, capsys, bad):
    code, out, err = run(capsys, "registry", "show", bad)
    assert code == 1 and out == ""
    line = one_error_line(err)
    if bad == "999":
        assert "adapter 999 not found" in line
    else:
        assert "ID" in line and repr(bad) in line


def test_promote_and_rollback(registry, capsys):
    a = register(registry, "demo", "a")
    b = register(registry, "demo", "b")

    code, out, _ = run(capsys, "registry", "promote", str(a), "--why", "first champion")
    assert code == 0 and f"adapter {a}" in out
    code, out, _ = run(capsys, "registry", "promote", str(b), "--why", "better", "--json")
    assert code == 0
    entry = json.loads(out)
    assert (entry["action"], entry["who"], entry["why"]) == ("promote", "alice", "better")
    assert (entry["adapter_id"], entry["previous_adapter_id"]) == (b, a)
    assert registry.aliases("demo")["champion"] == b
    assert registry.get(a).status == "retired"

    code, out, _ = run(capsys, "registry", "rollback", "demo", "--why", "b regressed")
    assert code == 0 and f"adapter {a}" in out
    assert registry.aliases("demo")["champion"] == a
    last = registry.audit(recipe="demo")[0]
    assert (last.action, last.who, last.why) == ("rollback", "alice", "b regressed")

    code, out, err = run(capsys, "registry", "rollback", "demo", "--why", "again")
    assert code == 1 and out == ""
    assert "recipe 'demo'" in one_error_line(err)
    assert registry.aliases("demo")["champion"] == a


def test_promote_gate_failed_needs_force(registry, capsys):
    bad = register(registry, "demo", "bad", gate=FAILED)

    code, out, err = run(capsys, "registry", "promote", str(bad), "--why", "please")
    assert code == 1 and out == ""
    line = one_error_line(err)
    assert f"adapter {bad}" in line and "macro_f1_min" in line
    assert "champion" not in registry.aliases("demo")

    code, out, _ = run(capsys, "registry", "promote", str(bad), "--why", "hotfix", "--force")
    assert code == 0 and "forced" in out
    assert registry.aliases("demo")["champion"] == bad
    assert registry.audit(recipe="demo")[0].evidence["forced"] is True

    code, _, err = run(capsys, "registry", "promote", str(bad), "--why", "again")
    assert code == 1 and "already the champion" in one_error_line(err)


def test_rollback_unknown_recipe(db_url, capsys):
    code, out, err = run(capsys, "registry", "rollback", "nothing", "--why", "x")
    assert code == 1 and out == ""
    assert "recipe 'nothing'" in one_error_line(err)


def test_taxonomy_versions_promote_rollback_and_versions(registry, capsys):
    a1 = register(registry, "demo", "a", taxonomy_version="v1")
    code, out, _ = run(capsys, "registry", "promote", str(a1), "--why", "v1 champion")
    assert code == 0 and "taxonomy version v1" in out and f"serving: adapter {a1}" in out
    b2 = register(registry, "demo", "b", taxonomy_version="v2")
    code, out, _ = run(capsys, "registry", "promote", str(b2), "--why", "taxonomy v2")
    assert code == 0 and f"serving switched from adapter {a1} to adapter {b2}" in out
    c1 = register(registry, "demo", "c", taxonomy_version="v1")
    code, out, _ = run(capsys, "registry", "promote", str(c1), "--why", "v1 fix")
    assert code == 0 and f"previous champion: adapter {a1}" in out
    assert f"serving unchanged (adapter {b2})" in out

    code, out, _ = run(capsys, "registry", "list", "--json")
    assert {v["id"]: v["aliases"] for v in json.loads(out)} == {
        c1: ["candidate@v1", "champion@v1"],
        b2: ["candidate@v2", "champion@v2", "serving"],
        a1: [],
    }
    code, out, _ = run(capsys, "registry", "show", str(b2))
    assert code == 0 and "candidate@v2, champion@v2, serving" in out

    code, out, _ = run(capsys, "registry", "versions", "demo", "--json")
    assert (code, json.loads(out)) == (
        0,
        {
            "v1": {"champion": c1, "candidate": c1, "adapters": 2, "serving": False},
            "v2": {"champion": b2, "candidate": b2, "adapters": 1, "serving": True},
        },
    )

    code, out, _ = run(
        capsys, "registry", "rollback", "demo", "--taxonomy-version", "v1", "--why", "c1 bad"
    )
    assert code == 0 and "taxonomy version v1" in out and f"champion is adapter {a1}" in out
    assert f"serving unchanged (adapter {b2})" in out
    code, out, err = run(
        capsys, "registry", "rollback", "demo", "--taxonomy-version", "v7", "--why", "x"
    )
    assert code == 1 and out == ""
    assert "no champion of taxonomy version 'v7'" in one_error_line(err)

    code, out, _ = run(capsys, "registry", "rollback", "demo", "--why", "undo v2")
    assert code == 0 and "taxonomy version v2" in out
    assert f"serving falls back to adapter {a1}" in out and "taxonomy version v1" in out
    code, out, _ = run(capsys, "registry", "versions", "demo")
    assert code == 0
    header, *rows = out.strip().splitlines()
    assert header.split() == ["taxonomy", "champion", "candidate", "adapters", "serving"]
    assert [r.split() for r in rows] == [
        ["v1", str(a1), str(c1), "2", "yes"],
        ["v2", "-", str(b2), "1", "-"],
    ]
    assert registry.alias("demo", "serving").id == a1


def test_versions_of_an_unknown_recipe(db_url, capsys):
    code, out, _ = run(capsys, "registry", "versions", "nothing")
    assert (code, out.strip()) == (0, "no adapter versions for recipe 'nothing'")
    code, out, _ = run(capsys, "registry", "versions", "nothing", "--json")
    assert (code, json.loads(out)) == (0, {})


def test_audit_json_and_table(registry, capsys):
    a = register(registry, "demo", "a")
    register(registry, "other", "b")
    registry.promote(a, who="alice", why="ship it", evidence={"k": 1})

    code, out, _ = run(capsys, "registry", "audit", "--recipe", "demo", "--json")
    assert code == 0
    entries = json.loads(out)
    assert [e["action"] for e in entries] == ["promote", "evaluate", "register"]
    assert {e["recipe"] for e in entries} == {"demo"}
    assert entries[0]["evidence"] == {
        "k": 1, "taxonomy_version": "v2", "serving_switched": True,
        "previous_serving_adapter_id": None,
    }  # fmt: skip
    assert entries[0]["at"].endswith("+00:00")

    code, out, _ = run(capsys, "registry", "audit")
    assert code == 0
    header, *rows = out.strip().splitlines()
    assert header.split()[:4] == ["id", "at", "who", "action"]
    assert len(rows) == 5 and "ship it" in rows[0]


def test_unreachable_database_is_one_error_line(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("MODELOPS_DATABASE_URL", f"sqlite:///{blocker / 'db' / 'r.db'}")
    code, out, err = run(capsys, "registry", "list")
    assert code == 1 and out == ""
    assert "no database file: run `modelops init`" in one_error_line(err)
    assert not (blocker / "db").exists()
