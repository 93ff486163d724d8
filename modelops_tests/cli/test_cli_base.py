"""``modelops base register|alias|list --json``: measured records, one-line errors."""

from __future__ import annotations

import json

import pytest

from modelops.cli import main
from modelops.config.fingerprint import sha256_dir
from modelops_tests.fixtures.processes import workspace_env
from modelops_tests.fixtures.tiny_bases import shared_tiny_bases, write_bases_catalog
from modelops_tests.fixtures.workspace import make_workspace


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    return shared_tiny_bases(tmp_path_factory)


@pytest.fixture
def env(bases, tmp_path, monkeypatch):
    only_a = {"bert_a": bases["bert_a"]}
    catalog = write_bases_catalog(tmp_path / "catalog.yaml", only_a, {"tiny@stable": "bert_a"})
    settings = make_workspace(tmp_path, catalog, rows=60)
    for key, value in workspace_env(settings).items():
        monkeypatch.setenv(key, value)
    return settings


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_register_alias_list(env, bases, capsys):
    code, out, _ = run(
        capsys,
        "base",
        "register",
        "tiny@b",
        str(bases["bert_b"].path),
        "--license",
        "Apache-2.0",
        "--source",
        "tests",
        "--json",
    )
    assert code == 0
    entry = json.loads(out)
    assert entry["sha256"] == sha256_dir(bases["bert_b"].path)
    assert (entry["architecture"], entry["hidden_size"], entry["num_layers"]) == ("bert", 32, 2)
    assert entry["vocab_size"] == bases["bert_b"].vocab_size
    assert entry["parameters"] > 0 and len(entry["tokenizer_sha256"]) == 64
    assert entry["license"] == "Apache-2.0" and entry["registered_at"]
    code, out, _ = run(capsys, "base", "list", "--json")
    listed = json.loads(out)
    assert [r["ref"] for r in listed["revisions"]] == ["tiny@a", "tiny@b"]
    assert listed["recipes"] == [
        {
            "recipe": "demo",
            "base_model": "tiny@stable",
            "follows": "alias",
            "resolves_to": "tiny@a",
            "sha256": None,
        }
    ]
    code, out, _ = run(capsys, "base", "alias", "tiny@stable", "tiny@b", "--json")
    assert code == 0
    assert json.loads(out) == {
        "alias": "tiny@stable",
        "from": "tiny@a",
        "to": "tiny@b",
        "recipes": ["demo"],
    }
    code, out, _ = run(capsys, "base", "list")
    assert code == 0 and "demo: tiny@stable -> tiny@b" in out


def test_bad_requests_name_what_is_wrong(env, bases, capsys, tmp_path):
    before = env.catalog_path.read_text()
    code, _, err = run(capsys, "base", "alias", "tiny@stable", "zz")
    assert code == 1
    assert "cannot move tiny@stable to tiny@zz: no such revision (revisions of tiny: tiny@a)" in err
    code, _, err = run(capsys, "base", "register", "tiny@a", str(bases["bert_b"].path))
    assert code == 1 and "tiny@a is already in the catalog" in err
    code, _, err = run(capsys, "base", "register", "tiny@c", str(tmp_path))
    assert code == 1 and "holds no config.json" in err
    assert env.catalog_path.read_text() == before  # nothing half-written
