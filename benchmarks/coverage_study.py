"""Coverage study: does the primary 95% interval cover the truth in about 95% of runs?

    .venv/bin/python benchmarks/coverage_study.py [--source synthetic|world|simulator] [--runs 40]
        [--persons 12000] [--replicates 200] [--workers 2] [--scenario benefit|null]
        [--extended] [--first-seed 1000] [--out coverage.csv]

Each run draws a new data set with its own seed and estimates the primary contrast (clone-censor-
weight risk difference of return to work at day 180, early minus delayed) with its percentile
bootstrap interval, then records whether the interval covers the truth:

* ``synthetic`` (default): the package's synthetic extract, through the whole pipeline (synth ->
  ingest -> cohort -> clone-censor-weight on the marts with the default spec's covariates); the truth
  is the generator's truth.json (its own simulation of the same population under each strategy).
  ``--persons`` counts the extract's persons (about one in seven is in the return-to-work analysis).
* ``world``: the synthetic generator's planted world without files (a fast check of the estimator
  on the generator's own persons): the analysis table is the planted follow-up, event and first
  IPM contact of the return-to-work population (what the pipeline derives from the files, as the
  synth tests check) with the planted baseline covariates that drive referral; truth as ``synthetic``.
* ``simulator``: the small daily simulator of the estimator tests (tests/estimators/simulate.py),
  analysis table directly, truth exact (``simulate.exact_truth``: each strategy's cumulative
  incidence summed over its referral days and integrated over the covariates by quadrature; a
  simulated truth of 1,000,000 persons was off by 0.0004 in the risk difference, a third of the
  mean error/SE bar's margin at 200 data sets).

``--scenario null`` sets the true effect of early referral to none (simulator: hazard ratio 1;
synthetic: ``effect_rtw_hr=1``); ``benefit`` keeps the default benefit. ``--extended`` switches on
the referral mechanisms of issue 19 (simulator: ``simulate.EXTENDED``; synthetic:
``synth.EXTENDED``). ``--estimator landmark_ate`` (or ``landmark_att``) scores the landmark analysis at
day 42 instead, against truth.json's ``landmark`` truth (sources synthetic and world).

Prints, for the difference and each arm level at day 180: coverage with a binomial 95% interval,
mean bias, mean error/SE and the SD of error/SE (SE = the bootstrap standard error), the SD of the
estimates and the mean interval width; for the clone-censor-weight runs, how many had a strategy whose
weights fail the analysis's effective-sample-share diagnostic; writes one row per run to ``--out``
(with each strategy's effective sample share and largest weight).
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
KEYS = {"rd": "rd/early/delayed", "early": "cif/early", "delayed": "cif/delayed"}


def _scored(summary: pd.DataFrame, bootstrap, prefix: str, horizons) -> dict:
    """Estimate, interval and bootstrap SE at HORIZON of the RD and each arm (NaN SE without replicates);
    ``prefix`` is the estimator's key prefix of its bootstrap values (the landmark's ``<estimand>|``)."""
    s = summary
    out = {}
    for key, mask in (
        ("rd", (s.measure == "risk_difference")),
        ("early", (s.measure == "cumulative_incidence") & (s.arm == "early")),
        ("delayed", (s.measure == "cumulative_incidence") & (s.arm == "delayed")),
    ):
        r = s[mask & (s.horizon_days == HORIZON)].iloc[0]
        se = math.nan
        if bootstrap is not None:
            values = bootstrap.standard_error(prefix + KEYS[key])
            se = float(values[horizons.index(HORIZON)] if key == "rd" else values[HORIZON])
        out.update({f"{key}_estimate": r.estimate, f"{key}_low": r.ci_low, f"{key}_high": r.ci_high, f"{key}_se": se})
    return out


def _pipeline_penalty() -> float:
    """The ridge penalty of the pipeline's models (the shipped spec's analysis.model_l2_penalty): the
    estimators' own default is the unpenalised fit, and the study scores the pipeline's."""
    from ipm_outcomes.spec import load_spec

    return load_spec().analysis.model_l2_penalty


def _ccw(df: pd.DataFrame, covariates: list[str], replicates: int, workers: int, seed: int, truncation):
    from ipm_outcomes.estimators import CloneCensorWeight

    m = CloneCensorWeight(
        grace_period_days=42, truncation_percentiles=truncation, l2=_pipeline_penalty(), n_bootstrap=replicates,
        seed=seed, workers=workers,
    ).fit(df, covariates)  # fmt: skip
    out = _scored(m.summary, m.bootstrap_, "", m.settings_.horizons)
    # how concentrated each strategy's weights are (the analysis's effective-sample-share diagnostic): runs
    # whose estimate rests on a few heavily weighted persons, next to their errors
    weights = m.weights_.set_index("arm")
    for arm in ("early", "delayed"):
        out[f"{arm}_ess_share"] = float(weights.loc[arm, "ess"] / weights.loc[arm, "n_weighted"])
        out[f"{arm}_max_weight"] = float(weights.loc[arm, "max"])
    return out


def _landmark(df: pd.DataFrame, covariates: list[str], replicates: int, workers: int, seed: int, estimand: str):
    """The landmark analysis (day 42) with ``estimand`` weights: the same keys as :func:`_ccw`."""
    from ipm_outcomes.estimators import LandmarkIPTW

    m = LandmarkIPTW(
        landmark_day=42, estimand=estimand, truncation_percentiles=None, l2=_pipeline_penalty(), n_bootstrap=replicates,
        seed=seed, workers=workers,
    ).fit(df, covariates)  # fmt: skip
    return _scored(m.summary, m.bootstrap_, f"{estimand}|", tuple(m.horizons))


def _fit(estimator: str, df, covariates, replicates, workers, seed, truncation, truth: dict) -> dict:
    """Fit ``estimator`` (ccw, landmark_ate, landmark_att) and attach its truth from truth.json."""
    if estimator == "ccw":
        result = _ccw(df, covariates, replicates, workers, seed, truncation)
        part = truth["rtw"]
    else:
        estimand = estimator.split("_")[1]
        result = _landmark(df, covariates, replicates, workers, seed, estimand)
        part = truth["landmark"][estimand]
    result.update(
        rd_truth=part["risk_difference"][str(HORIZON)],
        early_truth=part["cumulative_incidence"]["early"][str(HORIZON)],
        delayed_truth=part["cumulative_incidence"]["delayed"][str(HORIZON)],
        n=len(df),
    )
    return result


def _synthetic_run(
    seed: int, persons: int, replicates: int, workers: int, hr: float | None, extended: bool, estimator: str
) -> dict:
    from ipm_outcomes import analysis, cohort, ingest, synth
    from ipm_outcomes.spec import load_spec

    spec = load_spec()
    options = {} if hr is None else {"effect_rtw_hr": hr}
    if extended:
        options["mechanisms"] = synth.EXTENDED
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        synth.generate(root / "extract", persons=persons, seed=seed, file_format="parquet", **options)
        ingest.load_extract(root / "extract", root / "db.duckdb")
        cohort.build(spec, root / "db.duckdb")
        truth = json.loads((root / "extract" / "truth.json").read_text())
        inputs = analysis._read(spec, root / "db.duckdb")
    frame = inputs.rtw[["person_id", "time_days", "event", "referral_day"]].merge(inputs.cohort, on="person_id")
    cov, used = analysis._prepare_covariates(frame, list(spec.analysis.covariates))
    df = pd.concat([frame[["time_days", "event", "referral_day"]], cov], axis=1)
    truncation = tuple(spec.analysis.weight_truncation_percentiles)
    return _fit(estimator, df, used, replicates, workers, seed, truncation, truth)


WORLD_COVARIATES = ["radiculopathy", "opioid_use", "depression", "anxiety", "sleep_disorder", "charlson",
                    "prior_imaging", "workers_comp", "age"]


def _world_run(
    seed: int, persons: int, replicates: int, workers: int, hr: float | None, extended: bool, estimator: str
) -> dict:
    import numpy as np

    from ipm_outcomes import synth

    w = synth._simulate_world(persons, seed, 1.5 if hr is None else hr, 3.0, synth.EXTENDED if extended else None)
    truth = synth._truth(w, seed)
    p = w.in_rtw
    referral = np.where(w.referral_day[p] < synth.NEVER, w.referral_day[p], -1)
    cond = {name: w.cond[p, synth._COND[name]].astype(float) for name in ("depression", "anxiety", "sleep")}
    df = pd.DataFrame(
        {
            "time_days": np.minimum(w.obs_time[p], synth.FOLLOWUP_DAYS),
            "event": np.minimum(w.obs_kind[p], 2),
            "referral_day": pd.array(np.where(referral >= 0, referral, 0), dtype="Int64"),
            "radiculopathy": w.radic[p].astype(float),
            "opioid_use": w.opioid[p].astype(float),
            "depression": cond["depression"],
            "anxiety": cond["anxiety"],
            "sleep_disorder": cond["sleep"],
            "charlson": np.minimum(w.charlson_n[p], 3).astype(float),
            "prior_imaging": w.prior_img[p].astype(float),
            "workers_comp": (w.payer[p] == 3).astype(float),
            "age": w.age[p].astype(float),
        }
    )
    df["referral_day"] = df["referral_day"].where(referral >= 0)
    covariates = list(WORLD_COVARIATES)
    if w.mech.pro_referral_drivers:
        # the baseline visit's recorded scores, as the pipeline models them: mean-imputed, with a missing indicator
        for name, values in (("baseline_promis_pf", w.baseline_pf_recorded[p]), ("baseline_nrs_pain", w.baseline_pain_recorded[p])):
            seen = np.isfinite(values)
            df[name] = np.where(seen, values, np.nanmean(values))
            df[f"{name}_missing"] = (~seen).astype(float)
            covariates += [name, f"{name}_missing"]
    return _fit(estimator, df, covariates, replicates, workers, seed, None, truth)


def _simulator(options: dict):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "estimators"))
    import simulate

    return simulate


def _simulator_run(seed: int, persons: int, replicates: int, workers: int, true: dict, options: dict) -> dict:
    df = _simulator(options).simulate(persons, seed, **options)
    result = _ccw(df, ["severity", "male", "age", "payer_type"], replicates, workers, seed, None)
    result.update(
        rd_truth=true["early"][HORIZON] - true["delayed"][HORIZON],
        early_truth=true["early"][HORIZON],
        delayed_truth=true["delayed"][HORIZON],
        n=len(df),
    )
    return result


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per quantity (rd, early, delayed): coverage, mean bias, error/SE moments, SD, width."""
    rows = []
    for key in ("rd", "early", "delayed"):
        covered = (runs[f"{key}_low"] < runs[f"{key}_truth"]) & (runs[f"{key}_truth"] < runs[f"{key}_high"])
        k, n = int(covered.sum()), len(runs)
        p = k / n
        half = 1.96 * math.sqrt(p * (1 - p) / n) if 0 < p < 1 else 0.0
        error = runs[f"{key}_estimate"] - runs[f"{key}_truth"]
        z = error / runs[f"{key}_se"]
        rows.append(
            dict(
                quantity=key,
                runs=n,
                coverage=p,
                coverage_low=max(p - half, 0.0),
                coverage_high=min(p + half, 1.0),
                mean_bias=float(error.mean()),
                mean_se=float(runs[f"{key}_se"].mean()),
                mean_error_over_se=float(z.mean()),
                sd_error_over_se=float(z.std(ddof=1)) if n > 1 else math.nan,
                sd_estimate=float(runs[f"{key}_estimate"].std(ddof=1)) if n > 1 else math.nan,
                mean_width=float((runs[f"{key}_high"] - runs[f"{key}_low"]).mean()),
            )
        )
    return pd.DataFrame(rows)


def _concentration(runs: pd.DataFrame) -> str:
    """The runs whose strategy weights fail the analysis's effective-sample-share diagnostic (clone-censor-weight)."""
    if "delayed_ess_share" not in runs:
        return ""
    from ipm_outcomes.spec import load_spec

    bar = load_spec().analysis.diagnostics.min_effective_sample_share
    parts = []
    for arm in ("early", "delayed"):
        low = runs[runs[f"{arm}_ess_share"] < bar]
        seeds = f" (seeds {', '.join(str(s) for s in low.seed)})" if len(low) else ""
        parts.append(
            f"{arm} {len(low)} of {len(runs)}{seeds}, median share {runs[f'{arm}_ess_share'].median():.2f}, "
            f"largest weight {runs[f'{arm}_max_weight'].max():.0f}x the mean"
        )
    return f"  weights failing the effective-sample-share diagnostic (< {bar:.0%} of a strategy's clones): " + "; ".join(parts)


def _print_summary(table: pd.DataFrame) -> str:
    label = {"rd": "risk difference", "early": "early arm level", "delayed": "delayed arm level"}
    return "\n".join(
        f"  {label[r.quantity]:>17} at day {HORIZON}: coverage {r.coverage:.1%} (95% CI {r.coverage_low:.1%} to "
        f"{r.coverage_high:.1%}); mean bias {r.mean_bias:+.4f} (mean SE {r.mean_se:.4f}); mean error/SE "
        f"{r.mean_error_over_se:+.2f}; SD of error/SE {r.sd_error_over_se:.2f}; SD of estimates {r.sd_estimate:.4f}; "
        f"mean CI width {r.mean_width:.4f}"
        for r in table.itertuples()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", choices=("synthetic", "world", "simulator"), default="synthetic")
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--persons", type=int, default=None, help="default: 12000 (synthetic), 5000 (simulator)")
    parser.add_argument("--replicates", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--first-seed", type=int, default=1000)
    parser.add_argument("--scenario", choices=("benefit", "null"), default="benefit")
    parser.add_argument("--extended", action="store_true", help="the referral mechanisms of issue 19")
    parser.add_argument(
        "--estimator",
        choices=("ccw", "landmark_ate", "landmark_att"),
        default="ccw",
        help="landmark_*: the landmark analysis at day 42 against truth.json's landmark truth (synthetic, world)",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    persons = args.persons or (5_000 if args.source == "simulator" else 12_000)
    if args.source == "simulator" and args.estimator != "ccw":
        parser.error("--estimator landmark_* needs --source synthetic or world (the simulator has no landmark truth)")

    true = None
    options: dict = {}
    if args.source == "simulator":
        simulate = _simulator(options)
        options = dict(simulate.EXTENDED) if args.extended else {}
        if args.scenario == "null":
            options["hr"] = 1.0
        true = simulate.exact_truth(horizons=(HORIZON,), **options)
    rows = []
    start = time.perf_counter()
    for i in range(args.runs):
        seed = args.first_seed + i
        hr = 1.0 if args.scenario == "null" else None
        if args.source == "synthetic":
            row = _synthetic_run(seed, persons, args.replicates, args.workers, hr, args.extended, args.estimator)
        elif args.source == "world":
            row = _world_run(seed, persons, args.replicates, args.workers, hr, args.extended, args.estimator)
        else:
            row = _simulator_run(seed, persons, args.replicates, args.workers, true, options)
        rows.append(dict(seed=seed, **row))
        covered = rows[-1]["rd_low"] < rows[-1]["rd_truth"] < rows[-1]["rd_high"]
        print(
            f"run {i + 1}/{args.runs} seed {seed} (n {row['n']}): RD {row['rd_estimate']:.4f} ({row['rd_low']:.4f} to "
            f"{row['rd_high']:.4f}) truth {row['rd_truth']:.4f} {'covered' if covered else 'MISSED'}",
            flush=True,
        )
        if args.out:
            pd.DataFrame(rows).to_csv(args.out, index=False)
    runs = pd.DataFrame(rows)
    print(
        f"coverage study ({args.source}, {args.estimator}, {args.scenario}{', extended' if args.extended else ''}, "
        f"{persons} persons "
        f"per run, {args.replicates} bootstrap replicates, {args.runs} runs, {time.perf_counter() - start:.0f} s):"
    )
    print(_print_summary(summarise(runs)))
    if concentration := _concentration(runs):
        print(concentration)


if __name__ == "__main__":
    main()
