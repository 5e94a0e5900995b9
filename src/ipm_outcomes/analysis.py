"""The analysis stage: read the marts, run the analysis plan, write ``results.json`` and tidy tables.

``ipm-outcomes analyze --db PATH [--spec FILE] --out DIR`` calls :func:`run`. It reads
``marts.cohort``, ``marts.rtw_outcome``, ``marts.qol_outcome`` and ``marts.attrition`` (built by
``ipm-outcomes cohort``) and the load provenance from the DuckDB file, builds the analysis plan from
the spec (:func:`ipm_outcomes.plan.build_plan`) and runs each item with the runner of its method
(:data:`RUNNERS`); steps items share (the cohort propensity model, the return-to-work analysis table,
one clone-censor-weight fit per referral definition) are computed once. It writes into DIR:

* ``results.json``: study, spec and data fingerprints, attrition, cohort counts, the plan, every
  estimate keyed by (analysis id, outcome, measure, arm, horizon), diagnostics, the list of result
  tables with their grain, and what could not be estimated and why (an empty cohort is a finding,
  not a crash);
* one Parquet file per result table (listed in ``results.json`` under ``tables``).

Both follow the results data model (:data:`ipm_outcomes.report_data.TABLES`,
:func:`ipm_outcomes.report_data.validate_results`), checked before anything is written.

Adding an analysis of a new kind: an item in :func:`ipm_outcomes.plan.build_plan`, a runner here
returning an :class:`_ItemResult`, and, for a new table, its declaration in the results data model.

The report step renders from these files only. Nothing here is specific to the synthetic data.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from . import __version__, db, explore, lineage
from .calibration import EASE_THRESHOLD, MIN_NEGATIVE_CONTROLS, EmpiricalCalibration
from .diagnostics import (
    SMD_COLUMNS,
    diagnostics_table,
    e_value,
    effective_sample_checks,
    effective_sample_size,
    equipoise,
    preference_score,
    smd_table,
    weight_summary,
)
from .errors import IpmError
from .progress import StageProgress
from .disclosure import CountLedger, DisclosurePolicy
from .estimators import (
    CloneCensorCost,
    CloneCensorWeight,
    LandmarkIPTW,
    MultiOutcomeCloneCensorCost,
    MultiOutcomeCloneCensorWeight,
    MultiOutcomeNaive,
    NaiveComparison,
    NaiveCostComparison,
    TimeVaryingCox,
    WeightedANCOVA,
)
from .estimators import bootstrap
from .estimators._common import build_design, standardize
from .estimators.ccw import CUMULATIVE_INCIDENCE
from .estimators.dose_response import dose_response_table
from .estimators.iptw import treatment_weights, truncate
from .estimators.propensity import LogisticRegression
from .report_data import ESTIMATE_COLUMNS, RESULTS_SCHEMA_VERSION, TABLES, conform_table, validate_results
from .spec import StudySpec, spec_sha256
from .plan import (
    COST_FIT_SETTINGS, OPIOID_NAIVE, OUTCOME_ROLES, PRIMARY_REFERRAL, AnalysisItem, build_plan, cost_fit_groups,
    fit_groups, outcome_group,
)
from .vocabulary import COST_UNITS, INSTRUMENTS, QOL_OUTCOMES, REFERRAL_DEFINITIONS

#: Cohort columns treated as categories in every model (one indicator per level).
CATEGORICAL = ("sex", "payer_type", "index_year")
MARTS = ("cohort", "rtw_outcome", "qol_outcome", "attrition")
#: The marts of the secondary and negative-control outcomes (a cohort built before them has none: those
#: outcomes are then unavailable, with the fix).
OUTCOME_MARTS = ("secondary_outcome", "negative_control_outcome", "outcome_availability")
#: The marts of the cost outcomes (read with the outcome marts when present: the cost analyses need them
#: and marts.outcome_availability).
COST_MARTS = ("cost_outcome", "cost_daily")

@dataclass
class AnalysisSummary:
    """What :func:`run` wrote: where, the cohort counts, the primary estimate and what was unavailable."""

    out_dir: Path
    results_path: Path
    study: str
    n: int
    n_early: int
    n_delayed: int
    n_rtw_population: int
    primary: dict[str, Any] | None
    tables: list[str]
    unavailable: dict[str, str]
    diagnostics_passed: dict[str, bool]
    bootstrap_replicates: int
    workers: int
    seconds: float
    estimates: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def describe(self, policy: DisclosurePolicy | None = DisclosurePolicy()) -> str:
        """A few lines for the terminal.

        Counts of persons pass the disclosure gate of ``policy`` as in the report (``<11``, ``*``), and the
        primary estimate is printed only when each strategy was followed by at least min_cell_size
        persons still followed at the horizon. ``policy=None``: the true numbers (``--show-small-counts``).
        """
        ledger = CountLedger(policy or DisclosurePolicy(1))
        for key, value in (("n", self.n), ("early", self.n_early), ("delayed", self.n_delayed), ("rtw", self.n_rtw_population)):
            ledger.add(key, value, priority=1)
        ledger.add_identity("n", ["early", "delayed"], only_if_holds=True)
        ledger.protect()
        c = ledger.display
        lines = [
            f"analysis of study {self.study!r}: {c('n')} persons in the cohort "
            f"({c('early')} early, {c('delayed')} delayed), "
            f"{c('rtw')} in the return-to-work population",
        ]
        if self.primary:
            p = self.primary
            persons = [p.get(k) for k in ("n_early", "n_delayed", "at_risk_early", "at_risk_delayed")]
            if policy is not None and any(v is None or policy.too_few(v) for v in persons):
                lines.append(
                    f"  primary (clone-censor-weight): not shown: fewer than {policy.min_cell_size} persons followed "
                    f"a strategy, or were still followed at day {p['horizon_days']}"
                )
            else:
                lines.append(
                    f"  primary (clone-censor-weight): RTW risk difference at day {p['horizon_days']} = "
                    f"{100 * p['estimate']:+.1f} points (95% CI {100 * p['ci_low']:+.1f} to {100 * p['ci_high']:+.1f}); "
                    f"early {100 * p['early']:.1f}% vs delayed {100 * p['delayed']:.1f}%"
                )
        if self.diagnostics_passed:
            lines.append(
                "  diagnostics: "
                + ", ".join(f"{k} {'pass' if v else 'FAIL'}" for k, v in self.diagnostics_passed.items())
            )
        for key, why in self.unavailable.items():
            lines.append(f"  unavailable: {key}: {why}")
        lines.append(
            f"  {self.estimates} estimates, {len(self.tables)} tables, "
            f"{self.bootstrap_replicates} bootstrap replicates on {self.workers} worker(s), {self.seconds:.1f} s"
        )
        lines.append(f"  wrote {self.results_path}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# reading


@dataclass
class _Inputs:
    cohort: pd.DataFrame
    rtw: pd.DataFrame
    qol: pd.DataFrame
    attrition: pd.DataFrame
    build: lineage.CohortBuild
    outcomes: dict[str, pd.DataFrame] = field(default_factory=dict)  # OUTCOME_MARTS present in the database
    db_path: Path | None = None


def _read(spec: StudySpec, db_path: Path) -> _Inputs:
    """The marts, after checking they were built from this database's load and this spec's cohort sections."""
    con = db.connect(db_path, read_only=True)
    try:
        have = {
            (s, t) for s, t in con.execute("select table_schema, table_name from information_schema.tables").fetchall()
        }
        missing = [m for m in MARTS if ("marts", m) not in have]
        if missing:
            raise IpmError(
                f"{db_path}: no table(s) {', '.join('marts.' + m for m in missing)}; "
                f"build the cohort first with {lineage.rebuild_command(spec, db_path)}"
            )
        build = lineage.check_cohort(con, spec, db_path)
        # in key order: the marts are written in parallel, in no fixed order, and the bootstrap
        # resamples rows by position, so an unordered read gave other intervals on every run
        frames = {m: explore.mart(con, m) for m in MARTS}
        outcomes = {m: explore.mart(con, m) for m in (*OUTCOME_MARTS, *COST_MARTS) if ("marts", m) in have}
    finally:
        con.close()
    return _Inputs(frames["cohort"], frames["rtw_outcome"], frames["qol_outcome"], frames["attrition"], build, outcomes, db_path)


# ----------------------------------------------------------------------------------------------
# helpers


def _clean(value):
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return None if not math.isfinite(float(value)) else float(value)
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def _prepare_covariates(frame: pd.DataFrame, covariates: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """Model-ready copies of the covariate columns (categories as text, booleans as 0/1)."""
    out = pd.DataFrame(index=frame.index)
    used = []
    for col in covariates:
        if col not in frame.columns:
            continue
        s = frame[col]
        if col in CATEGORICAL or not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)):
            out[col] = s.astype("string")
        else:
            out[col] = pd.to_numeric(s.astype("Float64") if pd.api.types.is_bool_dtype(s) else s, errors="coerce")
        used.append(col)
    return out, used


def _subgroup_columns(spec: StudySpec, frame: pd.DataFrame) -> pd.DataFrame:
    """The spec's subgroups as text columns (``sub_<name>``); persons without the value: 'unknown'."""
    out = pd.DataFrame(index=frame.index)
    a = spec.analysis
    for name in a.subgroups:
        if name == "age_band":
            edges = a.age_band_edges
            labels = [f"{lo}-{hi - 1}" for lo, hi in zip(edges[:-1], edges[1:], strict=False)]
            band = pd.cut(pd.to_numeric(frame["age"], errors="coerce"), bins=edges, right=False, labels=labels)
            out["sub_age_band"] = band.astype("string").fillna("unknown")
        elif name == "baseline_severity":
            col = f"baseline_{a.severity_instrument}"
            score = (
                pd.to_numeric(frame[col], errors="coerce")
                if col in frame.columns
                else pd.Series(np.nan, index=frame.index)
            )
            higher_worse = not INSTRUMENTS[a.severity_instrument].higher_is_better
            severe = score >= a.severity_threshold if higher_worse else score <= a.severity_threshold
            out["sub_baseline_severity"] = np.where(score.isna(), "unknown", np.where(severe, "severe", "not severe"))
        elif name in frame.columns:
            s = frame[name]
            if pd.api.types.is_bool_dtype(s) or set(pd.unique(s.dropna())) <= {0, 1}:
                # 0/1 and False/True hash alike, so one mapping serves both
                out[f"sub_{name}"] = s.map({1: "yes", 0: "no"}).astype("string").fillna("unknown")
            else:
                out[f"sub_{name}"] = s.astype("string").fillna("unknown")
    return out


#: The measures of days off work (restricted mean time not back at work), arm levels and their difference.
DAYS_OFF_MEASURES = ("rmst_difference", "restricted_mean_days_off_work")


def _estimate_rows(summary: pd.DataFrame, item: AnalysisItem, days_off_horizons) -> list[dict]:
    """results.json estimates from an estimator's summary: days-off measures only at ``days_off_horizons``
    (the last horizon, or the shorter ones of :func:`days_off_reading_horizons`), hazard ratios without a
    horizon (they span the whole follow-up)."""
    rows = []
    for r in summary.to_dict("records"):
        measure = r["measure"]
        h = r.get("horizon_days")
        if measure in DAYS_OFF_MEASURES and h not in days_off_horizons:
            continue
        if measure == "hazard_ratio":
            h = None
        rows.append(
            dict(
                analysis=item.id,
                outcome=item.outcome,
                method=item.method,
                measure=measure,
                arm=r.get("arm"),
                horizon_days=None if h is None else int(h),
                estimate=r["estimate"],
                ci_low=r["ci_low"],
                ci_high=r["ci_high"],
                n=r.get("n"),
            )
        )
    return rows


def days_off_reading_horizons(max_horizon: int, step: int = 30) -> list[int]:
    """Shorter horizons at which days off work are also reported: every ``step`` days below the last
    horizon. An arm's curve is shown only while enough of its persons are still followed, so when the
    last horizon is withheld the report can still answer in days off work within the longest of these
    that both arms reach ("days off work in the first 300 days")."""
    return list(range(step, max_horizon, step))


def _with_days_off(summary: pd.DataFrame, model, max_horizon: int, contrast=("early", "delayed")):
    """``summary`` followed by ``model``'s days off work at :func:`days_off_reading_horizons`, and every
    horizon at which days off work are reported (for :func:`_estimate_rows`)."""
    shorter = days_off_reading_horizons(max_horizon)
    # the summary's own days off at its shorter horizons are read again from the by-day values
    repeated = summary["measure"].isin(DAYS_OFF_MEASURES) & (summary["horizon_days"] != max_horizon)
    rows = pd.concat([summary[~repeated], model.days_off_at(shorter, contrast)], ignore_index=True)
    return rows, {max_horizon, *shorter}


def _table1(frame: pd.DataFrame, covariates: list[str], early: np.ndarray, weights: np.ndarray):
    """Table 1 (long) and SMDs per characteristic (level), before and after ``weights``."""
    rows, smd_rows = [], []
    arms = {"early": early, "delayed": ~early}
    for col in covariates:
        s = frame[col]
        categorical = col in CATEGORICAL or not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s))
        values = s.dropna()
        binary = not categorical and set(pd.unique(values)) <= {0, 1}
        if categorical:
            text = s.astype("string")
            for level in sorted(text.dropna().unique()):
                x = (text == level).fillna(False).to_numpy(dtype=float)
                for arm, m in arms.items():
                    rows.append(
                        dict(
                            variable=col,
                            level=str(level),
                            statistic="n_pct",
                            arm=arm,
                            n=int(x[m].sum()),
                            denominator=int(m.sum()),
                            mean=np.nan,
                            sd=np.nan,
                        )
                    )
                smd_rows.append((f"{col}_{level}", x, np.ones_like(x, dtype=bool)))
        elif binary:
            x = pd.to_numeric(s.astype("Float64") if pd.api.types.is_bool_dtype(s) else s, errors="coerce").to_numpy(
                float
            )
            known = np.isfinite(x)
            for arm, m in arms.items():
                rows.append(
                    dict(
                        variable=col,
                        level=None,
                        statistic="n_pct",
                        arm=arm,
                        n=int(np.nansum(x[m])),
                        denominator=int((m & known).sum()),
                        mean=np.nan,
                        sd=np.nan,
                    )
                )
            smd_rows.append((col, np.nan_to_num(x), known))
        else:
            x = pd.to_numeric(s, errors="coerce").to_numpy(float)
            known = np.isfinite(x)
            for arm, m in arms.items():
                v = x[m & known]
                rows.append(
                    dict(
                        variable=col,
                        level=None,
                        statistic="mean_sd",
                        arm=arm,
                        n=int(v.size),
                        denominator=int(m.sum()),
                        mean=float(v.mean()) if v.size else np.nan,
                        sd=float(v.std(ddof=1)) if v.size > 1 else np.nan,
                    )
                )
            smd_rows.append((col, np.nan_to_num(x), known))
    table1 = pd.DataFrame(rows, columns=["variable", "level", "statistic", "arm", "n", "denominator", "mean", "sd"])
    smd = []
    for name, x, known in smd_rows:
        t = smd_table(x[known][:, None], [name], early[known], weights[known])
        smd.append(t.iloc[0].to_dict())
    smd = pd.DataFrame(smd, columns=list(SMD_COLUMNS))
    return table1, smd


def _max_abs(series) -> float:
    s = pd.to_numeric(pd.Series(series), errors="coerce").abs()
    return float(s.max()) if s.notna().any() else float("nan")


# ----------------------------------------------------------------------------------------------
# the run


def run(
    spec: StudySpec,
    db_path: str | Path,
    out_dir: str | Path,
    *,
    workers: int | None = None,
    progress: bool = False,
) -> AnalysisSummary:
    """Run the whole analysis and write ``out_dir/results.json`` plus the result tables.

    Parameters
    ----------
    spec : StudySpec
        The validated study spec (what to estimate: grace period, horizons, bootstrap replicates,
        seed, truncation, subgroups, covariates, MCIDs, diagnostics thresholds).
    db_path : path
        DuckDB file with the marts built by ``ipm-outcomes cohort``.
    out_dir : path
        Folder to write (created).
    workers : int, optional
        Bootstrap processes (default ``os.cpu_count()``); results do not depend on it.
    progress : bool
        Show a progress bar.

    Returns
    -------
    AnalysisSummary
    """
    started = time.time()
    db_path, out_dir = Path(db_path), Path(out_dir)
    # out_dir is created only when there is something to write: a failed analysis leaves no empty folder
    workers = max(1, workers or os.cpu_count() or 1)
    inputs = _read(spec, db_path)  # refuses mismatched inputs before anything is written
    a = spec.analysis
    grace = spec.exposure.grace_period_days
    horizons = tuple(int(h) for h in a.horizons_days)
    primary_h = a.primary_horizon_days
    alpha = 1 - a.ci_level
    trunc = tuple(a.weight_truncation_percentiles)
    B, seed = a.bootstrap_replicates, spec.study.seed
    estimates: list[dict] = []
    tables: dict[str, pd.DataFrame] = {}
    unavailable: dict[str, str] = {}
    diagnostics: dict[str, Any] = {"checks": []}
    checks: list[pd.DataFrame] = []
    primary = None

    cohort = inputs.cohort.copy()
    n = len(cohort)
    exposure = cohort["exposure"].astype("string") if n else pd.Series([], dtype="string")
    n_early = int((exposure == "early").sum())
    cohort_counts = {"n": n, "n_early": n_early, "n_delayed": n - n_early, "n_rtw_population": len(inputs.rtw)}

    # -- cohort description (always, even when the models cannot run) ----------------------------
    days = pd.to_numeric(cohort.get("days_to_referral", pd.Series(dtype=float)), errors="coerce").dropna().astype(int)
    tables["referral_timing"] = days.value_counts().sort_index().rename_axis("day").reset_index(name="n")
    counts = cohort["delay_category"].astype("string").value_counts() if n else pd.Series(dtype=int)
    tables["delay_categories"] = pd.DataFrame(
        [
            # "never" has no days; the open last band ("> last cut") has no last day
            dict(delay_category=label, first_day=None if lo < 0 else lo, last_day=hi, n=int(counts.get(label, 0)))
            for label, lo, hi in spec.delay_categories()
        ]
    ).astype({"first_day": "Int64", "last_day": "Int64"})
    covariates = list(a.covariates)
    if "ehr_pro" in inputs.build.load.absent_tables:
        unavailable["qol"] = "no ehr_pro table in the extract: quality-of-life outcomes cannot be estimated"
    for instrument in spec.outcomes.qol.instruments:
        if instrument not in QOL_OUTCOMES:
            # listed in the spec (its scores are loaded and counted) but not an outcome of this analysis
            unavailable[f"qol/{instrument}"] = (
                f"{instrument} is listed in the spec's quality-of-life instruments but is not analysed as an outcome: "
                "the analysed outcomes are physical function, pain interference, disability, utility and pain "
                f"intensity ({', '.join(QOL_OUTCOMES)})"
            )
    if "pharmacy_claim" in inputs.build.load.absent_tables or "ndc_reference" in inputs.build.load.absent_tables:
        unavailable["opioid_use"] = "no pharmacy claims (or NDC reference) in the extract: opioid covariates left out"
    if n == 0:
        unavailable["all"] = "the cohort is empty: no person met the cohort criteria, so nothing can be estimated"

    plan = build_plan(spec)
    ctx = _Context(spec, inputs, plan, covariates, alpha, trunc, B, seed, workers)
    if "ehr_work_status" in inputs.build.load.absent_tables:
        unavailable["rtw"] = "no ehr_work_status table in the extract: return to work cannot be estimated"
    elif n > 0 and len(inputs.rtw) == 0:
        unavailable["rtw"] = "the return-to-work population is empty (nobody off work at index)"
    fragments: dict[str, list[pd.DataFrame]] = {}
    # BLAS runs single-threaded: the matrices here are small (tens of columns), where threads cost
    # more than they save on a shared machine, and the parallelism is across bootstrap workers.
    with StageProgress("analysis", progress, len(plan)) as bar, threadpool_limits(limits=1), bootstrap.progress_reporter(
        bar.replicates
    ):
        for item in plan:
            if not _runnable(item, ctx, unavailable):
                bar.step(f"{item.id} unavailable")
                continue
            result = RUNNERS[item.method](item, ctx)
            estimates += result.estimates
            for name, frame in result.tables.items():
                fragments.setdefault(name, []).append(frame)
            unavailable.update(result.unavailable)
            checks += result.checks
            diagnostics.update(result.diagnostics)
            if item.primary:
                primary = result.primary
            bar.step(item.id)
    for name, parts in fragments.items():
        tables[name] = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    _order_tables(tables, plan)

    if checks:
        table = pd.concat(checks, ignore_index=True)
        tables["diagnostics"] = table
        method_of = {item.id: item.method for item in plan}
        diagnostics["checks"] = [
            dict(
                name=f"{r['analysis']}:{r['diagnostic'].replace(' ', '_')}",
                label=f"{r['diagnostic'].capitalize()} ({_ANALYSIS_LABELS.get(method_of.get(r['analysis']), r['analysis'])})",
                value=r["value"],
                threshold=r["threshold"],
                passed=r["passed"],
                analysis=r["analysis"],
                note=r["note"],
            )
            for r in table.to_dict("records")
        ]

    # -- write ------------------------------------------------------------------------------------
    tables["estimates"] = pd.DataFrame(estimates, columns=ESTIMATE_COLUMNS)
    # every table as the results data model declares it (columns, types, key), checked before anything is written
    tables = {name: conform_table(name, frame, f"{out_dir / name}.parquet") for name, frame in tables.items()}
    written = {
        name: {"file": f"{name}.parquet", "grain": TABLES[name].grain, "rows": len(frame)} for name, frame in tables.items()
    }
    attrition = (
        inputs.attrition.sort_values(["population", "step_order"])
        .loc[
            :,
            [c for c in ("population", "step_order", "rule", "step", "remaining", "excluded") if c in inputs.attrition],
        ]
        .to_dict("records")
    )
    results = {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "study": spec.study.name,
        "title": getattr(spec.study, "title", spec.study.name),
        "spec_sha256": spec_sha256(spec),
        "data_sha256": inputs.build.load.data_sha256,
        "package_version": __version__,
        "generated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "seed": seed,
        "grace_period_days": grace,
        "primary_horizon_days": primary_h,
        "min_cell_size": spec.report.min_cell_size,
        "spec": spec.to_toml_dict(),
        "attrition": attrition,
        "cohort": cohort_counts,
        "plan": [item.to_dict() for item in plan],
        "estimates": estimates,
        "diagnostics": diagnostics,
        "tables": written,
        "unavailable": unavailable,
        "intervals": {
            "ccw": f"percentile bootstrap over persons ({B} replicates; persons resampled, then cloned, "
            "every model refitted)",
            "landmark_iptw": f"percentile bootstrap over persons ({B} replicates; propensity model refitted)",
            "naive": f"percentile bootstrap over persons ({B} replicates)",
            "tv_cox": "Wald interval from the cluster-robust (sandwich) standard error of the single fit, "
            "clustered on person",
            "ancova_iptw": "Wald interval from the heteroscedasticity-robust (HC1) covariance of the weighted "
            "regression",
            "ccw_cost": f"percentile bootstrap over persons ({B} replicates; persons resampled, then cloned, the "
            "referral model and the Kaplan-Meier of loss refitted)",
        },
        "provenance": {**_provenance(spec, inputs, B, seed, workers), "data_source": _data_source(inputs.build.load, inputs.cohort)},
    }
    results_path = out_dir / "results.json"
    results = _clean(results)
    validate_results(results, results_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        frame.to_parquet(out_dir / written[name]["file"], index=False)
    results_path.write_text(json.dumps(results, indent=2, allow_nan=False) + "\n")
    passed = {c["name"]: bool(c["passed"]) for c in diagnostics.get("checks", [])}
    return AnalysisSummary(
        out_dir=out_dir,
        results_path=results_path,
        study=spec.study.name,
        n=n,
        n_early=cohort_counts["n_early"],
        n_delayed=cohort_counts["n_delayed"],
        n_rtw_population=cohort_counts["n_rtw_population"],
        primary=primary,
        tables=sorted(written),
        unavailable=unavailable,
        diagnostics_passed=passed,
        bootstrap_replicates=B,
        workers=workers,
        seconds=time.time() - started,
        estimates=len(estimates),
    )


#: The weighting model of each method, for the diagnostics' labels (the checks are keyed by the plan's ids).
_ANALYSIS_LABELS = {
    "ccw": "clone-censor-weight, primary",
    "landmark_iptw": "propensity of referral within the grace period among persons still off work at its end",
    "cohort_iptw": "cohort propensity model: Table 1 and quality of life",
    "empirical_calibration": "empirical null of the negative-control outcomes",
}


def _data_source(load: lineage.LoadRecord, cohort: pd.DataFrame) -> dict:
    """Where the data came from, for the report's first screen: the extract folder the cohort was built
    from, whether it is the generated synthetic extract (the generator writes ``truth.json`` beside the
    tables; a real extract has none), and the period of the index dates."""
    extract = load.extract_path if load.loaded_at else None
    synthetic = bool(extract) and (Path(extract) / "truth.json").exists()
    index = pd.to_datetime(cohort["index_date"], errors="coerce").dropna() if "index_date" in cohort else pd.Series([], dtype="datetime64[ns]")
    return {
        "extract": Path(extract).name if extract else None,
        "synthetic": synthetic,
        "synthetic_marker": "truth.json beside the extract's tables (written by ipm-outcomes synth)" if synthetic else None,
        "index_period": [index.min().date().isoformat(), index.max().date().isoformat()] if len(index) else None,
    }


def _provenance(spec: StudySpec, inputs: _Inputs, B: int, seed: int, workers: int) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    from .fingerprint import sha256_file

    packages = {}
    for name in ("numpy", "pandas", "scipy", "statsmodels", "lifelines", "duckdb", "pyarrow", "scikit-learn"):
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            pass
    valuesets = []
    try:
        for name, path in sorted(spec.valueset_paths().items()):
            try:
                codes = sum(1 for _ in open(path, encoding="utf-8")) - 1
            except OSError:
                codes = None
            valuesets.append({"name": name, "file": Path(path).name, "sha256": sha256_file(path), "codes": codes})
    except IpmError:
        pass
    load = inputs.build.load
    return {
        # the load the cohort was built from (checked to be the one the database holds), not
        # whatever the database held when the analysis ran
        "cohort_load": {
            "extract_path": load.extract_path,
            "loaded_at": load.loaded_at,
            "data_sha256": load.data_sha256,
            "dates_shifted": load.dates_shifted,
            "reference_date": load.reference_date,
            "date_shift_days": load.date_shift_days,
        },
        "cohort_built_at": inputs.build.built_at,
        "files": [{**f, "rows": None if f.get("rows") is None else int(f["rows"])} for f in load.files],
        "absent_tables": load.absent_tables,
        "valuesets": valuesets,
        "packages": packages,
        "package_version": __version__,
        "bootstrap_replicates": B,
        "seed": seed,
        "workers": workers,
        "spec_file": str(spec.source_path) if spec.source_path else None,
    }


def _at_risk(curves: pd.DataFrame, arm: str, day: int) -> int:
    """Persons at risk in one arm's curve on ``day`` (the last tabulated day up to it)."""
    part = curves[(curves["arm"] == arm) & (curves["day"] <= day)]
    return int(part.sort_values("day")["n_at_risk"].iloc[-1]) if not part.empty else 0


def _persons_following(referral_days: np.ndarray, window: tuple[int, int | None]) -> int:
    """Persons whose referral day (NaN: never referred) falls in a strategy's window ``[a, b]``.

    For ``b`` None ("no referral before day a"), the never-referred follow it too. These are the persons
    a strategy's estimate rests on once its window has closed, not the clones (every person has one
    clone in every strategy).
    """
    a, b = window
    ref = np.asarray(referral_days, dtype=float)
    not_before = ~(ref < a)  # NaN (never) compares False, so never-referred persons are "not before"
    within = np.ones(ref.shape, bool) if b is None else (ref <= b)
    return int(np.sum(not_before & within))




# ----------------------------------------------------------------------------------------------
# the plan's runners: one function per method, each returning what its analysis adds to the results


@dataclass
class _ItemResult:
    """What one analysis of the plan adds: estimates (results.json rows), table fragments (concatenated
    per table name in plan order), unavailable reasons, diagnostic checks and diagnostics entries."""

    estimates: list[dict] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    checks: list[pd.DataFrame] = field(default_factory=list)
    diagnostics: dict[str, Any] = field(default_factory=dict)
    primary: dict[str, Any] | None = None


@dataclass
class _RtwData:
    """The return-to-work population as the estimators read it (one row per person)."""

    frame: pd.DataFrame  # outcome, referral and cohort columns
    analysis: pd.DataFrame  # time_days, event, referral_day, model covariates, subgroup columns
    used: list[str]  # model covariates present
    subs: pd.DataFrame  # sub_<name> text columns
    common: dict[str, Any]  # estimator settings every return-to-work method shares


@dataclass
class _Context:
    """What the runners share: the inputs, the settings, and the steps computed once (the cohort
    propensity model, the return-to-work analysis table, one clone-censor-weight fit per referral
    definition)."""

    spec: StudySpec
    inputs: _Inputs
    plan: list[AnalysisItem]
    covariates: list[str]
    alpha: float
    trunc: tuple[float, float]
    B: int
    seed: int
    workers: int
    ps_cohort: np.ndarray | None = None
    _rtw: _RtwData | None = None
    _ccw: dict[str, tuple[CloneCensorWeight | None, str | None]] = field(default_factory=dict)
    designs: dict[tuple, np.ndarray] = field(default_factory=dict)  # ANCOVA design matrices by covariate list
    _outcome_fits: _OutcomeFits | None = None
    _costs: dict[str, tuple[pd.DataFrame, pd.DataFrame, list[str]]] = field(default_factory=dict)  # by cost outcome
    _cost_fits: dict[str, tuple[MultiOutcomeCloneCensorCost | None, str | None]] = field(default_factory=dict)  # by item id
    _rows: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # by outcome mart

    def rows_of(self, mart: str, outcome: str) -> np.ndarray:
        """Positions of ``outcome``'s rows in the outcome mart ``mart`` (ascending; empty when it has none).
        The marts hold millions of rows (one per person per outcome): the text column is grouped once per
        mart, not compared once per plan item (hundreds of full-column string comparisons)."""
        if mart not in self._rows:
            frame = self.inputs.outcomes[mart]
            self._rows[mart] = {str(k): v for k, v in frame.groupby("outcome", sort=False).indices.items()}
        return self._rows[mart].get(outcome, np.zeros(0, dtype=np.intp))

    def cost_fit(self, item: AnalysisItem) -> tuple[MultiOutcomeCloneCensorCost | None, str | None]:
        """The clone-censor-weight cost fit serving ``item`` (shared with the cost items of its
        :func:`~ipm_outcomes.plan.cost_fit_groups` group whose persons have the same follow-up), or the
        reason it failed."""
        if item.id not in self._cost_fits:
            key = (item.horizons, *(item.settings[k] for k in COST_FIT_SETTINGS))
            self._cost_fits.update(_fit_costs(self, cost_fit_groups(self.plan)[key]))
        return self._cost_fits[item.id]

    def outcome_fits(self) -> _OutcomeFits:
        """The one multi-outcome fit (and naive comparison) serving every runnable cohort outcome analysis."""
        if self._outcome_fits is None:
            self._outcome_fits = _fit_outcomes(self)
        return self._outcome_fits

    def rtw(self) -> _RtwData:
        if self._rtw is None:
            self._rtw = _rtw_data(self)
        return self._rtw

    def ccw(self, item: AnalysisItem) -> tuple[CloneCensorWeight | None, str | None]:
        """The clone-censor-weight fit serving ``item`` (shared by its fit group), or the reason it failed."""
        definition = item.settings["referral_definition"]
        if definition not in self._ccw:
            self._ccw[definition] = _fit_ccw(self, fit_groups(self.plan)[("ccw", definition)])
        return self._ccw[definition]


def _rtw_data(ctx: _Context) -> _RtwData:
    spec, inputs, a = ctx.spec, ctx.inputs, ctx.spec.analysis
    cohort = inputs.cohort
    wanted = [
        *ctx.covariates,
        *(d.column for d in REFERRAL_DEFINITIONS.values()),
        "exposure",
        "age",
        *a.subgroups,
        f"baseline_{a.severity_instrument}",
    ]
    keep = [c for c in dict.fromkeys(wanted) if c in cohort.columns and c != "person_id"]
    frame = inputs.rtw[["person_id", "time_days", "event", "referral_day"]].merge(
        cohort[["person_id", *keep]], on="person_id", how="left", validate="one_to_one"
    )
    model_cov, used = _prepare_covariates(frame, ctx.covariates)
    subs = _subgroup_columns(spec, frame)
    analysis = pd.concat([frame[["time_days", "event", "referral_day"]], model_cov, subs], axis=1)
    analysis["time_days"] = pd.to_numeric(analysis["time_days"]).clip(upper=spec.cohort.followup_days)
    horizons = tuple(int(h) for h in a.horizons_days)
    common = dict(
        horizons=horizons, max_day=max(horizons), n_bootstrap=ctx.B, seed=ctx.seed, workers=ctx.workers,
        alpha=ctx.alpha,
    )
    return _RtwData(frame, analysis, used, subs, common)


def _referral_days(ctx: _Context, definition: str) -> np.ndarray:
    """Each person's referral day (NaN: never) under a referral definition."""
    r = ctx.rtw()
    column = "referral_day" if definition == PRIMARY_REFERRAL else REFERRAL_DEFINITIONS[definition].column
    source = r.analysis if definition == PRIMARY_REFERRAL else r.frame
    return pd.to_numeric(source[column], errors="coerce").to_numpy(dtype=float)


def _fit_ccw(ctx: _Context, items: list[AnalysisItem]) -> tuple[CloneCensorWeight | None, str | None]:
    """One clone-censor-weight fit for a group of items: the union of their strategies and contrasts."""
    r = ctx.rtw()
    definition = items[0].settings["referral_definition"]
    strategies: dict[str, tuple[int, int | None]] = {}
    contrasts: list[tuple[str, str]] = []
    for item in items:
        strategies.update(item.strategies)
        if item.contrast and item.contrast not in contrasts:
            contrasts.append(item.contrast)
    sub_cols = list(r.subs.columns) if any("subgroups" in item.settings for item in items) else None
    data = r.analysis
    if definition != PRIMARY_REFERRAL:
        if REFERRAL_DEFINITIONS[definition].column not in r.frame.columns:
            return None, f"the cohort has no column {REFERRAL_DEFINITIONS[definition].column}"
        data = data.assign(referral_day=_referral_days(ctx, definition))
    try:
        model = CloneCensorWeight(
            grace_period_days=ctx.spec.exposure.grace_period_days,
            strategies=strategies,
            contrasts=contrasts,
            truncation_percentiles=ctx.trunc,
            l2=ctx.spec.analysis.model_l2_penalty,
            **r.common,
        )
        fit_kwargs = {"subgroup_cols": sub_cols} if sub_cols is not None else {}
        return model.fit(data, r.used, **fit_kwargs), None
    except IpmError as exc:
        return None, str(exc)


def _contrast_row(summary: pd.DataFrame, item: AnalysisItem, measure: str, horizon: int):
    e, d = item.contrast
    return summary[
        (summary.contrast == f"{e} vs {d}") & (summary.horizon_days == horizon) & (summary.measure == measure)
    ].iloc[0]


def _sensitivity_row(ctx: _Context, item: AnalysisItem, model: CloneCensorWeight) -> dict:
    """The item's risk difference at the primary horizon, with the persons who followed each strategy."""
    h = ctx.spec.analysis.primary_horizon_days
    r = _contrast_row(model.summary, item, "risk_difference", h)
    ref = _referral_days(ctx, item.settings["referral_definition"])
    e, d = item.contrast
    return dict(
        analysis=item.id,
        label=item.label,
        measure="risk_difference",
        horizon_days=h,
        estimate=r.estimate,
        ci_low=r.ci_low,
        ci_high=r.ci_high,
        n=r.n,
        n_early=_persons_following(ref, item.strategies[e]),
        n_delayed=_persons_following(ref, item.strategies[d]),
    )


def _run_ccw(item: AnalysisItem, ctx: _Context) -> _ItemResult:
    if item.role in OUTCOME_ROLES:
        return _run_outcome(item, ctx)
    out = _ItemResult()
    model, why = ctx.ccw(item)
    if model is None:
        key = "rtw/ccw" if item.settings["referral_definition"] == PRIMARY_REFERRAL else f"rtw/ccw_{item.id}"
        out.unavailable[key] = why
        return out
    if item.role in ("primary", "sensitivity"):
        out.tables["sensitivity"] = pd.DataFrame([_sensitivity_row(ctx, item, model)])
    if item.primary:
        _primary(item, ctx, model, out)
    elif item.role == "dose_response":
        _dose_response(item, ctx, model, out)
    elif item.role == "subgroups":
        _subgroups(item, ctx, model, out)
    return out


def _primary(item: AnalysisItem, ctx: _Context, ccw: CloneCensorWeight, out: _ItemResult) -> None:
    """The primary analysis: estimates, curves, the primary summary, weights, balance and E-value."""
    a, grace, trunc = ctx.spec.analysis, ctx.spec.exposure.grace_period_days, ctx.trunc
    primary_h, max_h = a.primary_horizon_days, max(item.horizons)
    s = ccw.summary
    e_arm, d_arm = item.contrast
    rows = s[(s.arm.isin([e_arm, d_arm])) | (s.contrast == f"{e_arm} vs {d_arm}")]
    # Every person is cloned into both arms, so the estimator's n counts clones (the whole population
    # twice). A reader's "n early" is the persons who actually followed the strategy, and the 11-person
    # rule applies to them: replace the arm sizes with those.
    ref_all = _referral_days(ctx, PRIMARY_REFERRAL)
    following = {arm: _persons_following(ref_all, item.strategies[arm]) for arm in (e_arm, d_arm)}
    rows, days_off_horizons = _with_days_off(rows, ccw, max_h, item.contrast)
    rows = rows.assign(n=[following.get(arm, n) if isinstance(arm, str) else n for arm, n in zip(rows["arm"], rows["n"])])
    out.estimates += _estimate_rows(rows, item, days_off_horizons)
    c = ccw.curves_[ccw.curves_.arm.isin([e_arm, d_arm])].rename(columns={"cumulative_incidence": "estimate"})
    out.tables["rtw_curves"] = c.assign(analysis=item.id, method=item.method)
    rd = _contrast_row(s, item, "risk_difference", primary_h)
    lev = s[(s.measure == CUMULATIVE_INCIDENCE) & (s.horizon_days == primary_h)].set_index("arm")["estimate"]
    out.primary = dict(
        horizon_days=primary_h,
        estimate=rd.estimate,
        ci_low=rd.ci_low,
        ci_high=rd.ci_high,
        early=lev.get(e_arm),
        delayed=lev.get(d_arm),
        # persons behind each arm's level at the horizon: who followed the strategy, and who was
        # still followed (at risk) on that day; the console gates the numbers on these
        n_early=following[e_arm],
        n_delayed=following[d_arm],
        at_risk_early=_at_risk(c, e_arm, primary_h),
        at_risk_delayed=_at_risk(c, d_arm, primary_h),
    )
    # Balance of the two arms' weighted clones when the grace period closes. Information, not a
    # pass/fail check: the weighted arms represent the persons still off work at day G+1 under
    # each strategy, and with a real effect those two groups legitimately differ (early referral
    # sends the people it helps back to work sooner), so |SMD| < 0.1 is not expected of them.
    fe, fd = ccw.fits_[e_arm], ccw.fits_[d_arm]
    X = ccw.design_.matrix
    stacked = np.vstack([X[fe.weighted_population], X[fd.weighted_population]])
    arm_early = np.concatenate(
        [np.ones(fe.weighted_population.sum(), bool), np.zeros(fd.weighted_population.sum(), bool)]
    )
    w = np.concatenate([fe.final_weight[fe.weighted_population], fd.final_weight[fd.weighted_population]])
    for flag in (True, False):
        w[arm_early == flag] /= w[arm_early == flag].mean()  # mean 1 per arm (the scale is arbitrary)
    bal = smd_table(stacked, ccw.design_.names, arm_early, w).assign(analysis=item.id)
    out.tables["balance"] = bal
    out.tables["weights"] = pd.DataFrame({"arm": np.where(arm_early, e_arm, d_arm), "weight": w, "method": "ccw"})
    out.checks.append(
        effective_sample_checks(
            {arm: f.final_weight[f.weighted_population] for arm, f in ((e_arm, fe), (d_arm, fd))},
            min_share=a.diagnostics.min_effective_sample_share,
            analysis=item.id,
        )
    )
    wt = ccw.weights_.set_index("arm")
    rr = _contrast_row(s, item, "risk_ratio", primary_h)
    ev = e_value(rr.estimate, rr.ci_low, rr.ci_high)
    out.diagnostics.update(
        ccw_arm_balance={
            "max_abs_smd_before": _max_abs(bal["smd_before"]),
            "max_abs_smd_after": _max_abs(bal["smd_after"]),
            "day": grace + 1,
            "note": "weighted clones of the two strategies still at risk when the grace period closes; with a "
            "true effect these legitimately differ, so this is reported, not tested",
        },
        ccw_referral_score={
            "description": "model-based probability of referral within the grace period, 1 - S(G | X)",
            "equipoise_fraction": equipoise(
                ccw.referral_score_,
                bounds=tuple(a.diagnostics.equipoise_bounds),
                prevalence=float(np.mean(ccw.referral_score_)),
            )
            if ccw.referral_score_ is not None
            else None,
        },
        effective_sample_size={arm: float(wt.loc[arm, "ess"]) for arm in (e_arm, d_arm)},
        weight_truncation={
            "percentiles": list(trunc),
            "n_truncated": int(wt.loc[[e_arm, d_arm], "n_truncated"].sum()),
            "by_arm": {
                arm: {
                    "lower": wt.loc[arm, "truncated_lower"],
                    "upper": wt.loc[arm, "truncated_upper"],
                    "n_truncated": int(wt.loc[arm, "n_truncated"]),
                }
                for arm in (e_arm, d_arm)
            },
            "scale": "weights normalised to mean 1 in each arm's weighted population",
        },
        weights={arm: weight_summary(np.where(arm_early == (arm == e_arm), w, np.nan)) for arm in (e_arm, d_arm)},
        ccw_weights=ccw.weights_.to_dict("records"),
        e_value={
            "estimate": ev["estimate"],
            "ci_bound": ev["ci"],
            "measure": "risk_ratio",
            "horizon_days": primary_h,
            "risk_ratio": rr.estimate,
            "ci_low": rr.ci_low,
            "ci_high": rr.ci_high,
        },
        bootstrap={"replicates": ctx.B, "seed": ctx.seed, "failed": {"ccw": ccw.bootstrap_.failed if ccw.bootstrap_ else 0}},
        referral_model={
            "interval_days": ccw.hazard_interval_days,
            "covariates": ccw.design_.names,
            "dropped_covariates": ccw.design_.dropped,
        },
    )


def _dose_response(item: AnalysisItem, ctx: _Context, ccw: CloneCensorWeight, out: _ItemResult) -> None:
    """Return to work per delay band (n: persons whose referral fell in the band before their outcome;
    every person of the return-to-work population is cloned into every band: n_cloned)."""
    bands = [tuple(b) for b in item.settings["bands"]]
    table = dose_response_table(ccw, bands, item.horizons, arm_prefix="band ")
    r = ctx.rtw()
    ref = _referral_days(ctx, PRIMARY_REFERRAL)
    before_outcome = ref < r.analysis["time_days"].to_numpy(dtype=float)
    in_band = {label: int(np.sum(before_outcome & (ref >= lo) & (ref <= hi))) for label, lo, hi in bands}
    table = table.rename(columns={"band": "delay_category", "n": "n_cloned"})
    table["n"] = table["delay_category"].map(in_band)
    out.tables["dose_response"] = table[
        ["delay_category", "first_day", "last_day", "horizon_days", "estimate", "ci_low", "ci_high", "n", "n_cloned"]
    ]


def _subgroups(item: AnalysisItem, ctx: _Context, ccw: CloneCensorWeight, out: _ItemResult) -> None:
    """Risk difference per subgroup level at the primary horizon, with each level's arm sizes."""
    r = ctx.rtw()
    (primary_h,) = item.horizons
    sg = ccw.subgroups_.copy()
    sg["subgroup"] = sg["subgroup"].str.replace("^sub_", "", regex=True)
    out.tables["subgroup_arms"] = sg
    rd_rows = sg[(sg.measure == "risk_difference") & (sg.horizon_days == primary_h)].copy()
    exp = r.frame.get("exposure", pd.Series("delayed", index=r.frame.index)).astype("string")
    split = []
    for row in rd_rows.to_dict("records"):
        m = (r.subs[f"sub_{row['subgroup']}"] == row["level"]).to_numpy()
        split.append((int((m & (exp == "early").to_numpy()).sum()), int((m & (exp != "early").to_numpy()).sum())))
    rd_rows["n_early"] = [e for e, _ in split]
    rd_rows["n_delayed"] = [d for _, d in split]
    out.tables["subgroups"] = rd_rows[
        ["subgroup", "level", "horizon_days", "estimate", "ci_low", "ci_high", "n", "n_early", "n_delayed", "p_interaction"]
    ]


def _run_landmark(item: AnalysisItem, ctx: _Context) -> _ItemResult:
    out = _ItemResult()
    r, a = ctx.rtw(), ctx.spec.analysis
    try:
        lm = LandmarkIPTW(
            landmark_day=item.settings["landmark_day"],
            truncation_percentiles=ctx.trunc,
            l2=ctx.spec.analysis.model_l2_penalty,
            **r.common,
        ).fit(
            r.analysis, r.used
        )
    except IpmError as exc:
        out.unavailable["rtw/landmark_iptw"] = str(exc)
        return out
    rows, days_off_horizons = _with_days_off(lm.summary, lm, max(item.horizons))
    out.estimates += _estimate_rows(rows, item, days_off_horizons)
    out.tables["rtw_curves"] = lm.curves_.rename(columns={"cumulative_incidence": "estimate"}).assign(
        analysis=item.id, method=item.method
    )
    out.tables["landmark_weightings"] = pd.concat(
        [t.assign(weighting=k) for k, t in lm.summaries_.items()], ignore_index=True
    )
    w_ate = lm.weights_["ate"]
    bal = smd_table(lm.design_.matrix, lm.design_.names, lm.treated_, w_ate).assign(analysis=item.id)
    out.tables["balance"] = bal
    eq = equipoise(lm.ps_, lm.treated_, tuple(a.diagnostics.equipoise_bounds))
    out.checks.append(_checks(item, ctx, _max_abs(bal["smd_after"]), eq))
    out.diagnostics["landmark"] = {
        "landmark_day": item.settings["landmark_day"],
        "population": int(lm.population_.sum()),
        "effective_sample_size": {
            arm: effective_sample_size(w_ate[lm.treated_ == (arm == "early")]) for arm in ("early", "delayed")
        },
        "truncation": lm.truncation_,
    }
    return out


def _checks(item: AnalysisItem, ctx: _Context, max_abs_smd: float, equipoise_fraction: float) -> pd.DataFrame:
    """The pass/fail diagnostics of one weighting analysis at the spec's thresholds, keyed by its plan id."""
    d = ctx.spec.analysis.diagnostics
    return diagnostics_table(
        max_abs_smd,
        equipoise_fraction,
        smd_threshold=d.max_abs_smd,
        equipoise_threshold=d.min_equipoise_fraction,
        equipoise_bounds=tuple(d.equipoise_bounds),
        analysis=item.id,
    )


def _run_tv_cox(item: AnalysisItem, ctx: _Context) -> _ItemResult:
    out = _ItemResult()
    r = ctx.rtw()
    try:
        tv = TimeVaryingCox(alpha=ctx.alpha).fit(r.analysis, r.used)
    except IpmError as exc:
        out.unavailable["rtw/tv_cox"] = str(exc)
        return out
    out.estimates += _estimate_rows(tv.summary, item, {max(ctx.spec.analysis.horizons_days)})
    return out


def _run_naive(item: AnalysisItem, ctx: _Context) -> _ItemResult:
    if item.role in OUTCOME_ROLES:
        return _run_outcome(item, ctx)
    if item.role == "cost":
        return _run_cost(item, ctx)
    out = _ItemResult()
    r = ctx.rtw()
    try:
        group = "exposure" if "exposure" in r.frame.columns and r.frame["exposure"].notna().all() else None
        nv_frame = r.analysis.assign(exposure=r.frame["exposure"]) if group else r.analysis
        nv = NaiveComparison(grace_period_days=item.settings["grace_period_days"], **r.common).fit(
            nv_frame, group_col=group
        )
    except IpmError as exc:
        out.unavailable["rtw/naive"] = str(exc)
        return out
    rows, days_off_horizons = _with_days_off(nv.summary, nv, max(item.horizons))
    out.estimates += _estimate_rows(rows, item, days_off_horizons)
    out.tables["rtw_curves"] = nv.curves_.rename(columns={"cumulative_incidence": "estimate"}).assign(analysis=item.id, method=item.method)
    return out


def _run_cohort_description(item: AnalysisItem, ctx: _Context) -> _ItemResult:
    """Table 1 and SMDs with cohort-wide IPTW; its propensity score is also the QoL models' (ctx.ps_cohort)."""
    out = _ItemResult()
    cohort, a = ctx.inputs.cohort, ctx.spec.analysis
    n = len(cohort)
    exposure = cohort["exposure"].astype("string") if n else pd.Series([], dtype="string")
    n_early = int((exposure == "early").sum())
    if n > 0 and 0 < n_early < n:
        frame, used = _prepare_covariates(cohort, ctx.covariates)
        early = (exposure == "early").to_numpy(dtype=bool)
        design = build_design(frame, used)
        X = standardize(design.matrix)
        ps_cohort = LogisticRegression(l2=ctx.spec.analysis.model_l2_penalty).fit(X, early).predict_proba(X)
        ctx.ps_cohort = ps_cohort
        w_cohort, *_ = truncate(treatment_weights(ps_cohort, early, "ate"), ctx.trunc)
        table1, smd = _table1(cohort, used, early, w_cohort)
        out.tables["table1"], out.tables["smd"] = table1, smd[["covariate", "smd_before", "smd_after"]]
        eq_cohort = equipoise(ps_cohort, early, tuple(a.diagnostics.equipoise_bounds))
        out.tables["overlap"] = pd.DataFrame(
            {
                "arm": np.where(early, "early", "delayed"),
                "preference_score": preference_score(ps_cohort, early),
                "propensity_score": ps_cohort,
            }
        )
        out.diagnostics.update(
            propensity_model="cohort: early vs delayed referral given the baseline covariates (Table 1, overlap, "
            "quality of life)",
            max_abs_smd_before=_max_abs(smd["smd_before"]),
            max_abs_smd_after=_max_abs(smd["smd_after"]),
            equipoise_fraction=eq_cohort,
        )
        out.checks.append(_checks(item, ctx, _max_abs(smd["smd_after"]), eq_cohort))
    elif n > 0:
        out.unavailable["table1_weighting"] = "every cohort member is in one exposure group: no comparison possible"
    return out


def _run_ancova(item: AnalysisItem, ctx: _Context) -> _ItemResult:
    """IPTW x IPOW ANCOVA and responder analysis of one instrument per horizon."""
    out = _ItemResult()
    spec, cohort, qol = ctx.spec, ctx.inputs.cohort, ctx.inputs.qol
    instrument = item.outcome
    inst = INSTRUMENTS[instrument]
    window, mcid = item.settings["horizon_window_days"], item.settings["mcid"]
    model_cov, used = _prepare_covariates(cohort, ctx.covariates)
    early = (cohort["exposure"].astype("string") == "early").to_numpy(dtype=float)
    referral = pd.to_numeric(cohort["days_to_referral"], errors="coerce").to_numpy(dtype=float)
    position = pd.Series(np.arange(len(cohort)), index=cohort["person_id"].to_numpy())
    # the instrument's own baseline enters the ANCOVA as its baseline term, not twice
    own = tuple(c for c in used if c != f"baseline_{instrument}")
    if own not in ctx.designs:
        ctx.designs[own] = build_design(model_cov, list(own)).matrix
    X = ctx.designs[own]
    summary_rows, estimate_rows = [], []
    for horizon in item.horizons:
        part = qol[(qol["instrument"] == instrument) & (qol["horizon_days"] == horizon)]
        if part.empty:
            continue
        rows = position.reindex(part["person_id"].to_numpy()).to_numpy()
        keep = ~np.isnan(rows)
        y = np.full(len(cohort), np.nan)
        b = np.full(len(cohort), np.nan)
        idx = rows[keep].astype(int)
        y[idx] = pd.to_numeric(part["followup_score"], errors="coerce").to_numpy(dtype=float)[keep]
        b[idx] = pd.to_numeric(part["baseline_score"], errors="coerce").to_numpy(dtype=float)[keep]
        df = pd.DataFrame(
            {
                "early": early,
                "baseline_score": b,
                "followup_score": y,
                "referred_before_window": (referral < horizon - window).astype(float),
            }
        )
        for arm, value in (("early", 1.0), ("delayed", 0.0)):
            g = early == value
            yy = y[g & np.isfinite(y)]
            responders = None
            if mcid is not None:
                both = g & np.isfinite(y) & np.isfinite(b)
                change = (y - b) * (1 if inst.higher_is_better else -1)
                responders = float((change[both] >= mcid).mean()) if both.any() else None
            summary_rows.append(
                dict(
                    instrument=instrument,
                    horizon_days=int(horizon),
                    arm=arm,
                    n=int(yy.size),
                    n_missing=int(g.sum() - yy.size),
                    mean=float(yy.mean()) if yy.size else np.nan,
                    sd=float(yy.std(ddof=1)) if yy.size > 1 else np.nan,
                    baseline_mean=float(np.nanmean(b[g])) if np.isfinite(b[g]).any() else np.nan,
                    responder_proportion=responders,
                )
            )
        try:
            m = WeightedANCOVA(
                mcid=mcid,
                higher_is_better=inst.higher_is_better,
                truncation_percentiles=ctx.trunc,
                l2=ctx.spec.analysis.model_l2_penalty,
                alpha=ctx.alpha,
            ).fit(df, "early", [], observation_covariates=["referred_before_window"], ps=ctx.ps_cohort, design=X)
        except IpmError as exc:
            out.unavailable[f"{instrument}/{horizon}"] = str(exc)
            continue
        s = m.summary.assign(instrument=instrument, horizon_days=int(horizon))
        estimate_rows.append(s)
        for r in s[s.variant == "ipow"].to_dict("records"):
            out.estimates.append(
                dict(
                    analysis=item.id,
                    outcome=instrument,
                    method=item.method,
                    measure=r["measure"],
                    arm=r["arm"],
                    horizon_days=int(horizon),
                    estimate=r["estimate"],
                    ci_low=r["ci_low"],
                    ci_high=r["ci_high"],
                    n=r["n"],
                )
            )
    out.tables["qol_summary"] = pd.DataFrame(summary_rows)
    if estimate_rows:
        out.tables["qol_estimates"] = pd.concat(estimate_rows, ignore_index=True)
    return out


# ----------------------------------------------------------------------------------------------
# the cost analyses: mean allowed cost per strategy over the cost window, and the naive comparison


def _cost_unavailable(item: AnalysisItem, ctx: _Context) -> tuple[str, str] | None:
    """(unavailable key, reason) when a cost analysis cannot run, else None: the cohort was built without
    the cost marts, or the extract lacks allowed amounts (``marts.outcome_availability``, whose reason is
    passed on), or the outcome has no rows. A missing amount is never read as a cost of zero."""
    marts = ctx.inputs.outcomes
    if any(m not in marts for m in (*COST_MARTS, "outcome_availability")):
        return "costs", (
            "the cohort was built without the cost marts; rebuild it with "
            f"{lineage.rebuild_command(ctx.spec, ctx.inputs.db_path or 'DB')}"
        )
    availability = marts["outcome_availability"].set_index("outcome")
    if item.outcome in availability.index and not bool(availability.loc[item.outcome, "available"]):
        return f"cost/{item.outcome}", str(availability.loc[item.outcome, "detail"])
    if ctx.rows_of("cost_outcome", item.outcome).size == 0:
        return f"cost/{item.outcome}", f"no rows for {item.outcome} in marts.cost_outcome"
    return None


def _cost_data(ctx: _Context, outcome: str) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """One row per cohort person (cohort order): last observed day, complete, allowed amount, referral day
    and the referral model's covariates (prepared as for the secondary outcomes); the outcome's daily
    costs; the covariates used. Computed once per outcome (its ccw and naive items share it)."""
    if outcome not in ctx._costs:
        cohort, marts = ctx.inputs.cohort, ctx.inputs.outcomes
        frame, used = _prepare_covariates(cohort, ctx.covariates)
        frame["person_id"] = cohort["person_id"].to_numpy()
        frame["days_to_referral"] = pd.to_numeric(cohort["days_to_referral"], errors="coerce").astype("Float64")
        costs = marts["cost_outcome"]
        costs = costs[["person_id", "observed_day", "complete", "allowed_amount"]].iloc[ctx.rows_of("cost_outcome", outcome)]
        table = frame.merge(costs, on="person_id", how="left", validate="one_to_one")
        if table["observed_day"].isna().any():
            row = int(np.flatnonzero(table["observed_day"].isna().to_numpy())[0])
            raise IpmError(
                f"marts.cost_outcome: no {outcome} row for the cohort's row {row}; rebuild the cohort with "
                f"{lineage.rebuild_command(ctx.spec, ctx.inputs.db_path or 'DB')}"
            )
        daily = marts["cost_daily"]
        ctx._costs[outcome] = (table, daily.iloc[ctx.rows_of("cost_daily", outcome)], used)
    return ctx._costs[outcome]


def _cost_caveat(item: AnalysisItem, ctx: _Context) -> str | None:
    """What ``marts.outcome_availability`` says about an available cost outcome (None: nothing)."""
    availability = ctx.inputs.outcomes["outcome_availability"].set_index("outcome")
    detail = availability["detail"].get(item.outcome)
    return None if detail is None or pd.isna(detail) else str(detail)


#: The columns of a cost outcome's person table that its clone-censor weights depend on: cost outcomes
#: whose tables agree on them share one fit.
_COST_FOLLOWUP = ["observed_day", "complete", "days_to_referral"]


def _fit_costs(ctx: _Context, items: list[AnalysisItem]) -> dict[str, tuple[MultiOutcomeCloneCensorCost | None, str | None]]:
    """One :class:`~ipm_outcomes.estimators.MultiOutcomeCloneCensorCost` fit per set of runnable items of one
    :func:`~ipm_outcomes.plan.cost_fit_groups` group whose persons' follow-up, completeness and referral day
    agree (the marts give every cost outcome the person's follow-up, so normally one fit serves them all):
    ``{item id: (fit, None) or (None, reason)}``. Same seed as a fit per outcome: the same resamples."""
    out: dict[str, tuple[MultiOutcomeCloneCensorCost | None, str | None]] = {}
    sets: list[tuple[pd.DataFrame, list[AnalysisItem]]] = []
    for item in items:
        if _cost_unavailable(item, ctx) is not None:
            continue
        try:
            table = _cost_data(ctx, item.outcome)[0]
        except IpmError as exc:
            out[item.id] = (None, str(exc))
            continue
        same = next((group for ref, group in sets if ref[_COST_FOLLOWUP].equals(table[_COST_FOLLOWUP])), None)
        if same is None:
            sets.append((table, [item]))
        else:
            same.append(item)
    for table, group in sets:
        s, (horizon,) = group[0].settings, group[0].horizons
        try:
            model = MultiOutcomeCloneCensorCost(
                grace_period_days=s["grace_period_days"], horizon_days=horizon, method=s["estimator"],
                interval_days=s["interval_days"], loss_model=s["loss_model"], l2=ctx.spec.analysis.model_l2_penalty,
                n_bootstrap=ctx.B, seed=ctx.seed, workers=ctx.workers, alpha=ctx.alpha,
            ).fit(table, {i.outcome: _cost_data(ctx, i.outcome)[1] for i in group}, _cost_data(ctx, group[0].outcome)[2],
                  referral_col="days_to_referral", amount_col="allowed_amount")
            result: tuple[MultiOutcomeCloneCensorCost | None, str | None] = (model, None)
        except IpmError as exc:
            result = (None, str(exc))
        out.update({i.id: result for i in group})
    return out


def _run_cost(item: AnalysisItem, ctx: _Context) -> _ItemResult:
    """A cost outcome's mean per strategy and difference (clone-censor-weight with inverse probability of
    censoring weighting, one :class:`~ipm_outcomes.estimators.MultiOutcomeCloneCensorCost` fit shared by the
    cost outcomes), or the naive comparison by eventual referral time
    (:class:`~ipm_outcomes.estimators.NaiveCostComparison`): rows of ``cost_estimates``."""
    out = _ItemResult()
    s, (horizon,) = item.settings, item.horizons
    if item.method == "ccw_cost":
        model, failed = ctx.cost_fit(item)
        if model is None:
            out.unavailable[item.id] = failed or "not estimated"
            return out
        summary = model.summary[model.summary["outcome"] == item.outcome].drop(columns="outcome")
        stem = f"/{item.outcome}"
    else:
        try:
            table, daily, _ = _cost_data(ctx, item.outcome)
            model = NaiveCostComparison(
                grace_period_days=s["grace_period_days"], horizon_days=horizon, method=s["estimator"],
                interval_days=s["interval_days"], n_bootstrap=ctx.B, seed=ctx.seed, workers=ctx.workers,
                alpha=ctx.alpha,
            ).fit(table, daily, referral_col="days_to_referral", amount_col="allowed_amount")
        except IpmError as exc:
            out.unavailable[item.id] = str(exc)
            return out
        summary, stem = model.summary, ""
    keys = {("mean_cost", "early"): f"mean{stem}/early", ("mean_cost", "delayed"): f"mean{stem}/delayed",
            ("mean_cost_difference", None): f"difference{stem}/early/delayed"}
    rows = summary.reset_index(drop=True).assign(
        analysis=item.id, outcome=item.outcome, method=item.method, units=COST_UNITS,
        arm=[a if isinstance(a, str) else None for a in summary["arm"]],
    ).drop(columns=["contrast"])
    rows["se"] = [
        float(model.bootstrap_.standard_error(keys[m, a])) if model.bootstrap_ is not None else np.nan
        for m, a in zip(rows["measure"], rows["arm"], strict=True)
    ]
    out.tables["cost_estimates"] = rows
    if item.method == "ccw_cost":
        out.diagnostics[f"cost_analysis/{item.id}"] = {
            "units": COST_UNITS,
            "estimator": f"Bang and Tsiatis {s['estimator']} inverse probability of censoring weighted mean "
            f"({s['interval_days']}-day intervals), clone-censor weights from the referral model"
            + (f" (one referral model, loss curve and bootstrap shared by {', '.join(model.outcomes_)}: the same "
               "persons and follow-up)" if len(model.outcomes_) > 1 else ""),
            "loss_model": s["loss_model"],
            # an available outcome's caveat (all-claims cost without pharmacy claims: medical claims only)
            "caveat": _cost_caveat(item, ctx),
            "covariates": model.design_.names,
            "bootstrap_failed": model.bootstrap_.failed if model.bootstrap_ else 0,
        }
    return out


#: The runner of each method of the plan.
RUNNERS = {
    "cohort_iptw": _run_cohort_description,
    "ccw": _run_ccw,
    "landmark_iptw": _run_landmark,
    "tv_cox": _run_tv_cox,
    "naive": _run_naive,
    "ancova_iptw": _run_ancova,
    "ccw_cost": _run_cost,
}


def _runnable(item: AnalysisItem, ctx: _Context, unavailable: dict[str, str]) -> bool:
    """Whether an item can run; when its population or outcome cannot be analysed at all, the reason is
    recorded once in ``unavailable`` (under "rtw", "qol", "secondary_outcomes" or ``<kind>/<outcome>``),
    not once per item."""
    n = len(ctx.inputs.cohort)
    if item.role == "calibration":
        return n > 0  # too few negative controls is the step's own "not calibrated", not a crash
    if item.role == "cost":
        why = _cost_unavailable(item, ctx) if n else None
        if why is not None:
            unavailable.setdefault(*why)
        return n > 0 and why is None
    if item.role in OUTCOME_ROLES:
        if n == 0:
            return False
        why = _outcome_unavailable(item, ctx)
        if why is not None:
            key, reason = why
            unavailable.setdefault(key, reason)
            return False
        return True
    if item.population == "rtw" and item.outcome == "rtw":
        return n > 0 and "rtw" not in unavailable
    if item.method == "ancova_iptw":
        if n == 0 or "qol" in unavailable:
            return False
        qol = ctx.inputs.qol
        if qol.empty or qol["followup_score"].notna().sum() == 0:
            unavailable["qol"] = "no follow-up patient-reported outcome scores in the cohort"
            return False
        if ctx.ps_cohort is None:
            unavailable["qol"] = "no comparison possible: every cohort member is in one exposure group"
            return False
    return True


def _order_tables(tables: dict[str, pd.DataFrame], plan: list[AnalysisItem]) -> None:
    """Rows of the tables several analyses add to, in reading order: the sensitivity table by referral
    definition (the primary's first), then grace period, so the primary sits among the other grace periods."""
    sens = tables.get("sensitivity")
    if sens is None or len(sens) < 2:
        return
    items = {item.id: item for item in plan}
    definitions = list(dict.fromkeys(item.settings["referral_definition"] for item in plan if item.method == "ccw"))

    def key(analysis_id: str) -> tuple[int, int]:
        settings = items[analysis_id].settings
        return definitions.index(settings["referral_definition"]), settings["grace_period_days"]

    order = sorted(range(len(sens)), key=lambda k: key(sens["analysis"].iloc[k]))
    tables["sensitivity"] = sens.iloc[order].reset_index(drop=True)


# ----------------------------------------------------------------------------------------------
# the cohort outcome analyses: secondary outcomes, their naive comparisons, negative controls

#: Day of the negative-control estimate that feeds empirical calibration: the last horizon.
NEGATIVE_CONTROL_MEASURE = "log_risk_ratio"


def _outcome_mart(item: AnalysisItem) -> str:
    return "negative_control_outcome" if item.role == "negative_control" else "secondary_outcome"


def _outcome_unavailable(item: AnalysisItem, ctx: _Context) -> tuple[str, str] | None:
    """(unavailable key, reason) when a cohort outcome analysis cannot run, else None: the cohort was
    built without the outcome marts, the extract lacks the outcome's input (``marts.outcome_availability``),
    or the outcome has no rows."""
    marts = ctx.inputs.outcomes
    if any(m not in marts for m in OUTCOME_MARTS):
        return "secondary_outcomes", (
            "the cohort was built without the secondary-outcome marts; rebuild it with "
            f"{lineage.rebuild_command(ctx.spec, ctx.inputs.db_path or 'DB')}"
        )
    kind = "negative_control" if item.role == "negative_control" else "secondary"
    availability = marts["outcome_availability"].set_index("outcome")
    row = "negative_controls" if item.role == "negative_control" else item.outcome
    if row in availability.index and not bool(availability.loc[row, "available"]):
        return f"{kind}/{item.outcome}", str(availability.loc[row, "detail"])
    rows = ctx.rows_of(_outcome_mart(item), item.outcome)
    if rows.size == 0:
        return f"{kind}/{item.outcome}", f"no rows for {item.outcome} in marts.{_outcome_mart(item)}"
    if item.settings.get("population") == OPIOID_NAIVE and marts[_outcome_mart(item)]["opioid_naive"].iloc[rows].isna().all():
        return f"{kind}/{item.id}", "opioid-naive status is unknown (no pharmacy data)"
    return None


def _fit_key(item: AnalysisItem) -> str:
    """The column stem of an item's outcome in the outcome frame: its clone-censor-weight item's id."""
    return "secondary_" + item.id.removeprefix("naive_") if item.method == "naive" else item.id


@dataclass
class _OutcomeFits:
    """The multi-outcome fits: clone-censor-weight (every runnable item) and naive (the secondary items),
    keyed by :func:`_fit_key`; ``referral``: each cohort person's referral day (NaN: never); ``populations``:
    each key's population mask; ``failed``: the reason when a fit could not run."""

    ccw: MultiOutcomeCloneCensorWeight | None
    naive: MultiOutcomeNaive | None
    referral: np.ndarray
    populations: dict[str, np.ndarray]
    failed: str | None = None


def _outcome_frame(ctx: _Context, items: list[AnalysisItem]) -> tuple[pd.DataFrame, list[str], dict[str, np.ndarray]]:
    """One row per cohort person (cohort order): follow-up, referral day, model covariates and, per item
    key, ``time/<key>``, ``event/<key>``, ``pop/<key>``; the covariates used and the population masks."""
    cohort, followup = ctx.inputs.cohort, ctx.spec.cohort.followup_days
    censor = pd.to_numeric(cohort["censor_day"], errors="coerce").to_numpy(dtype=float)
    death = pd.to_numeric(cohort["death_day"], errors="coerce").to_numpy(dtype=float)
    follow = np.fmin(censor, death)  # death ends follow-up; fmin ignores a missing death day
    frame, used = _prepare_covariates(cohort, ctx.covariates)
    frame["followup_days"] = np.minimum(follow, followup)
    frame["referral_day"] = pd.to_numeric(cohort["days_to_referral"], errors="coerce").astype("Float64")
    position = pd.Series(np.arange(len(cohort)), index=cohort["person_id"].to_numpy())
    populations = {}
    columns = {}
    for item in items:
        key = _fit_key(item)
        if key in populations:
            continue
        mart = ctx.inputs.outcomes[_outcome_mart(item)]
        part = mart.iloc[ctx.rows_of(_outcome_mart(item), item.outcome)]
        rows = position.reindex(part["person_id"].to_numpy()).to_numpy()
        keep = ~np.isnan(rows)
        idx = rows[keep].astype(int)
        time = np.zeros(len(cohort))
        event = np.zeros(len(cohort), dtype=np.int64)
        pop = np.zeros(len(cohort), bool)
        time[idx] = np.minimum(pd.to_numeric(part["time_days"]).to_numpy(dtype=float)[keep], followup)
        event[idx] = pd.to_numeric(part["event"]).to_numpy(dtype=np.int64)[keep]
        member = part["in_population"].fillna(False).to_numpy(dtype=bool)
        if item.settings.get("population") == OPIOID_NAIVE:
            member &= part["opioid_naive"].fillna(False).to_numpy(dtype=bool)
        pop[idx] = member[keep]
        columns.update({f"time/{key}": time.astype(np.int64), f"event/{key}": event, f"pop/{key}": pop})
        populations[key] = pop
    frame = pd.concat([frame, pd.DataFrame(columns, index=frame.index)], axis=1)
    return frame, used, populations


def _fit_outcomes(ctx: _Context) -> _OutcomeFits:
    """One multi-outcome clone-censor-weight fit for every runnable cohort outcome analysis, and one naive
    comparison for the secondary ones; both bootstrapped with the study's replicates and seed."""
    items = [i for i in outcome_group(ctx.plan) if _outcome_unavailable(i, ctx) is None]
    referral = pd.to_numeric(ctx.inputs.cohort["days_to_referral"], errors="coerce").to_numpy(dtype=float)
    frame, used, populations = _outcome_frame(ctx, items)
    a = ctx.spec.analysis
    horizons = tuple(int(h) for h in a.horizons_days)
    common = dict(grace_period_days=ctx.spec.exposure.grace_period_days, horizons=horizons, max_day=max(horizons),
                  n_bootstrap=ctx.B, seed=ctx.seed, workers=ctx.workers, alpha=ctx.alpha)

    def spec_of(keys):
        return {k: (f"time/{k}", f"event/{k}", f"pop/{k}") for k in keys}

    ccw_keys = list(dict.fromkeys(_fit_key(i) for i in items if i.method == "ccw"))
    naive_keys = list(dict.fromkeys(_fit_key(i) for i in items if i.method == "naive"))
    primary_item = next(i for i in items if i.method == "ccw") if ccw_keys else None
    try:
        ccw = naive = None
        if ccw_keys:
            ccw = MultiOutcomeCloneCensorWeight(
                strategies=primary_item.strategies, contrasts=[primary_item.contrast], l2=a.model_l2_penalty, **common
            ).fit(frame, spec_of(ccw_keys), used)
        if naive_keys:
            naive = MultiOutcomeNaive(**common).fit(frame, spec_of(naive_keys))
    except IpmError as exc:
        return _OutcomeFits(None, None, referral, populations, failed=str(exc))
    return _OutcomeFits(ccw, naive, referral, populations)


def _run_outcome(item: AnalysisItem, ctx: _Context) -> _ItemResult:
    """A secondary outcome's estimates and curves (clone-censor-weight or naive), or a negative control's
    log risk ratio at the last horizon with its bootstrap standard error and whether calibration can use it."""
    out = _ItemResult()
    fits = ctx.outcome_fits()
    model = fits.ccw if item.method == "ccw" else fits.naive
    if model is None:
        out.unavailable[item.id] = fits.failed or "not estimated"
        return out
    if fits.ccw is not None:
        out.diagnostics["outcome_analyses"] = {
            "referral_model": "one pooled logistic referral model on the cohort's follow-up (ending at referral, "
            "death or loss, whatever the outcomes), shared by every secondary and negative-control outcome",
            "covariates": fits.ccw.design_.names,
            "weights": "untruncated (analysis.weight_truncation_percentiles applies to the return-to-work analyses)",
            "bootstrap_failed": fits.ccw.bootstrap_.failed if fits.ccw.bootstrap_ else 0,
        }
    key = _fit_key(item)
    s = model.summary[model.summary["outcome"] == key]
    pop = fits.populations[key]
    ref = fits.referral[pop]
    e_arm, d_arm = item.contrast
    if item.method == "ccw":
        # persons who followed each strategy (every person has a clone in both): the disclosure unit
        arm_n = {arm: _persons_following(ref, item.strategies[arm]) for arm in (e_arm, d_arm)}
    else:
        early = ref <= item.settings["grace_period_days"]  # NaN (never) compares False
        arm_n = {e_arm: int(early.sum()), d_arm: int((~early).sum())}
    if item.role == "negative_control":
        out.tables["negative_controls"] = pd.DataFrame([_negative_control_row(item, s, int(pop.sum()))])
        return out
    rows = s.assign(
        analysis=item.id, outcome=item.outcome, method=item.method,
        n=[arm_n[a] if isinstance(a, str) else n for a, n in zip(s["arm"], s["n"], strict=True)],
    ).drop(columns=["contrast"])
    out.tables["secondary_estimates"] = rows
    curves = model.curves_[model.curves_["outcome"] == key]
    out.tables["secondary_curves"] = curves.rename(columns={"cumulative_incidence": "estimate"}).assign(
        analysis=item.id, outcome=item.outcome, method=item.method
    )
    return out


def _negative_control_row(item: AnalysisItem, s: pd.DataFrame, n: int) -> dict:
    """A negative control's row of ``negative_controls`` from its rows of the multi-outcome summary ``s``: the log
    risk ratio at the last horizon with its bootstrap standard error, the events per arm, and whether
    calibration can use it."""
    e_arm, d_arm = item.contrast
    h = max(item.horizons)
    row = s[(s["measure"] == NEGATIVE_CONTROL_MEASURE) & (s["horizon_days"] == h)].iloc[0]
    events = s[(s["measure"] == CUMULATIVE_INCIDENCE) & (s["horizon_days"] == h)].set_index("arm")["n_events"]
    reason = None
    if events.get(e_arm, 0) == 0 or events.get(d_arm, 0) == 0:
        reason = f"too few events: none in the {e_arm if events.get(e_arm, 0) == 0 else d_arm} arm by day {h}"
    elif not (np.isfinite(row["estimate"]) and np.isfinite(row["se"]) and row["se"] > 0):
        reason = "too few events: the log risk ratio or its bootstrap standard error is not finite"
    return dict(
        analysis=item.id, outcome=item.outcome, horizon_days=h, log_rr=row["estimate"], se=row["se"],
        ci_low=row["ci_low"], ci_high=row["ci_high"], n=n, events_early=int(events.get(e_arm, 0)),
        events_delayed=int(events.get(d_arm, 0)), usable=reason is None, reason=reason,
    )


# ----------------------------------------------------------------------------------------------
# empirical calibration of the risk ratios with the negative controls


def calibrate_contrasts(item: AnalysisItem, controls: pd.DataFrame, contrasts: pd.DataFrame) -> _ItemResult:
    """The calibration step on its inputs: fit the empirical null to the negative controls and calibrate the
    contrasts (:class:`ipm_outcomes.calibration.EmpiricalCalibration`).

    Parameters
    ----------
    item : the plan's calibration item (:func:`ipm_outcomes.plan.calibration_item`).
    controls : one row per negative control, as the ``negative_controls`` table (``outcome``, ``log_rr``, ``se``,
        ``events_early``, ``events_delayed``).
    contrasts : one row per calibrated risk ratio: ``analysis``, ``outcome``, ``horizon_days``, ``log_rr``, ``se``
        (bootstrap standard error of the log risk ratio).

    Returns
    -------
    _ItemResult
        The ``calibrated_estimates`` table (one row per contrast; with too few usable controls the calibrated
        columns are empty and the uncalibrated ones as they are), the ``empirical_calibration`` diagnostics
        entry (the null, its standard errors, usable and excluded controls with reasons, EASE), the EASE check
        (only when calibrated) and, when not calibrated, the reason under ``unavailable[item.id]``.
    """
    out = _ItemResult()
    cal = EmpiricalCalibration(min_controls=MIN_NEGATIVE_CONTROLS, ease_threshold=EASE_THRESHOLD).fit(
        controls, log_rr="log_rr", se="se", name="outcome", events=["events_early", "events_delayed"]
    )
    notes = item.settings.get("note", {})
    table = cal.calibrate(contrasts.reset_index(drop=True), log_rr="log_rr", se="se")
    out.tables["calibrated_estimates"] = pd.DataFrame({
        "analysis": table["analysis"], "outcome": table["outcome"], "measure": item.settings["measure"],
        "horizon_days": table["horizon_days"], "log_rr": table["log_rr"], "se": table["se"],
        "estimate": table["rr"], "ci_low": table["ci_low"], "ci_high": table["ci_high"], "p": table["p"],
        "calibrated_estimate": table["calibrated_rr"], "calibrated_ci_low": table["calibrated_ci_low"],
        "calibrated_ci_high": table["calibrated_ci_high"], "calibrated_p": table["calibrated_p"],
        "calibrated": bool(cal.calibrated_), "note": [notes.get(a) for a in table["analysis"]],
    })
    nul = cal.null_
    out.diagnostics[item.id] = {
        "calibrated": bool(cal.calibrated_),
        "reason": cal.reason_,
        "null": {"mean": nul.mean, "sd": nul.sd, "mean_se": nul.mean_se, "sd_se": nul.sd_se} if nul else None,
        "n_controls": cal.n_controls_,
        "n_usable": cal.n_usable_,
        "excluded": cal.exclusions_.to_dict("records"),
        "ease": cal.ease_ if cal.calibrated_ else None,
        "ease_threshold": EASE_THRESHOLD,
        "scale": "log risk ratio at the last horizon (negative controls); calibrated intervals are Wald intervals "
        "on the log scale from the bootstrap standard error, shifted by the null's mean and widened by its spread",
        "notes": notes,
    }
    if cal.calibrated_:
        out.checks.append(pd.DataFrame([dict(
            analysis=item.id, diagnostic="ease", value=cal.ease_,
            threshold=f"expected absolute systematic error (EASE) < {EASE_THRESHOLD:g}",
            passed=bool(cal.ease_passes_), note=cal.reason_,
        )]))
    else:
        out.unavailable[item.id] = cal.reason_
    return out


def _run_calibration(item: AnalysisItem, ctx: _Context) -> _ItemResult:
    """Empirical calibration: the negative controls and risk ratios named in the item's settings, from the fits
    they were estimated with (the shared multi-outcome fit, the primary clone-censor-weight fit)."""
    by_id = {i.id: i for i in ctx.plan}
    fits = ctx.outcome_fits() if any(i.role in OUTCOME_ROLES for i in ctx.plan) else None
    controls, contrasts = [], []
    for cid in item.settings["negative_controls"]:
        nc = by_id[cid]
        if fits is None or fits.ccw is None or _outcome_unavailable(nc, ctx) is not None:
            continue
        s = fits.ccw.summary[fits.ccw.summary["outcome"] == _fit_key(nc)]
        controls.append(_negative_control_row(nc, s, int(fits.populations[_fit_key(nc)].sum())))
    for aid in item.settings["calibrates"]:
        target = by_id[aid]
        horizons = [int(h) for h in item.settings["horizons"][aid]]
        if target.role in OUTCOME_ROLES:
            if fits is None or fits.ccw is None or _outcome_unavailable(target, ctx) is not None:
                continue
            s = fits.ccw.summary
            rows = s[(s["outcome"] == _fit_key(target)) & (s["measure"] == NEGATIVE_CONTROL_MEASURE)
                     & s["horizon_days"].isin(horizons)]
            contrasts += [dict(analysis=aid, outcome=target.outcome, horizon_days=int(r.horizon_days),
                               log_rr=r.estimate, se=r.se) for r in rows.itertuples()]
        else:
            if len(ctx.inputs.cohort) == 0 or "rtw" in ctx.inputs.build.load.absent_tables or len(ctx.inputs.rtw) == 0:
                continue
            model, _why = ctx.ccw(target)
            if model is None:
                continue
            e, d = target.contrast
            key = f"rr/{e}/{d}"
            at = [list(model.settings_.horizons).index(h) for h in horizons]
            log_rr = bootstrap.log_ratio(np.asarray(model.values_[key], dtype=float)[at])
            se = (model.bootstrap_.log_standard_error(key)[at] if model.bootstrap_ is not None
                  else np.full(len(at), np.nan))
            contrasts += [dict(analysis=aid, outcome=target.outcome, horizon_days=h, log_rr=b, se=v)
                          for h, b, v in zip(horizons, log_rr, se, strict=True)]
    columns = ["outcome", "log_rr", "se", "events_early", "events_delayed"]
    return calibrate_contrasts(
        item, pd.DataFrame(controls, columns=columns),
        pd.DataFrame(contrasts, columns=["analysis", "outcome", "horizon_days", "log_rr", "se"]),
    )


RUNNERS["empirical_calibration"] = _run_calibration
