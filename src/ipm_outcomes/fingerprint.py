"""Content fingerprints: sha256 of files, folders and JSON-able objects.

Used for provenance (which bytes were loaded) and as cache keys for the pipeline stages
(a stage re-runs only when the content of what it reads changed).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from pathlib import Path

_CHUNK = 1 << 20

#: Hashes already computed in this process, keyed by the file's identity and change stamps.
_KNOWN: dict[tuple, str] = {}
_KNOWN_MAX = 4096
#: How long a file must have been left alone before its hash is remembered.
_SETTLED_NS = 2_000_000_000


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks.

    A study run hashes each extract file twice: for the stage cache key and for the load's
    provenance (about a gigabyte at a million persons). The second time is answered from memory
    when the file's device, inode, size, modification and status-change times are all unchanged,
    as git's index does; the status-change time moves on every write and cannot be set back.
    Like git, a file changed within the last seconds before it was hashed is not remembered: file
    times tick in steps of milliseconds, so a second write in the same step would look unchanged.
    """
    stat = Path(path).stat()
    key = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    known = _KNOWN.get(key)
    if known is not None:
        return known
    started_ns = time.time_ns()
    digest = _read_sha256(path)
    if max(stat.st_mtime_ns, stat.st_ctime_ns) < started_ns - _SETTLED_NS:
        if len(_KNOWN) >= _KNOWN_MAX:
            _KNOWN.clear()
        _KNOWN[key] = digest
    return digest


def _read_sha256(path: str | Path) -> str:
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
