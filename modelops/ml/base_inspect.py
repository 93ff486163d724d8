"""What a base model directory is: the measurements a catalog revision records, and the
refusal to load an adapter onto a base other than the one it was trained on.

:func:`inspect_base` reads a directory without loading the weights into a model: the
architecture and shapes from ``config.json``, the parameter count from the safetensors
headers, the content hash of the whole directory and of the tokenizer files alone, and the
tokenizer's vocabulary (``tokenizer.json``/``vocab.txt``).

:func:`check_adapter_base` is called where an adapter is loaded
(``modelops.ml.model.load_classifier`` and the serving pool): the base's sha256,
architecture, hidden size, layer count and vocabulary must be those the adapter's lineage
records (``manifest.json``'s ``base_model``), and the head's width must be the base's hidden
size; otherwise :class:`~modelops.config.errors.IntegrityError` names both bases.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from modelops.config.errors import InputError, IntegrityError
from modelops.config.fingerprint import file_manifest, sha256_dir, sha256_manifest

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "sentencepiece.bpe.model",
    "spiece.model",
    "added_tokens.json",
)
SHAPE_FIELDS = ("architecture", "hidden_size", "num_layers", "vocab_size")
_SHA_CACHE: dict[tuple, str] = {}


def read_shape(path: Path) -> dict[str, Any]:
    """``architecture`` (the transformers ``model_type``), ``hidden_size``, ``num_layers``
    and ``vocab_size`` from ``config.json``."""
    config_path = Path(path) / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(config_path, None, f"unreadable model config ({exc})") from None
    return shape_of(config)


def shape_of(config: Any) -> dict[str, Any]:
    """The shape fields of a config (a ``config.json`` dict or a transformers config)."""
    get = config.get if isinstance(config, dict) else lambda k: getattr(config, k, None)
    return {
        "architecture": get("model_type"),
        "hidden_size": get("hidden_size"),
        "num_layers": get("num_hidden_layers"),
        "vocab_size": get("vocab_size"),
    }


def tokenizer_sha256(path: Path) -> str:
    """sha256 over the tokenizer files present (names and contents)."""
    files = file_manifest(path)
    return sha256_manifest({k: v for k, v in files.items() if k in TOKENIZER_FILES})


def parameter_count(path: Path) -> int:
    """Parameters in the directory's safetensors files (headers only)."""
    from safetensors import safe_open

    total = 0
    for file in sorted(Path(path).glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 - safe_open is not a mapping
                count = 1
                for dim in handle.get_slice(key).get_shape():
                    count *= dim
                total += count
    return total


def inspect_base(path: Path) -> dict[str, Any]:
    """Every measured field of a catalog revision for the model directory ``path``."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise InputError(path, None, "holds no config.json (not a model directory)")
    if not any(path.glob("*.safetensors")):
        raise InputError(path, None, "holds no safetensors weights (pickled weights are refused)")
    shape = read_shape(path)
    return {
        "sha256": sha256_dir(path),
        **shape,
        "parameters": parameter_count(path),
        "tokenizer_sha256": tokenizer_sha256(path),
    }


def cached_sha256(path: Path) -> str:
    """``sha256_dir(path)``, remembered while no file's size or mtime changes."""
    path = Path(path)
    stamp = tuple(
        sorted(
            (str(p.relative_to(path)), st.st_size, st.st_mtime_ns)
            for p in path.rglob("*")
            if p.is_file() and (st := os.stat(p))
        )
    )
    key = (str(path.resolve()), stamp)
    if key not in _SHA_CACHE:
        _SHA_CACHE[key] = sha256_dir(path)
    return _SHA_CACHE[key]


def base_lineage(ref: str, sha256: str, path: Path, pooling: str) -> dict[str, Any]:
    """What an adapter's lineage records about its base (``manifest.json``'s
    ``base_model``): reference, content hash, architecture, shapes, tokenizer hash."""
    return {
        "ref": ref,
        "sha256": sha256,
        **read_shape(path),
        "tokenizer_sha256": tokenizer_sha256(path),
        "pooling": pooling,
    }


def describe(record: dict[str, Any]) -> str:
    parts = [f"sha256 {str(record.get('sha256') or '?')[:12]}"]
    parts += [f"{k.replace('_', ' ')} {record[k]}" for k in SHAPE_FIELDS if record.get(k)]
    return ", ".join(parts)


def check_adapter_base(
    adapter_dir: Path,
    *,
    base_path: Path | None = None,
    base_sha256: str | None = None,
    base_config: Any = None,
) -> None:
    """Refuse to load the adapter at ``adapter_dir`` onto a base other than its own.

    The base is ``base_path`` (its ``config.json``; its hash is computed when
    ``base_sha256`` is not given) or an already loaded ``base_config``."""
    adapter_dir = Path(adapter_dir)
    actual = shape_of(base_config) if base_config is not None else read_shape(base_path)
    expected: dict[str, Any] = {}
    manifest_path = adapter_dir / "manifest.json"
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        expected = dict(manifest.get("base_model") or {})
    expected.setdefault("hidden_size", _head_width(adapter_dir))
    if base_sha256 is None and base_path is not None and expected.get("sha256"):
        base_sha256 = cached_sha256(base_path)  # hashed only when there is one to compare
    actual["sha256"] = base_sha256
    differ = [
        k
        for k in ("sha256", *SHAPE_FIELDS)
        if expected.get(k) is not None and actual.get(k) is not None and expected[k] != actual[k]
    ]
    if differ:
        where = base_path if base_path is not None else "the loaded base"
        raise IntegrityError(
            f"adapter {adapter_dir} was trained on base {expected.get('ref', '?')} "
            f"({describe(expected)}); refusing to load it onto {where} ({describe(actual)}): "
            f"{', '.join(d.replace('_', ' ') for d in differ)} differ"
        )


def _head_width(adapter_dir: Path) -> int | None:
    from safetensors import safe_open

    head = adapter_dir / "head.safetensors"
    if not head.is_file():
        return None
    with safe_open(str(head), framework="pt") as handle:
        return int(handle.get_slice("weight").get_shape()[1])
