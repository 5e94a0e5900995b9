"""Coverage study: does the primary 95% interval cover the truth in about 95% of runs?

    .venv/bin/python benchmarks/coverage_study.py [--source synthetic|simulator] [--runs 40]
        [--persons 12000] [--replicates 200] [--workers 2] [--out coverage.csv]

Each run draws a new data set with its own seed and estimates the primary contrast (clone-censor-
weight risk difference of return to work at day 180, early minus delayed) with its percentile
bootstrap interval, then records whether the interval covers the truth:

* ``synthetic`` (default): the package's synthetic extract, through the whole pipeline (synth ->
  ingest -> cohort -> clone-censor-weight on the marts with the default spec's covariates); the truth
  is the generator's truth.json (its own simulation of the same population under each strategy).
* ``simulator``: the small daily simulator of the estimator tests (tests/estimators/simulate.py),
  analysis table directly, truth from a 400,000-person simulation under each strategy.

Prints the coverage of the difference and of each arm level at day 180 with a binomial 95% interval,
the mean bias and the mean interval width, and writes one row per run to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

HORIZON = 180


def _ccw(df: pd.DataFrame, covariates: list[str], replicates: int, workers: int, seed: int, truncation):
    from ipm_outcomes.estimators import CloneCensorWeight

    m = CloneCensorWeight(
        grace_period_days=42, truncation_percentiles=truncation, n_bootstrap=replicates, seed=seed, workers=workers
    ).fit(df, covariates)
    s = m.summary
    out = {}
    for key, mask in (
        ("rd", (s.measure == "risk_difference")),
        ("early", (s.measure == "cumulative_incidence") & (s.arm == "early")),
        ("delayed", (s.measure == "cumulative_incidence") & (s.arm == "delayed")),
    ):
        r = s[mask & (s.horizon_days == HORIZON)].iloc[0]
        out.update({f"{key}_estimate": r.estimate, f"{key}_low": r.ci_low, f"{key}_high": r.ci_high})
    return out


def _synthetic_run(seed: int, persons: int, replicates: int, workers: int) -> dict:
    from ipm_outcomes import analysis, cohort, ingest, synth
    from ipm_outcomes.spec import load_spec

    spec = load_spec()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        synth.generate(root / "extract", persons=persons, seed=seed, file_format="parquet")
        ingest.load_extract(root / "extract", root / "db.duckdb")
        cohort.build(spec, root / "db.duckdb")
        truth = json.loads((root / "extract" / "truth.json").read_text())["rtw"]
        inputs = analysis._read(root / "db.duckdb")
    frame = inputs.rtw[["person_id", "time_days", "event", "referral_day"]].merge(inputs.cohort, on="person_id")
    cov, used = analysis._prepare_covariates(frame, list(spec.analysis.covariates))
    df = pd.concat([frame[["time_days", "event", "referral_day"]], cov], axis=1)
    result = _ccw(df, used, replicates, workers, seed, tuple(spec.analysis.weight_truncation_percentiles))
    result.update(
        rd_truth=truth["risk_difference"][str(HORIZON)],
        early_truth=truth["cumulative_incidence"]["early"][str(HORIZON)],
        delayed_truth=truth["cumulative_incidence"]["delayed"][str(HORIZON)],
        n=len(df),
    )
    return result


def _simulator_run(seed: int, persons: int, replicates: int, workers: int, true: dict) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "estimators"))
    from simulate import simulate

    df = simulate(persons, seed)
    result = _ccw(df, ["severity", "male", "age", "payer_type"], replicates, workers, seed, None)
    result.update(
        rd_truth=true["early"][HORIZON] - true["delayed"][HORIZON],
        early_truth=true["early"][HORIZON],
        delayed_truth=true["delayed"][HORIZON],
        n=len(df),
    )
    return result


def _summarise(runs: pd.DataFrame) -> str:
    lines = []
    for key in ("rd", "early", "delayed"):
        covered = (runs[f"{key}_low"] < runs[f"{key}_truth"]) & (runs[f"{key}_truth"] < runs[f"{key}_high"])
        k, n = int(covered.sum()), len(runs)
        p = k / n
        half = 1.96 * math.sqrt(p * (1 - p) / n) if 0 < p < 1 else 0.0
        bias = float((runs[f"{key}_estimate"] - runs[f"{key}_truth"]).mean())
        sd = float(runs[f"{key}_estimate"].std(ddof=1)) if n > 1 else float("nan")
        width = float((runs[f"{key}_high"] - runs[f"{key}_low"]).mean())
        label = {"rd": "risk difference", "early": "early arm level", "delayed": "delayed arm level"}[key]
        lines.append(
            f"  {label:>17} at day {HORIZON}: coverage {k}/{n} = {p:.1%} (95% CI {max(p - half, 0):.1%} to "
            f"{min(p + half, 1):.1%}); mean bias {bias:+.4f}; SD of estimates {sd:.4f}; mean CI width {width:.4f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", choices=("synthetic", "simulator"), default="synthetic")
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--persons", type=int, default=None, help="default: 12000 (synthetic), 5000 (simulator)")
    parser.add_argument("--replicates", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--first-seed", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    persons = args.persons or (12_000 if args.source == "synthetic" else 5_000)

    true = None
    if args.source == "simulator":
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "estimators"))
        from simulate import truth

        true = truth(400_000, 99)
    rows = []
    start = time.perf_counter()
    for i in range(args.runs):
        seed = args.first_seed + i
        if args.source == "synthetic":
            row = _synthetic_run(seed, persons, args.replicates, args.workers)
        else:
            row = _simulator_run(seed, persons, args.replicates, args.workers, true)
        rows.append(dict(seed=seed, **row))
        covered = rows[-1]["rd_low"] < rows[-1]["rd_truth"] < rows[-1]["rd_high"]
        print(
            f"run {i + 1}/{args.runs} seed {seed}: RD {row['rd_estimate']:.4f} ({row['rd_low']:.4f} to "
            f"{row['rd_high']:.4f}) truth {row['rd_truth']:.4f} {'covered' if covered else 'MISSED'}",
            flush=True,
        )
    runs = pd.DataFrame(rows)
    if args.out:
        runs.to_csv(args.out, index=False)
    print(
        f"coverage study ({args.source}, {persons} persons per run, {args.replicates} bootstrap replicates, "
        f"{args.runs} runs, {time.perf_counter() - start:.0f} s):"
    )
    print(_summarise(runs))


if __name__ == "__main__":
    main()
