"""``modelops taxonomy validate`` and ``modelops taxonomy diff``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from modelops.cli import main

EXAMPLE = Path(__file__).parents[1] / "fixtures" / "data" / "taxonomy_v2"
DATA = EXAMPLE / "requests_v1.csv"


@pytest.fixture
def tax_dir(tmp_path) -> Path:
    target = tmp_path / "taxonomies"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("*.csv"))
    return target


def test_validate_prints_one_line_per_version(tax_dir, capsys):
    assert main(["taxonomy", "validate", "--dir", str(tax_dir)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "demo:v1 OK (6 labels)",
        "demo:v2 OK (6 labels, from v1)",
        "demo:v3 OK (4 labels, from v2)",
    ]


def test_validate_fails_with_the_error(tax_dir, capsys):
    path = tax_dir / "demo" / "v2.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["mapping"]["retire"] = []
    path.write_text(yaml.safe_dump(doc))
    assert main(["taxonomy", "validate", "--dir", str(tax_dir)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip() == (
        f"modelops: error: {path}: mapping: old label 'invoice_copy' of demo:v1 is not "
        "accounted for: keep it in labels, or rename, merge, split or retire it"
    )


def test_diff_lists_each_change(tax_dir, capsys):
    assert main(["taxonomy", "diff", "demo", "v1", "v2", "--dir", str(tax_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("demo:v1 -> demo:v2 (mapping ")
    assert [line.split() for line in lines[1:]] == [
        ["rename", "card_lost", "->", "card_missing"],
        ["merge", "billing_double_charge,", "payment_failed", "->", "billing_problem"],
        ["keep", "change_address"],
        ["split", "account_access", "->", "password_reset,", "account_locked"],
        ["retire", "invoice_copy"],
        ["add", "crypto_transfer"],
    ]


def test_diff_with_data_counts_examples_and_review(tax_dir, capsys):
    args = ["taxonomy", "diff", "demo", "v1", "v2", "--dir", str(tax_dir), "--data", str(DATA)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "card_lost -> card_missing" in out
    split_line = next(line for line in out.splitlines() if line.lstrip().startswith("split"))
    assert split_line.endswith("4 examples (account_locked 1, password_reset 2, review 1)")
    assert out.splitlines()[-1] == (
        "10 examples: 8 relabelled (7 with a new label), 1 to review, 1 retired"
    )


def test_diff_json_with_parquet_data_and_other_columns(tax_dir, tmp_path, capsys):
    frame = pd.read_csv(DATA).rename(columns={"text": "body", "label": "intent"})
    parquet = tmp_path / "requests.parquet"
    frame.to_parquet(parquet)
    args = ["taxonomy", "diff", "demo", "v1", "v3", "--dir", str(tax_dir), "--json"]
    args += ["--data", str(parquet), "--text-column", "body", "--label-column", "intent"]
    assert main(args) == 0
    document = json.loads(capsys.readouterr().out)
    assert (document["source"], document["target"]) == ("demo:v1", "demo:v3")
    assert len(document["fingerprint"]) == 64
    by_kind = {(c["kind"], tuple(c["old_labels"])): c for c in document["changes"]}
    access = by_kind[("rename", ("account_access",))]  # split in v2, merged again in v3
    assert access["new_labels"] == ["account_help"]
    assert (access["examples"], access["review"]) == (4, 0)
    assert access["outcomes"] == {"account_help": 4}
    assert by_kind[("retire", ("invoice_copy",))]["outcomes"] == {"__retired__": 1}
    assert document["totals"] == {
        "examples": 10,
        "relabelled": 9,
        "changed": 6,
        "review": 0,
        "retired": 1,
    }
    expected = sum(frame["intent"].isin(["billing_double_charge", "payment_failed"]))
    assert by_kind[("merge", ("billing_double_charge", "payment_failed"))]["examples"] == expected


def test_diff_json_without_data_has_no_counts(tax_dir, capsys):
    assert main(["taxonomy", "diff", "demo", "v2", "v3", "--dir", str(tax_dir), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert "totals" not in document
    assert {"kind": "retire", "old_labels": ["crypto_transfer"], "new_labels": []} in (
        document["changes"]
    )
    assert all("examples" not in c for c in document["changes"])


def test_diff_rejects_data_with_labels_of_another_version(tax_dir, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nfine,card_lost\nnew label,card_missing\n")
    args = ["taxonomy", "diff", "demo", "v1", "v2", "--dir", str(tax_dir), "--data", str(bad)]
    assert main(args) == 1
    assert capsys.readouterr().err.strip() == (
        f"modelops: error: {bad}: line 3: label 'card_missing' is not in the taxonomy"
    )


def test_diff_of_a_missing_version_fails(tax_dir, capsys):
    assert main(["taxonomy", "diff", "demo", "v1", "v9", "--dir", str(tax_dir)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("modelops: error: ") and "v9.yaml: file not found" in err
