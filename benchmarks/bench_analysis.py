"""Benchmark: the full analysis stage on a synthetic cohort of about 100,000 persons.

    .venv/bin/python benchmarks/bench_analysis.py [--cohort 100000] [--replicates 200] [--workers 2]
        [--cache data/interim/bench_analysis]

Generates a synthetic extract large enough for the requested cohort size (about 46% of generated
persons enter the cohort), ingests it and builds the cohort once into the cache folder (skipped when
the database exists), then times ``analysis.run`` (every method, the person-level bootstrap with the
given number of replicates, results.json and the tables) in a fresh process, and prints wall time,
CPU time and peak resident memory of the whole process tree (the analysis process, the fork server
and the bootstrap workers; sampled from /proc every 0.1 s, so Linux only). The analysis includes every
secondary and negative-control outcome of the plan (issue 16). Target (issue 16, which raised issue 4's
3 minutes for the primary analysis alone): under 5 minutes with 200 replicates on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

#: Share of generated persons that enter the cohort (measured on the default synthetic extract).
COHORT_SHARE = 0.458

_CHILD = """
import json, resource, sys, time
from ipm_outcomes import analysis
from ipm_outcomes.plan import build_plan
from ipm_outcomes.spec import load_spec

if __name__ == "__main__":
    db, out, spec_file, workers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    spec = load_spec(spec_file)
    t0, c0 = time.perf_counter(), time.process_time()
    summary = analysis.run(spec, db, out, workers=workers)
    wall = time.perf_counter() - t0
    me = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({
        "wall_s": wall,
        "peak_rss_mib_main": me.ru_maxrss / 1024,
        "cohort": summary.n,
        "rtw_population": summary.n_rtw_population,
        "estimates": summary.estimates,
        "primary": summary.primary,
        "outcome_items": sum(1 for i in build_plan(spec) if i.role in ("secondary_outcome", "negative_control")),
    }))
"""


def _tree(pid: int) -> list[int]:
    """pid and all its descendants (from /proc/<pid>/task/<tid>/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
    return out


def _watch(pid: int, child) -> tuple[float, float]:
    """Peak summed RSS (MiB) and total CPU seconds of the process tree until ``child`` exits."""
    import os

    tick = os.sysconf("SC_CLK_TCK")
    page = os.sysconf("SC_PAGE_SIZE")
    peak, cpu_seen = 0.0, {}
    while child.poll() is None:
        rss = 0
        for p in _tree(pid):
            try:
                stat = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
                rss += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * page
                cpu_seen[p] = (int(stat[11]) + int(stat[12])) / tick
            except (OSError, IndexError, ValueError):
                pass
        peak = max(peak, rss / 2**20)
        time.sleep(0.1)
    return peak, sum(cpu_seen.values())


def _prepare(cache: Path, persons: int, seed: int) -> Path:
    from ipm_outcomes import cohort, ingest, synth
    from ipm_outcomes.spec import load_spec

    db = cache / "db.duckdb"
    if db.exists():
        return db
    cache.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    synth.generate(cache / "extract", persons=persons, seed=seed, file_format="parquet")
    ingest.load_extract(cache / "extract", db)
    cohort.build(load_spec(), db)
    print(f"prepared {persons} persons in {time.perf_counter() - t:.0f} s -> {db}")
    return db


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", type=int, default=100_000, help="target cohort size")
    parser.add_argument("--replicates", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=20261128)
    parser.add_argument("--cache", type=Path, default=Path("data/interim/bench_analysis"))
    args = parser.parse_args()

    persons = int(round(args.cohort / COHORT_SHARE, -3))
    db = _prepare(args.cache, persons, args.seed)
    spec_file = args.cache / "spec.toml"
    spec_file.write_text(f'extends = "default"\n[analysis]\nbootstrap_replicates = {args.replicates}\n')
    out = args.cache / "results"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(db), str(out), str(spec_file), str(args.workers)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    peak_tree, cpu = _watch(child.pid, child)
    stdout, stderr = child.communicate()
    if child.returncode != 0:
        raise SystemExit(stderr)
    # the analysis's progress bars share stdout and end without a newline: the figures are the last
    # '{"wall_s"' to the end of its line, wherever that line starts
    at = stdout.rfind('{"wall_s"')
    if at < 0:
        raise SystemExit(f"the analysis printed no figures:\n{stdout[-2000:]}")
    other = [line for line in stdout[:at].splitlines() if line.strip()]
    if other:
        print("the analysis printed:", *other[-5:], sep="\n  ")
    r = json.loads(stdout[at:].splitlines()[0])
    from _measure import machine

    print(f"machine: {machine()}")
    print(
        f"analysis: cohort {r['cohort']:,} persons (return-to-work population {r['rtw_population']:,}), "
        f"{args.replicates} bootstrap replicates on {args.workers} workers"
    )
    print(f"  wall {r['wall_s']:.1f} s (analysis.run), CPU {cpu:.1f} s (whole process tree)")
    print(f"  peak memory: main process {r['peak_rss_mib_main']:.0f} MiB, whole process tree {peak_tree:.0f} MiB")
    p = r["primary"]
    if p:
        print(f"  primary RD at day {p['horizon_days']}: {p['estimate']:.4f} ({p['ci_low']:.4f} to {p['ci_high']:.4f})")
    print(f"  cohort outcome analyses (secondary + negative controls, one shared fit): {r['outcome_items']} plan items")
    print(f"  target: < 300 s -> {'met' if r['wall_s'] < 300 else 'NOT met'}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
