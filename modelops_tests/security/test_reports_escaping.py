"""Production texts in a stored drift report stay data: the page ``report_html`` writes (a
real Evidently report whose production window holds script-injection payloads) has them
escaped inside its data block, with the very same JSON value; pages that are not
Evidently reports are refused."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelops.monitoring.html_safety import (
    UnsafeReportError,
    escape_script_json,
    safe_report_html,
    script_hashes,
)
from modelops_tests.fixtures.security_reports import (
    PAYLOADS,
    data_block,
    raw_evidently_page,
    strings_in,
    write_report,
)

_UNSAFE = re.compile("[<>&\u2028\u2029]")
# A script element as the HTML tokenizer ends it (Evidently's bundle holds no "<!--").
_SCRIPT = re.compile(r"<script(?=[\s/>])[^>]*>.*?</script(?=[\s/>])", re.IGNORECASE | re.DOTALL)


@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> str:
    path = write_report(tmp_path_factory.mktemp("report") / "drift" / "report.html")
    return path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def raw() -> str:
    return raw_evidently_page()


@given(st.recursive(st.text(), lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner)))
def test_escaped_json_is_the_same_value_without_markup_characters(value):
    for ensure_ascii in (True, False):
        text = json.dumps(value, ensure_ascii=ensure_ascii)
        escaped = escape_script_json(text)
        assert json.loads(escaped) == value
        assert not _UNSAFE.search(escaped)


def test_escaping_the_payloads_keeps_them_and_leaves_no_markup():
    text = json.dumps(list(PAYLOADS), ensure_ascii=False)
    escaped = escape_script_json(text)
    assert json.loads(escaped) == list(PAYLOADS)
    for bad in ("</script", "</SCRIPT", "<!--", "<script", "\u2028", "\u2029", "<img"):
        assert bad not in escaped


def test_a_written_report_holds_the_payloads_as_data_only(stored):
    text, value = data_block(stored)
    assert not _UNSAFE.search(text), "markup characters left in the data block"
    # The texts are in the report (its characteristic examples), character for character.
    examples = " ".join(strings_in(value))
    found = [p for p in PAYLOADS if p in examples]
    assert found == list(PAYLOADS), "the report lost production texts"
    # Nothing the payloads hold is markup of the page: Evidently's four scripts only.
    assert len(_SCRIPT.findall(stored)) == 4
    assert len(re.findall(r"</script(?=[\s/>])", stored, re.IGNORECASE)) == 4
    assert "<!--" not in stored
    assert "pwned" not in stored.replace(text, "")


def test_escaping_keeps_the_report_data_and_is_idempotent(raw):
    # Evidently's own page: the payloads verbatim inside its script block.
    assert re.search("</script[ \t/>]", data_block(raw)[0], re.IGNORECASE)
    safe = safe_report_html(raw)
    assert data_block(safe)[1] == data_block(raw)[1]
    assert safe_report_html(safe) == safe
    # Only the data block changed: the rest of the page is Evidently's, byte for byte.
    assert _strip_data(safe) == _strip_data(raw)
    assert len(script_hashes(safe)) == 4


def _strip_data(page: str) -> str:
    return re.sub(r"(var \w+ = )[^\n]*;", r"\1;", page)


def test_pages_that_are_not_evidently_reports_are_refused(stored):
    with pytest.raises(UnsafeReportError, match="not an Evidently 0.7 report page"):
        safe_report_html("<!doctype html><html><body><script>alert(1)</script></body></html>")
    extra = stored.replace("<body>", "<body><script>document.title='x'</script>", 1)
    with pytest.raises(UnsafeReportError, match="5 scripts"):
        safe_report_html(extra, source="drift/x.html")
    comment = stored.replace("<body>", "<body><!--<script>", 1)
    with pytest.raises(UnsafeReportError, match="drift/y.html"):
        safe_report_html(comment, source="drift/y.html")
    twice = stored.replace("</head>", _first_data_block(stored) + "</head>", 1)
    with pytest.raises(UnsafeReportError, match="2 data blocks"):
        safe_report_html(twice)


def _first_data_block(page: str) -> str:
    start = page.index("<script>\n")
    return page[start : page.index("</script>", start) + len("</script>")]
