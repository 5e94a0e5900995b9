"""Content fingerprints: sha256 of files, folders and JSON-able objects.

Used for provenance (which bytes were loaded) and as cache keys for the pipeline stages
(a stage re-runs only when the content of what it reads changed).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

_CHUNK = 1 << 20


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_files(paths: Iterable[str | Path], root: str | Path | None = None) -> str:
    """One sha256 over several files: each file's path (relative to ``root``) and content hash, sorted."""
    digest = hashlib.sha256()
    entries = []
    for path in paths:
        path = Path(path)
        name = path.relative_to(root).as_posix() if root is not None else path.name
        entries.append((name, sha256_file(path)))
    for name, file_hash in sorted(entries):
        digest.update(f"{name}\0{file_hash}\n".encode())
    return digest.hexdigest()


def sha256_tree(folder: str | Path, pattern: str = "**/*") -> str:
    """sha256 over every file below ``folder`` matching ``pattern`` (names relative to the folder)."""
    folder = Path(folder)
    return sha256_files((p for p in folder.glob(pattern) if p.is_file()), root=folder)


def sha256_json(obj: object) -> str:
    """sha256 of an object's canonical JSON (sorted keys, no whitespace); dates and paths as strings."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def combine(*parts: str) -> str:
    """One key from several keys, order-sensitive."""
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()
