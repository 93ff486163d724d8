"""Bombs in the landing folder, through the real scoring path: a small Parquet file
that claims millions of rows, one whose few rows decode to gigabytes, a CSV with too
many rows and one over the byte cap. Each is refused with an error naming the file and
the cap before it is loaded (memory stays bounded), and nothing stored changes."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelops.config.monitoring import LandingLimits
from modelops_tests.fixtures.hostile_landing import Landing, stored_rows

# Generous: the bombs below decode to gigabytes; a refusal before loading needs little.
MEMORY_BOUND = 256 * 2**20


@pytest.fixture
def landing(tmp_path):
    return Landing(tmp_path / "landing")


def parquet_bomb(path, rows: int, value_chars: int) -> int:
    """A Parquet file whose ``text`` column repeats one value ``rows`` times: the
    dictionary holds it once and the indices compress to almost nothing. Written without
    the Arrow schema, so a reader decodes it into plain strings. Its size in bytes."""
    indices = pa.array(np.zeros(rows, dtype=np.int32))
    column = pa.DictionaryArray.from_arrays(indices, pa.array(["x" * value_chars]))
    pq.write_table(pa.table({"text": column}), path, store_schema=False, compression="zstd")
    return path.stat().st_size


def refused_within_memory(landing, predictor, plog, limits=None):
    """One pass with Python and Arrow allocations watched; the report and the growth of
    each peak."""
    pool = pa.default_memory_pool()
    arrow_peak = pool.max_memory()
    tracemalloc.start()
    try:
        report = landing.process(predictor, plog, limits)
        _current, python_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return report, python_peak, pool.max_memory() - arrow_peak


@pytest.mark.parametrize(
    ("rows", "value_chars", "limits", "error"),
    [
        # 3 million rows, over the default cap, in a few kilobytes.
        (3_000_000, 64, None, "too many rows: 3000000, over the cap of 1000000"),
        # Few rows under the row cap, but 400 MB of text once decoded.
        (200_000, 2_000, LandingLimits(max_bytes=20_000_000), "too large: over "),
    ],
    ids=["rows", "decoded_bytes"],
)
def test_parquet_bomb_is_refused_before_loading(
    landing, predictor, plog, tmp_path, rows, value_chars, limits, error
):
    size = parquet_bomb(tmp_path / "bomb.parquet", rows, value_chars)
    assert size < 200_000  # small on disk
    data = (tmp_path / "bomb.parquet").read_bytes()
    landing.drop("bomb.parquet", data)
    landing.drop("next.csv", f"text\ncard lost after a {rows}-row bomb\n")
    before, before_feedback = stored_rows(plog)

    report, python_peak, arrow_growth = refused_within_memory(landing, predictor, plog, limits)

    (rejection,) = report.rejected
    assert rejection.error.startswith(f"bomb.parquet: {error}")
    assert "monitoring.landing_limits.max_" in rejection.error
    assert [b.file for b in report.processed] == ["next.csv"]  # the files after it go on
    assert python_peak < MEMORY_BOUND and arrow_growth < MEMORY_BOUND
    assert landing.path("rejected", "bomb.parquet").read_bytes() == data
    assert landing.notes()["bomb.parquet.error.txt"].startswith(f"bomb.parquet: {error}")
    assert plog.count_since("demo", before) == 1
    assert plog.feedback_count("demo") == before_feedback


def test_csv_with_too_many_rows_is_refused_at_the_cap(landing, predictor, plog):
    content = "text\n" + "card lost\n" * 20_000
    landing.drop("rows.csv", content)
    before, before_feedback = stored_rows(plog)

    report = landing.process(predictor, plog, LandingLimits(max_rows=1_000))

    (rejection,) = report.rejected
    assert rejection.error == (
        "rows.csv: line 1002: too many rows: more than 1000, over the cap of 1000 "
        "(monitoring.landing_limits.max_rows)"
    )
    assert report.processed == [] and landing.names("incoming") == []
    assert landing.path("rejected", "rows.csv").read_text(encoding="utf-8") == content
    assert stored_rows(plog) == (before, before_feedback)


def test_csv_over_the_byte_cap_is_refused_from_its_size(landing, predictor, plog):
    content = "text\n" + "a long complaint about my card " * 4_000 + "\n"
    landing.drop("big.csv", content)
    before, before_feedback = stored_rows(plog)

    report = landing.process(predictor, plog, LandingLimits(max_bytes=50_000))

    (rejection,) = report.rejected
    assert rejection.error == (
        f"big.csv: too large: {len(content)} bytes, over the cap of 50000 bytes "
        "(monitoring.landing_limits.max_bytes)"
    )
    assert landing.path("rejected", "big.csv").read_text(encoding="utf-8") == content
    assert stored_rows(plog) == (before, before_feedback)


def test_parquet_under_the_caps_is_still_scored(landing, predictor, plog, tmp_path):
    """The footer checks do not refuse an honest file (read in row batches)."""
    texts = [f"card lost number {i}" for i in range(3_000)]
    pq.write_table(pa.table({"text": texts}), tmp_path / "ok.parquet")
    landing.drop("ok.parquet", (tmp_path / "ok.parquet").read_bytes())
    before = plog.latest_prediction_id("demo")

    report = landing.process(predictor, plog, LandingLimits(max_rows=3_000))

    assert report.rejected == [] and report.processed[0].rows == 3_000
    assert plog.predictions("demo", after_id=before)["text"].tolist() == texts
