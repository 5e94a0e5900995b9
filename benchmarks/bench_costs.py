"""Benchmark: the cost analyses (issue 16) on a synthetic study.

    .venv/bin/python benchmarks/bench_costs.py DIR PERSONS [build]

Generates PERSONS synthetic persons (seed 16), ingests them and builds the cohort into DIR once (skipped
when DIR/db.duckdb exists; ``build``: only that), then times what the cost analyses add to
``analysis.run``: reading marts.cost_outcome and marts.cost_daily, and the four cost items of the plan
(``cost_total_365``, ``cost_lbp_365`` by clone-censor-weight, their naive comparisons) with the spec's
bootstrap replicates on 2 workers, and prints each item's estimates (true counts: a working file for the
analyst, not a release) and wall time."""
import json
import sys
import time
from pathlib import Path
from threadpoolctl import threadpool_limits
from ipm_outcomes import analysis, cohort, db, explore, ingest, synth
from ipm_outcomes.plan import build_plan
from ipm_outcomes.spec import load_spec


def main():
    root, persons = Path(sys.argv[1]), int(sys.argv[2])
    spec = load_spec()
    if not (root / "db.duckdb").exists():
        synth.generate(root / "extract", persons=persons, seed=16, file_format="parquet")
        ingest.load_extract(root / "extract", root / "db.duckdb")
        cohort.build(spec, root / "db.duckdb")
    if sys.argv[3:] == ["build"]:
        return
    con = db.connect(root / "db.duckdb", read_only=True)
    t = time.perf_counter()
    for m in analysis.COST_MARTS:
        explore.mart(con, m)
    read = time.perf_counter() - t
    con.close()
    inputs = analysis._read(spec, root / "db.duckdb")
    plan = build_plan(spec)
    a = spec.analysis
    ctx = analysis._Context(spec, inputs, plan, list(a.covariates), 1 - a.ci_level, tuple(a.weight_truncation_percentiles),
                            a.bootstrap_replicates, spec.study.seed, 2)
    print(f"cohort {len(inputs.cohort)} persons, cost_daily {len(inputs.outcomes['cost_daily'])} rows; read cost marts {read:.1f} s")
    total = read
    with threadpool_limits(limits=1):
        for item in plan:
            if item.role != "cost":
                continue
            t0 = time.perf_counter()
            out = analysis._run_cost(item, ctx)
            dt = time.perf_counter() - t0
            total += dt
            r = out.tables["cost_estimates"]
            truth = ""
            if (root / "extract" / "truth.json").exists():
                t = json.loads((root / "extract" / "truth.json").read_text())["costs"][item.outcome]
                truth = (f" (truth: early {t['mean']['early']:.1f}, delayed {t['mean']['delayed']:.1f}, "
                         f"difference {t['difference']:.1f})")
            print(f"{item.id}: {dt:.1f} s wall{truth}")
            for row in r.itertuples():
                print(f"   {row.measure:22s} {str(row.arm):8s} {row.estimate:10.1f} [{row.ci_low:10.1f}, {row.ci_high:10.1f}] n={row.n}")
    print(f"total added {total:.1f} s wall on 2 workers, {a.bootstrap_replicates} replicates")


if __name__ == "__main__":
    main()
