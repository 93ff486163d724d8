"""Datasets: validation errors name file and row; splits and fingerprints are stable."""

from __future__ import annotations

from functools import partial

import boto3
import pandas as pd
import pytest
import yaml

from modelops.config.errors import InputError
from modelops.config.fingerprint import sha256_bytes
from modelops.config.recipe import load_recipe
from modelops.domain.dataset import (
    dataset_from_rows,
    prepare_dataset,
    read_table,
    split_of,
)
from modelops.domain.text import normalize_text
from modelops.lifecycle.dataset import read_source
from modelops_tests.fixtures.workspace import write_recipe

LABELS = ["card_lost", "refund_request", "password_reset"]


def rows(n: int, offset: int = 0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "text": [f"request number {i} about thing {i % 7}" for i in range(offset, offset + n)],
            "label": [LABELS[i % 3] for i in range(offset, offset + n)],
        }
    )


def build(frame: pd.DataFrame):
    return dataset_from_rows(frame, labels=LABELS, validation_fraction=0.1, test_fraction=0.2)


@pytest.fixture
def root(tmp_path):
    tax = tmp_path / "taxonomies" / "demo" / "v1.yaml"
    tax.parent.mkdir(parents=True)
    tax.write_text(
        yaml.safe_dump({"name": "demo", "version": "v1", "labels": [{"name": n} for n in LABELS]})
    )
    (tmp_path / "data").mkdir()
    return tmp_path


def test_split_fractions_are_close_to_requested():
    dataset = build(rows(3000))
    assert abs(dataset.stats["test_rows"] / 3000 - 0.2) < 0.03
    assert abs(dataset.stats["validation_rows"] / 3000 - 0.1) < 0.03
    assert (
        dataset.stats["train_rows"] + dataset.stats["validation_rows"] + dataset.stats["test_rows"]
        == 3000
    )


def test_an_example_never_changes_split_when_data_grows():
    small = build(rows(500)).frame.set_index("text")["split"]
    grown = build(pd.concat([rows(500, offset=500), rows(500)])).frame.set_index("text")["split"]
    assert (grown.loc[small.index] == small).all()


def test_split_depends_on_normalized_text_only():
    a = sha256_bytes(normalize_text("Lost  my CARD ").encode())
    b = sha256_bytes(normalize_text("lost my card").encode())
    assert a == b
    assert split_of(a, 0.1, 0.2) == split_of(b, 0.1, 0.2)


def test_fingerprint_ignores_row_order_and_sees_content():
    frame = rows(200)
    first = build(frame)
    shuffled = build(frame.sample(frac=1.0, random_state=3))
    changed = frame.copy()
    changed.loc[5, "label"] = LABELS[(LABELS.index(changed.loc[5, "label"]) + 1) % 3]
    assert shuffled.fingerprint == first.fingerprint
    assert build(changed).fingerprint != first.fingerprint


def test_duplicates_collapse_and_conflicts_are_dropped():
    frame = pd.DataFrame(
        {
            "text": [
                "Where is my card",
                "where is  my card",
                "refund please",
                "Refund please",
                "reset it",
            ]
            + [f"filler {i}" for i in range(40)],
            "label": ["card_lost", "card_lost", "refund_request", "card_lost", "password_reset"]
            + [LABELS[i % 3] for i in range(40)],
        }
    )
    dataset = build(frame)
    texts = set(dataset.frame["text"].str.casefold())
    assert "where is my card" in texts
    assert "refund please" not in texts
    assert dataset.stats["duplicates_dropped"] == 1
    assert dataset.stats["conflicting_rows_dropped"] == 2
    assert len(dataset.frame) == 42  # 1 card + 1 reset + 40 fillers


def test_prepare_dataset_reads_csv_and_parquet_sources(root):
    rows(60).to_csv(root / "data" / "a.csv", index=False)
    rows(60, offset=60).to_parquet(root / "data" / "b.parquet", index=False)
    loaded = load_recipe(
        write_recipe(
            root, {"data": {"sources": [{"path": "../data/a.csv"}, {"path": "../data/b.parquet"}]}}
        )
    )
    dataset = prepare_dataset(loaded)
    assert dataset.stats["rows_read"] == 120
    assert dataset.labels == LABELS
    assert set(dataset.frame["split"]) <= {"train", "validation", "test"}


def _recipe_on(root, content: bytes, name: str = "bad.csv"):
    (root / "data" / name).write_bytes(content)
    return load_recipe(write_recipe(root, {"data": {"sources": [{"path": f"../data/{name}"}]}}))


@pytest.mark.parametrize(
    ("content", "where", "fragment"),
    [
        (b"text,label\nhello there,card_lost\n,refund_request\n", "line 3", "'text' is empty"),
        (
            b"text,label\nhello there,card_lost\nbye now,unknown_intent\n",
            "line 3",
            "label 'unknown_intent' is not in the taxonomy",
        ),
        (b"text,label\nok,card_lost\nfine,\n", "line 3", "'label' is empty"),
        (
            b"text,label\nok,card_lost\n" + b"x" * 3000 + b",card_lost\n",
            "line 3",
            "3000 characters (max 2000)",
        ),
        (b"text,label\nok,card_lost\ncaf\xe9 au lait,card_lost\n", "line 3", "not valid UTF-8"),
        (
            b"words,label\nok,card_lost\n",
            "column 'text'",
            "missing (columns present: words, label)",
        ),
    ],
)
def test_bad_csv_names_file_and_row(root, content, where, fragment):
    loaded = _recipe_on(root, content)
    with pytest.raises(InputError) as info:
        prepare_dataset(loaded)
    message = str(info.value)
    assert message.startswith(f"{root / 'data' / 'bad.csv'}: {where}: "), message
    assert fragment in message


def test_every_bad_row_is_counted(root):
    body = b"text,label\n" + b"".join(b"t%d,nope\n" % i for i in range(8))
    with pytest.raises(InputError, match=r"line 2: .*and 7 more bad rows: line 3, line 4"):
        prepare_dataset(_recipe_on(root, body))


def test_empty_and_missing_files(root):
    with pytest.raises(InputError, match="the file is empty"):
        prepare_dataset(_recipe_on(root, b""))
    with pytest.raises(InputError, match="no data rows"):
        prepare_dataset(_recipe_on(root, b"text,label\n"))
    loaded = load_recipe(write_recipe(root, {"data": {"sources": [{"path": "../data/none.csv"}]}}))
    with pytest.raises(InputError, match=r"none\.csv: file not found"):
        prepare_dataset(loaded)


def test_max_rows_is_enforced(root):
    rows(50).to_csv(root / "data" / "a.csv", index=False)
    loaded = load_recipe(
        write_recipe(root, {"data": {"sources": [{"path": "../data/a.csv"}], "max_rows": 10}})
    )
    with pytest.raises(InputError, match=r"data\.max_rows: the sources hold 50 rows \(max 10\)"):
        prepare_dataset(loaded)


def test_reads_csv_from_s3(s3_bucket):
    endpoint, bucket = s3_bucket
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.put_object(Bucket=bucket, Key="in/data.csv", Body=rows(20).to_csv(index=False).encode())
    read = partial(read_source, s3_endpoint_url=endpoint)  # the platform's reader
    table = read_table(f"s3://{bucket}/in/data.csv", "csv", read=read)
    assert table.shape == (20, 2)
    with pytest.raises(InputError, match=r"s3://.*/in/none\.csv: file not found"):
        read_table(f"s3://{bucket}/in/none.csv", "csv", read=read)
    with pytest.raises(
        InputError,
        match=r"s3://.*/in/data\.csv: an s3:// source is read "
        "through the platform's S3 access",
    ):
        read_table(f"s3://{bucket}/in/data.csv", "csv")  # this room builds no S3 client
