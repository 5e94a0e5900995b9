"""Run one benchmark step in a child process and report its wall time and peak memory.

Each step runs in its own process so that peak RSS belongs to that step alone.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time


def measure(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; return wall seconds, peak RSS (MiB) and what it printed as JSON."""
    wrapper = (
        "import json, resource, sys\n"
        f"{code}\n"
        "print(json.dumps({'result': RESULT, "
        "'peak_rss_mib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))\n"
    )
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    report["wall_s"] = wall
    return report


def machine() -> str:
    import os
    import platform

    pages = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return f"{os.cpu_count()} cores, {pages / 2**30:.0f} GiB, {platform.machine()}, Python {platform.python_version()}"


__all__ = ["measure", "machine", "resource"]
