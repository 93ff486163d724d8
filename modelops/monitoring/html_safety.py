"""Evidently's HTML report made safe to open: production text stays data, never markup.

Evidently 0.7 writes a report as one page with four inline scripts: the data block
(``var <id> = <JSON>; var additional_graphs_<id> = <JSON>;``), ``var global = globalThis``,
its JavaScript bundle and the call that draws the dashboard. Production texts (the
characteristic examples of the text drift widget) land in the data block's JSON, which
Evidently does not escape for HTML: a text holding ``</script><script>...`` closes the block
and runs its own script in the reader's browser.

:func:`safe_report_html` rewrites the two JSON values of the data block with ``<``, ``>``,
``&``, U+2028 and U+2029 as ``\\u003c``, ``\\u003e``, ``\\u0026``, ``\\u2028``, ``\\u2029``.
These characters can only appear inside JSON strings, where the escapes decode to the very
same characters, so the data the page draws is unchanged, while no ``</script``, ``<!--`` or
``<script`` can appear in the block any more. It then checks that the page holds exactly the
four scripts of Evidently's template, and refuses a page that does not (another template,
or a page that is not a report). It is idempotent: it runs when a report is written and
again when one is served (reports stored before it existed are served escaped too).

:func:`script_hashes` gives the CSP ``'sha256-...'`` sources of the page's scripts, so a
policy can allow those scripts and nothing else (no inline event handlers, no
``javascript:`` URLs).
"""

from __future__ import annotations

import base64
import hashlib
import re

from modelops.config.errors import ModelopsError

# The data block of Evidently 0.7's file template (evidently/legacy/utils/dashboard.py):
# json.dumps writes no raw newline, so each JSON value is the rest of its line.
_DATA_BLOCK = re.compile(
    r"(<script>\n[ \t]*var ([A-Za-z_][A-Za-z0-9_]*) = )([^\n]*)"
    r"(;\n[ \t]*var additional_graphs_\2 = )([^\n]*)(;\n</script>)"
)
# A script element as the HTML tokenizer reads it: from ``<script`` to the first ``</script``
# (both followed by white space, ``/`` or ``>``), as long as no ``<!--`` opens an escaped
# state inside it (checked).
_SCRIPT = re.compile(r"<script(?=[\s/>])[^>]*>(.*?)</script(?=[\s/>])", re.IGNORECASE | re.DOTALL)
_MARKUP = re.compile(r"<(?:/?script(?=[\s/>])|!--)", re.IGNORECASE)
_EXPECTED_SCRIPTS = 4
_JSON_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_JSON_UNSAFE = re.compile("[<>&\u2028\u2029]")


class UnsafeReportError(ModelopsError):
    """A page that is not an Evidently report this module can make safe."""


def escape_script_json(text: str) -> str:
    """``text`` (a JSON document) with ``< > &`` U+2028 U+2029 as JSON ``\\u`` escapes: the
    same JSON value, and nothing that can end or change an HTML ``<script>`` block."""
    return _JSON_UNSAFE.sub(lambda m: _JSON_ESCAPES[m.group()], text)


def safe_report_html(page: str, source: object = "report") -> str:
    """Evidently's report page with its data block escaped (see the module docstring).

    Raises :class:`UnsafeReportError`, naming ``source``, when the page has no Evidently data
    block, or when it then holds any other number of ``<script>`` tags than Evidently's four.
    """
    blocks = _DATA_BLOCK.findall(page)
    if len(blocks) != 1:
        raise UnsafeReportError(
            f"{source}: not an Evidently 0.7 report page ({len(blocks)} data blocks, expected "
            "1); refusing it, since its production texts cannot be shown to be escaped"
        )
    safe = _DATA_BLOCK.sub(
        lambda m: (
            m.group(1)
            + escape_script_json(m.group(3))
            + m.group(4)
            + escape_script_json(m.group(5))
            + m.group(6)
        ),
        page,
    )
    _check_scripts(safe, source)
    return safe


def _check_scripts(page: str, source: object) -> None:
    """Evidently's four scripts and nothing else: no other script tag or comment outside
    them, no ``<!--`` inside them (which would move where a browser ends the script)."""
    scripts = list(_SCRIPT.finditer(page))
    outside = _SCRIPT.sub("", page)
    if (
        len(scripts) != _EXPECTED_SCRIPTS
        or _MARKUP.search(outside)
        or any("<!--" in m.group(1) for m in scripts)
    ):
        raise UnsafeReportError(
            f"{source}: after escaping, the page holds {len(scripts)} scripts and other "
            f"script markup; Evidently's template has exactly {_EXPECTED_SCRIPTS}: refusing it"
        )


def script_hashes(page: str) -> list[str]:
    """The CSP hash sources (``'sha256-<base64>'``) of the inline scripts of ``page``, in
    page order, as a browser hashes them (line ends normalized to ``\\n``)."""
    sources = []
    for match in _SCRIPT.finditer(page):
        text = match.group(1).replace("\r\n", "\n").replace("\r", "\n")
        digest = base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode()
        sources.append(f"'sha256-{digest}'")
    return sources
