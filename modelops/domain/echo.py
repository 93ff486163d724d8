"""Echoing hostile text (a batch file's first line, a file name, an error) into notes,
logs and Dagster metadata: one line, no control characters or terminal escapes, cut."""

from __future__ import annotations

import re
import unicodedata

ECHO_CHARS = 200
"""How much of a hostile text a note or log line shows."""

# ANSI/VT escape sequences: CSI (ESC [ ... final), OSC (ESC ] ... BEL or ESC \), and
# two-character escapes; the C1 forms (U+009B CSI, U+009D OSC) too.
_ESCAPES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    r"|(?:\x1b\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[@-Z\\-_]"
)


def echo(text: object, limit: int = ECHO_CHARS) -> str:
    """``text`` as it may be shown: escape sequences removed, every other control or
    format character (newlines, tabs, NUL, bidi overrides, U+2028/2029) replaced by a
    space, cut to ``limit`` characters (ending in ``...`` when cut)."""
    cleaned = _ESCAPES.sub("", str(text))
    cleaned = "".join(
        " " if unicodedata.category(c) in {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"} else c
        for c in cleaned
    )
    if len(cleaned) > limit:
        return cleaned[: max(limit - 3, 0)] + "..."
    return cleaned
