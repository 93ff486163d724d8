"""``modelops registry ...``: exit codes, JSON on stdout, one-line errors on stderr."""

from __future__ import annotations

import json

import pytest

from modelops.cli import main
from modelops.core.fingerprint import sha256_bytes
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
    return url


@pytest.fixture
def registry(db_url):
    reg = Registry(db_url)
    yield reg
    reg.close()


def register(reg: Registry, recipe: str, seed: str, gate: dict | None = PASSED) -> int:
    version = reg.register(
        recipe=recipe,
        taxonomy_version="v2",
        base_model="minilm@2024-01",
        base_model_sha256=sha256_bytes(b"base"),
        dataset_fingerprint=sha256_bytes(seed.encode()),
        recipe_fingerprint=sha256_bytes(recipe.encode()),
        artifact_uri=f"file:///artifacts/{seed}",
        artifact_sha256=sha256_bytes(f"artifact-{seed}".encode()),
        weights_sha256=sha256_bytes(f"weights-{seed}".encode()),
        lineage={"seed": seed},
        metrics={"macro_f1": 0.75, "accuracy": 0.8125},
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
        c: ["candidate"],
        b: ["candidate"],
        a: ["champion"],
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
    assert rows[-1].split()[1:7] == ["demo", "v2", "champion", "champion", "0.7500", "0.8125"]
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
    assert sorted(shown["aliases"]) == ["candidate", "champion"]
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


def test_audit_json_and_table(registry, capsys):
    a = register(registry, "demo", "a")
    register(registry, "other", "b")
    registry.promote(a, who="alice", why="ship it", evidence={"k": 1})

    code, out, _ = run(capsys, "registry", "audit", "--recipe", "demo", "--json")
    assert code == 0
    entries = json.loads(out)
    assert [e["action"] for e in entries] == ["promote", "evaluate", "register"]
    assert {e["recipe"] for e in entries} == {"demo"}
    assert entries[0]["evidence"] == {"k": 1} and entries[0]["at"].endswith("+00:00")

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
    assert "registry directory" in one_error_line(err)
