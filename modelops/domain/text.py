"""Text as the platform sees it: one cleaning, one identity, one strict decoding."""

from __future__ import annotations

import re
import unicodedata

from modelops.config.errors import InputError

_SPACE = re.compile(r"\s+")


def clean_text(text: str) -> str:
    """What the model sees: Unicode NFKC, whitespace collapsed, trimmed."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text)).strip()


def normalize_text(text: str) -> str:
    """What identity means for de-duplication and splitting: clean_text, case-folded."""
    return clean_text(text).casefold()


def decode_text(name: str, data: bytes) -> str:
    """The content of a text file as strict UTF-8 (a BOM is dropped); an error names
    ``name`` and the line of the first bad byte, or says the file is empty."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(name, f"line {line}", f"not valid UTF-8 (byte {exc.start})") from None
    if not text.strip():
        raise InputError(name, None, "the file is empty")
    return text
