"""Benchmark: the cohort build on DuckDB and on Spark ``local[2]``, from the same raw tables.

    .venv/bin/python benchmarks/bench_spark.py [--persons 100000] [--cache data/interim/bench_spark]

Needs the ``[spark]`` extra and Java 17. Generates the synthetic extract once into the cache folder,
ingests it once, exports the loaded raw tables as Parquet once (the form a Spark site holds them in),
then times, each in a fresh process: ``cohort.build`` on DuckDB, and ``spark_engine.build_on_spark``
(session start timed apart from the build). Peak memory is the Python process's and, for Spark, the
JVM's; CPU seconds are the process's and, for Spark, the JVM's during the build (on a shared machine
they vary less than the wall time). Prints wall and CPU time; record the figures in
``benchmarks/README.md`` with the date and machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _measure import machine, measure  # noqa: E402

SPARK_STEP = """
import os, time


def jvm_usage():
    # the JVM is a grandchild (spark-submit starts it): find the descendants of this process and read
    # the kernel's high-water mark of their resident memory and their CPU seconds (user + system), which
    # on a shared machine say more than the wall time
    parents = {{}}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            status = dict(line.split(":", 1) for line in open(f"/proc/{{pid}}/status") if ":" in line)
            fields = open(f"/proc/{{pid}}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        parents[int(pid)] = (int(status["PPid"]), status.get("VmHWM", "0 kB"), status["Name"].strip(), cpu)
    mine, peak, cpu = {{os.getpid()}}, 0.0, 0.0
    for _ in range(4):
        mine |= {{pid for pid, (ppid, _, _, _) in parents.items() if ppid in mine}}
    for pid in mine - {{os.getpid()}}:
        _, hwm, name, seconds = parents[pid]
        if name == "java":
            peak, cpu = max(peak, int(hwm.split()[0]) / 1024), cpu + seconds
    return peak, cpu


import shutil
from pathlib import Path
from ipm_outcomes.spark_engine import SparkSource, build_on_spark, spark_session
from ipm_outcomes.spec import load_spec
# a local session's catalog lives in memory: the tables of an earlier run are unknown to it, but their
# folders would make every CREATE TABLE fail (LOCATION_ALREADY_EXISTS)
shutil.rmtree(Path({cache!r}) / "warehouse", ignore_errors=True)
started = time.perf_counter()
spark = spark_session("local[2]", warehouse=Path({cache!r}) / "warehouse")
session = time.perf_counter() - started
_, session_cpu = jvm_usage()
summary = build_on_spark(load_spec(), spark, SparkSource(path=Path({cache!r}) / "raw"), Path({cache!r}) / "spark.duckdb",
                         export_dir=Path({cache!r}) / "spark_marts")
build = time.perf_counter() - started - session
jvm_peak_mib, jvm_cpu = jvm_usage()
spark.stop()
RESULT = {{"session_s": session, "build_s": build, "cohort": summary.cohort, "jvm_peak_rss_mib": jvm_peak_mib,
          "jvm_build_cpu_s": jvm_cpu - session_cpu, "load_average": os.getloadavg()}}
"""

DUCKDB_STEP = """
import resource, shutil, time
from pathlib import Path
from ipm_outcomes import cohort
from ipm_outcomes.spec import load_spec
db = Path({cache!r}) / "duck_build.duckdb"
shutil.copy(Path({cache!r}) / "loaded.duckdb", db)
started = time.perf_counter()
summary = cohort.build(load_spec(), db)
usage = resource.getrusage(resource.RUSAGE_SELF)
RESULT = {{"build_s": time.perf_counter() - started, "cohort": summary.cohort, "cpu_s": usage.ru_utime + usage.ru_stime,
          "load_average": __import__("os").getloadavg()}}
"""


def prepare(cache: Path, persons: int) -> None:
    import duckdb

    from ipm_outcomes import ingest, synth

    extract = cache / "extract"
    if not (extract / "eligibility.parquet").exists():
        synth.generate(extract, persons=persons, seed=20261206, file_format="parquet")
    if not (cache / "loaded.duckdb").exists():
        ingest.load_extract(extract, cache / "loaded.duckdb")
    raw = cache / "raw"
    if not raw.exists():
        raw.mkdir()
        con = duckdb.connect(str(cache / "loaded.duckdb"), read_only=True)
        tables = con.execute(
            "select table_name from information_schema.tables where table_schema = 'raw' and table_type = 'BASE TABLE'"
        ).fetchall()
        for (table,) in tables:
            con.execute(f"copy raw.{table} to '{raw / table}.parquet' (format parquet)")
        con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--prepare-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    cache = (args.cache or Path(f"data/interim/bench_spark_{args.persons}")).resolve()
    cache.mkdir(parents=True, exist_ok=True)
    if args.prepare_only:
        prepare(cache, args.persons)
        return
    # prepared in a process of its own: a child started from a process that grew to gigabytes reports
    # the parent's resident size as its own peak (ru_maxrss survives fork and exec)
    subprocess.run(
        [sys.executable, __file__, "--persons", str(args.persons), "--cache", str(cache), "--prepare-only"], check=True
    )
    duck = measure(DUCKDB_STEP.format(cache=str(cache)))
    # each step's figures as soon as it is done: a Spark build on a loaded machine may not be waited for
    print(json.dumps({"persons": args.persons, "duckdb": duck}), flush=True)
    spark = measure(SPARK_STEP.format(cache=str(cache)))
    assert duck["result"]["cohort"] == spark["result"]["cohort"], "the engines built different cohorts"
    print(json.dumps({"machine": machine(), "persons": args.persons, "duckdb": duck, "spark": spark}, indent=1))
    d, s = duck["result"], spark["result"]
    print(
        f"{args.persons:,} persons: DuckDB build {d['build_s']:.1f} s (peak {duck['peak_rss_mib']:.0f} MiB); "
        f"Spark local[2] session {s['session_s']:.1f} s + build {s['build_s']:.1f} s "
        f"(driver peak {spark['peak_rss_mib']:.0f} MiB, JVM peak {s['jvm_peak_rss_mib']:.0f} MiB, JVM build CPU "
        f"{s['jvm_build_cpu_s']:.0f} s); DuckDB build CPU {d['cpu_s']:.1f} s; "
        f"Spark/DuckDB build ratio {s['build_s'] / d['build_s']:.1f}x"
    )


if __name__ == "__main__":
    main()
