"""sha256_file remembers a settled file's hash and never serves a stale one."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from ipm_outcomes import fingerprint


@pytest.fixture()
def reads(monkeypatch):
    monkeypatch.setattr(fingerprint, "_KNOWN", {})
    counted = []
    real = fingerprint._read_sha256

    def counting(path):
        counted.append(Path(path))
        return real(path)

    monkeypatch.setattr(fingerprint, "_read_sha256", counting)
    return counted


def _age(path: Path, seconds: float) -> None:
    """Backdate the file's modification time; its status-change time is set by the kernel, so
    the settle margin is shortened instead (a file cannot be made to look old otherwise)."""
    past = time.time() - seconds
    os.utime(path, (past, past))


def test_settled_file_is_read_once(tmp_path, reads, monkeypatch):
    monkeypatch.setattr(fingerprint, "_SETTLED_NS", 0)
    path = tmp_path / "claims.csv"
    path.write_bytes(b"a,b\n1,2\n")
    time.sleep(0.05)  # past one tick of the file clock (up to 10 ms)
    first = fingerprint.sha256_file(path)
    second = fingerprint.sha256_file(path)
    assert first == second == hashlib.sha256(b"a,b\n1,2\n").hexdigest()
    assert reads == [path]


def test_rewritten_file_of_the_same_size_is_read_again(tmp_path, reads, monkeypatch):
    monkeypatch.setattr(fingerprint, "_SETTLED_NS", 0)
    path = tmp_path / "claims.csv"
    path.write_bytes(b"a,b\n1,2\n")
    time.sleep(0.05)  # past one tick of the file clock (up to 10 ms)
    fingerprint.sha256_file(path)
    time.sleep(0.05)  # past one tick of the file clock (up to 10 ms)
    path.write_bytes(b"a,b\n3,4\n")
    _age(path, 3600)  # even with its modification time set back, the change is seen
    assert fingerprint.sha256_file(path) == hashlib.sha256(b"a,b\n3,4\n").hexdigest()
    assert reads == [path, path]


def test_a_file_changed_just_before_hashing_is_not_remembered(tmp_path, reads):
    path = tmp_path / "claims.csv"
    path.write_bytes(b"a,b\n1,2\n")
    fingerprint.sha256_file(path)
    fingerprint.sha256_file(path)
    assert reads == [path, path]  # within the two-second settle margin: hashed each time
