"""Catalog file edits keep the rest of the file (comments included) and validate first."""

from __future__ import annotations

import pytest

from modelops.config.catalog import CatalogEntry, append_revision, move_alias
from modelops.config.errors import InputError, NotFoundError
from modelops.config.yaml_files import read_yaml_mapping

CATALOG = """\
# Reviewed catalog: keep this comment.
models:
  - name: minilm
    revision: r1            # the first one
    aliases: [stable, prod]
    location: /models/r1
  # a comment between entries
  - name: minilm
    revision: r2
    aliases:
      - beta
    location: /models/r2
  - name: minilm
    revision: r3
    location: /models/r3
"""


def aliases(path):
    return {m["revision"]: m.get("aliases", []) for m in read_yaml_mapping(path)["models"]}


def test_alias_move_changes_only_alias_lines(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(CATALOG)
    assert move_alias(path, "minilm", "stable", "r3") == "r1"
    assert aliases(path) == {"r1": ["prod"], "r2": ["beta"], "r3": ["stable"]}
    assert move_alias(path, "minilm", "beta", "r1") == "r2"
    assert move_alias(path, "minilm", "new", "r2") is None
    assert aliases(path) == {"r1": ["prod", "beta"], "r2": ["new"], "r3": ["stable"]}
    text = path.read_text()
    for kept in (
        "# Reviewed catalog: keep this comment.",
        "# the first one",
        "# a comment between entries",
        "location: /models/r3",
    ):
        assert kept in text
    changed = [line for line in text.splitlines() if line not in CATALOG.splitlines()]
    assert all("aliases" in line or line.strip().startswith("[") for line in changed)


def test_alias_to_unknown_revision_is_refused_naming_both(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(CATALOG)
    with pytest.raises(
        NotFoundError,
        match=r"minilm@stable to minilm@r9: no such revision "
        r"\(revisions of minilm: minilm@r1, minilm@r2, minilm@r3\)",
    ):
        move_alias(path, "minilm", "stable", "r9")
    with pytest.raises(InputError, match="may not be named like a revision"):
        move_alias(path, "minilm", "r2", "r1")
    assert path.read_text() == CATALOG


def test_append_keeps_the_file_and_refuses_duplicates(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(CATALOG)
    append_revision(
        path,
        CatalogEntry(
            name="minilm",
            revision="r4",
            location="/models/r4",
            hidden_size=384,
            license="Apache-2.0",
            aliases=("x",),
        ),
    )
    assert path.read_text().startswith(CATALOG)
    assert aliases(path)["r4"] == ["x"]
    with pytest.raises(InputError, match="minilm@x would be defined twice"):
        append_revision(
            path, CatalogEntry(name="minilm", revision="r5", location="/m", aliases=("x",))
        )
    flat = tmp_path / "flat.yaml"  # list items at column 0, another key after the list
    flat.write_text("models:\n- name: a\n  revision: r1\n  location: /a\nother: 1\n")
    with pytest.raises(InputError, match="other"):  # the schema has no other key
        append_revision(flat, CatalogEntry(name="a", revision="r2", location="/b"))
    flat.write_text("models:\n- name: a\n  revision: r1\n  location: /a\n")
    append_revision(flat, CatalogEntry(name="a", revision="r2", location="/b"))
    assert list(aliases(flat)) == ["r1", "r2"]
    fresh = tmp_path / "new.yaml"  # a new file starts with the built-in entry
    append_revision(fresh, CatalogEntry(name="a", revision="r2", location="/b"))
    assert [m["name"] for m in read_yaml_mapping(fresh)["models"]] == ["minilm", "a"]
