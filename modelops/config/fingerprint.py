"""Content hashes: sha256 of bytes, files, directories and canonical JSON."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def canonical_json(value: Any) -> bytes:
    """JSON with sorted keys and no whitespace: equal values give equal bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_json(value: Any) -> str:
    return sha256_bytes(canonical_json(value))


def file_manifest(directory: str | Path) -> dict[str, str]:
    """``{relative posix path: sha256}`` for every regular file below ``directory``."""
    root = Path(directory)
    return {
        p.relative_to(root).as_posix(): sha256_file(p)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def sha256_manifest(manifest: dict[str, str]) -> str:
    """One digest for a directory: the hash of its sorted ``path:sha256`` lines."""
    return sha256_bytes("".join(f"{k}:{v}\n" for k, v in sorted(manifest.items())).encode())


def sha256_dir(directory: str | Path) -> str:
    return sha256_manifest(file_manifest(directory))
