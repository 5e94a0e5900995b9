"""Synthetic extract generation and ingest at 100k and 1M persons: wall and CPU time, rows/s, peak memory.

Usage: .venv/bin/python benchmarks/bench_synth_ingest.py [--persons 100000 1000000] [--format parquet csv]
       [--workdir DIR [--reuse]]
Targets (issue 2): synth of 1M persons < 2 min; ingest of 1M persons' claims < 60 s and < 4 GB peak.
Issue 14: the CSV ingest within reach of the Parquet ingest of the same data; the formats are
loaded back to back in one run and the CSV/Parquet ratio of wall and CPU time is printed.
CPU time (user + system of the step's process, all threads) is shown too: on a shared machine it
varies less than wall time; the load average before and after each step says how shared it was.
``--reuse`` keeps an extract already in ``--workdir`` (same persons, seed 1) instead of generating it.
``--floor`` also times, after each ingest, DuckDB alone storing the same files in a fresh database (every
contract table ``create table as select *`` from its files, the CSV columns typed by DuckDB's own parser,
one transaction): no rule checked, no value normalised, no row number kept. No ingest can be faster
than that on the machine; what the ingest costs above it is what its checks and guarantees cost.
"""

from __future__ import annotations

import argparse
import os
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
    parser.add_argument("--reuse", action="store_true", help="keep extracts already in --workdir")
    parser.add_argument("--floor", action="store_true", help="also time DuckDB storing the files with no checks")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    root = Path(args.workdir or tempfile.mkdtemp(prefix="ipm-bench-"))
    print(
        f"{'persons':>9} {'format':>8} {'step':>7} {'wall_s':>8} {'cpu_s':>8} {'rows':>12} {'rows/s':>12}"
        f" {'peak_MiB':>9} {'load_avg':>10}"
    )
    for persons in args.persons:
        ingests = {}
        for fmt in args.formats:
            extract = root / f"extract-{persons}-{fmt}"
            db = root / f"db-{persons}-{fmt}.duckdb"
            db.unlink(missing_ok=True)
            shutil.rmtree(f"{db}.tmp", ignore_errors=True)
            if args.reuse and extract.is_dir():
                synth = None
            else:
                shutil.rmtree(extract, ignore_errors=True)
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
            ingests[fmt] = load
            floor = None
            if args.floor:
                floor = _timed(_FLOOR.format(extract=str(extract), db=str(root / f"floor-{persons}-{fmt}.duckdb")))
            for step, m in (("synth", synth), ("ingest", load), ("floor", floor)):
                if m is None:
                    continue
                rate = rows / m["wall_s"] if step == "ingest" else float("nan")
                shown_rows = rows if step == "ingest" else ""
                print(
                    f"{persons:>9} {fmt:>8} {step:>7} {m['wall_s']:>8.1f} {m['cpu_s']:>8.1f} {shown_rows!s:>12} "
                    f"{rate:>12,.0f} {m['peak_rss_mib']:>9.0f} {m['load']:>10}",
                    flush=True,
                )
            if floor is not None:
                print(f"{persons:>9} {fmt} ingest/floor: wall {load['wall_s'] / floor['wall_s']:.2f}x", flush=True)
        if "csv" in ingests and "parquet" in ingests:
            csv, parquet = ingests["csv"], ingests["parquet"]
            print(
                f"{persons:>9} csv/parquet ingest: wall {csv['wall_s'] / parquet['wall_s']:.2f}x,"
                f" CPU {csv['cpu_s'] / parquet['cpu_s']:.2f}x",
                flush=True,
            )
    if args.workdir is None:
        shutil.rmtree(root, ignore_errors=True)


# DuckDB alone: each contract table's files stored as they are (CSV columns typed by the contract,
# parsed by DuckDB's reader), in one transaction; the database is removed afterwards.
_FLOOR = """
import duckdb, glob, os
from pathlib import Path
from ipm_outcomes.contract import TABLES
from ipm_outcomes.ingest import _csv_header
db = {db!r}
con = duckdb.connect(db, config={{"threads": os.cpu_count(), "memory_limit": "3GB"}})
con.execute("set preserve_insertion_order = false")
con.execute("begin transaction")
RESULT = 0
for table in TABLES:
    files = sorted(glob.glob(os.path.join({extract!r}, table.name + ".*")))
    files += sorted(glob.glob(os.path.join({extract!r}, table.name, "*")))
    if not files:
        continue
    if files[0].endswith(".csv"):
        types = {{c.name: c.type for c in table.columns}}
        header = _csv_header(Path(files[0]))  # as the ingest reads it (BOM, quoted names)
        columns = "{{" + ", ".join(f"'{{h}}': '{{types.get(h, 'VARCHAR')}}'" for h in header) + "}}"
        source = f"read_csv({{files!r}}, header = true, auto_detect = false, columns = {{columns}})"
    else:
        source = f"read_parquet({{files!r}})"
    con.execute(f"create table {{table.name}} as select * from {{source}}")
    RESULT += con.execute(f"select count(*) from {{table.name}}").fetchall()[0][0]
con.execute("commit")
con.close()
os.remove(db)
"""


def _timed(code: str) -> dict:
    """:func:`measure`, plus the CPU seconds of the child process and the 1-minute load average before/after."""
    load_before = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    report = measure(code)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    report["cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    report["load"] = f"{load_before:.1f}/{os.getloadavg()[0]:.1f}"
    return report


if __name__ == "__main__":
    main()
