"""Synthetic extract generation and ingest at 100k and 1M persons: wall and CPU time, rows/s, peak memory.

Usage: .venv/bin/python benchmarks/bench_synth_ingest.py [--persons 100000 1000000] [--format parquet csv]
Targets (issue 2): synth of 1M persons < 2 min; ingest of 1M persons' claims < 60 s and < 4 GB peak.
CPU time (user + system of the step's process, all threads) is shown too: on a shared machine it
varies less than wall time.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
from pathlib import Path

from _measure import machine, measure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--persons", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--format", nargs="+", default=["parquet", "csv"], dest="formats")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    root = Path(args.workdir or tempfile.mkdtemp(prefix="ipm-bench-"))
    print(
        f"{'persons':>9} {'format':>8} {'step':>7} {'wall_s':>8} {'cpu_s':>8} {'rows':>12} {'rows/s':>12} {'peak_MiB':>9}"
    )
    for persons in args.persons:
        for fmt in args.formats:
            extract = root / f"extract-{persons}-{fmt}"
            db = root / f"db-{persons}-{fmt}.duckdb"
            shutil.rmtree(extract, ignore_errors=True)
            db.unlink(missing_ok=True)
            synth = _timed(
                "from ipm_outcomes import synth\n"
                f"s = synth.generate({str(extract)!r}, persons={persons}, seed=1, file_format={fmt!r})\n"
                "RESULT = 0\n"
            )
            load = _timed(
                "from ipm_outcomes import ingest\n"
                f"s = ingest.load_extract({str(extract)!r}, {str(db)!r})\n"
                "RESULT = sum(s.rows.values())\n"
            )
            rows = load["result"]
            for step, m in (("synth", synth), ("ingest", load)):
                rate = rows / m["wall_s"] if step == "ingest" else float("nan")
                shown_rows = rows if step == "ingest" else ""
                print(
                    f"{persons:>9} {fmt:>8} {step:>7} {m['wall_s']:>8.1f} {m['cpu_s']:>8.1f} {shown_rows!s:>12} "
                    f"{rate:>12,.0f} {m['peak_rss_mib']:>9.0f}"
                )
    if args.workdir is None:
        shutil.rmtree(root, ignore_errors=True)


def _timed(code: str) -> dict:
    """:func:`measure`, plus the CPU seconds of the child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    report = measure(code)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    report["cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return report


if __name__ == "__main__":
    main()
