"""Landing batch files fuzzed with hypothesis: a clear error naming the file and line or
row, or the checked rows; NUL characters never reach the production log."""

from __future__ import annotations

import csv
import io

import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from modelops.config.errors import InputError
from modelops.serving.batch_scoring import read_batch

FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
TEXT = st.text(alphabet=st.sampled_from(list('ab é,"\n\0') + ["\ufeff"]), max_size=20)
CELL = st.one_of(
    TEXT, st.integers(-5, 5), st.floats(allow_nan=True), st.none(), st.binary(max_size=3)
)
COLUMNS = st.lists(
    st.sampled_from(["text", "label", "id", "other", "text"]), min_size=1, max_size=4
)


def check(name: str, data: bytes):
    try:
        batch = read_batch(name, data)
    except InputError as exc:
        assert exc.source == name and str(exc).startswith(name), str(exc)
        return None
    assert len(batch.texts) == len(batch.labels) == len(batch.ids) > 0
    assert all(t and "\0" not in t for t in batch.texts)
    assert all(v is None or "\0" not in v for v in batch.labels + batch.ids)
    return batch


@FUZZ
@given(raw=st.binary(max_size=300), suffix=st.sampled_from([".csv", ".parquet", ".txt"]))
def test_fuzz_batch_bytes(raw, suffix):
    check(f"batch{suffix}", raw)


@FUZZ
@given(columns=COLUMNS, rows=st.lists(st.lists(TEXT, min_size=4, max_size=4), max_size=8))
def test_fuzz_batch_csv(columns, rows):
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(r[: len(columns)] for r in rows)
    check("batch.csv", buffer.getvalue().encode("utf-8"))


@FUZZ
@given(
    columns=st.lists(
        st.sampled_from(["text", "label", "id", "other"]), min_size=1, max_size=3, unique=True
    ),
    cells=st.lists(st.tuples(CELL, CELL, CELL), max_size=8),
)
def test_fuzz_batch_parquet(columns, cells):
    frame = pd.DataFrame({c: [row[i] for row in cells] for i, c in enumerate(columns)})
    buffer = io.BytesIO()
    try:
        frame.to_parquet(buffer, index=False)
    except Exception:  # pyarrow cannot store mixed-type columns: not an input we get
        assume(False)
    check("batch.parquet", buffer.getvalue())


def test_unknown_labels_and_duplicate_ids_are_scored_as_sent():
    data = b"text,label,id\nhello,not_a_label,7\nbye,,7\n"
    batch = read_batch("b.csv", data)
    assert batch.labels == ["not_a_label", None] and batch.ids == ["7", "7"]


def test_a_nul_character_is_refused_with_its_line():
    with pytest.raises(InputError, match=r"^b\.csv: line 3: a NUL character"):
        read_batch("b.csv", b"text\nfine\nbad\0text\n")
