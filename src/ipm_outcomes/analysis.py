"""The analysis stage: read the marts, run every method, write ``results.json`` and tidy tables.

``ipm-outcomes analyze --db PATH [--spec FILE] --out DIR`` calls :func:`run`. It reads
``marts.cohort``, ``marts.rtw_outcome``, ``marts.qol_outcome`` and ``marts.attrition`` (built by
``ipm-outcomes cohort``) and the load provenance from the DuckDB file, and writes into DIR:

* ``results.json``: study, spec and data fingerprints, attrition, cohort counts, every estimate
  (contrasts with their arm levels beside them), diagnostics, the list of result tables with their
  grain, and what could not be estimated and why (an empty cohort is a finding, not a crash);
* one Parquet file per result table (listed in ``results.json`` under ``tables``).

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
from .diagnostics import (
    SMD_COLUMNS,
    diagnostics_table,
    e_value,
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
    CloneCensorWeight,
    LandmarkIPTW,
    NaiveComparison,
    TimeVaryingCox,
    WeightedANCOVA,
)
from .estimators import bootstrap
from .estimators._common import build_design, standardize
from .estimators.ccw import CUMULATIVE_INCIDENCE
from .estimators.dose_response import band_strategies
from .estimators.iptw import treatment_weights, truncate
from .estimators.propensity import LogisticRegression
from .report_data import RESULTS_SCHEMA_VERSION
from .spec import StudySpec, spec_sha256
from .vocabulary import INSTRUMENTS, QOL_OUTCOMES

#: Cohort columns treated as categories in every model (one indicator per level).
CATEGORICAL = ("sex", "payer_type", "index_year")
MARTS = ("cohort", "rtw_outcome", "qol_outcome", "attrition")

#: Grain of each result table (written into results.json).
TABLE_GRAINS = {
    "estimates": "one row per outcome per method per measure per arm (null for contrasts) per horizon",
    "rtw_curves": "one row per method per arm per day 0..followup: cumulative incidence of RTW with 95% band, "
    "competing-event incidence, 1-KM (competing events censored) and numbers at risk",
    "table1": "one row per baseline characteristic (per level) per exposure group",
    "smd": "one row per covariate (level): standardized mean difference, cohort early vs delayed, before and "
    "after IPTW",
    "balance": "one row per analysis per covariate (level): SMD before and after that analysis's weights",
    "referral_timing": "one row per day after index with at least one first IPM contact: persons",
    "delay_categories": "one row per referral-delay category: persons",
    "dose_response": "one row per referral-delay band per horizon: CCW cumulative incidence of RTW under 'referral "
    "within the band'; n = persons referred in the band, n_cloned = persons cloned into it",
    "subgroups": "one row per subgroup level: CCW risk difference of RTW at the primary horizon, interaction p",
    "subgroup_arms": "one row per subgroup level per arm (or contrast) per horizon: CCW estimates",
    "sensitivity": "one row per sensitivity analysis per measure at the primary horizon",
    "landmark_weightings": "one row per weighting (ate, att, overlap) per measure per arm (or contrast) per horizon",
    "qol_summary": "one row per instrument per horizon per exposure group: observed follow-up scores",
    "qol_estimates": "one row per instrument per horizon per variant (ipow, complete_case) per measure per arm",
    "overlap": "one row per cohort person: exposure group, propensity and preference score (cohort propensity model)",
    "weights": "one row per clone weighted in the primary analysis (at risk when the grace period closes): arm and "
    "final truncated weight, normalised to mean 1 per arm",
    "diagnostics": "one row per diagnostic per analysis: value, threshold, pass/fail",
}


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
    finally:
        con.close()
    return _Inputs(frames["cohort"], frames["rtw_outcome"], frames["qol_outcome"], frames["attrition"], build)


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


def _estimate_rows(summary: pd.DataFrame, outcome: str, method: str, max_horizon: int) -> list[dict]:
    """results.json estimates from an estimator's summary: days-off measures only at the last horizon,
    hazard ratios without a horizon (they span the whole follow-up)."""
    rows = []
    for r in summary.to_dict("records"):
        measure = r["measure"]
        h = r.get("horizon_days")
        if measure in ("rmst_difference", "restricted_mean_days_off_work") and h != max_horizon:
            continue
        if measure == "hazard_ratio":
            h = None
        rows.append(
            dict(
                outcome=outcome,
                method=method,
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
    labels = [label for label, _, _ in spec.delay_categories()]
    counts = cohort["delay_category"].astype("string").value_counts() if n else pd.Series(dtype=int)
    tables["delay_categories"] = pd.DataFrame(
        {"delay_category": labels, "n": [int(counts.get(label, 0)) for label in labels]}
    )
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

    steps = 8
    # BLAS runs single-threaded: the matrices here are small (tens of columns), where threads cost
    # more than they save on a shared machine, and the parallelism is across bootstrap workers.
    with StageProgress("analysis", progress, steps) as bar, threadpool_limits(limits=1), bootstrap.progress_reporter(
        bar.replicates
    ):
        # -- Table 1 with cohort-wide IPTW (also the QoL propensity model) --------------------------
        ps_cohort = None
        if n > 0 and 0 < n_early < n:
            frame, used = _prepare_covariates(cohort, covariates)
            early = (exposure == "early").to_numpy(dtype=bool)
            design = build_design(frame, used)
            X = standardize(design.matrix)
            ps_cohort = LogisticRegression().fit(X, early).predict_proba(X)
            w_cohort, *_ = truncate(treatment_weights(ps_cohort, early, "ate"), trunc)
            table1, smd = _table1(cohort, used, early, w_cohort)
            tables["table1"], tables["smd"] = table1, smd[["covariate", "smd_before", "smd_after"]]
            eq_cohort = equipoise(ps_cohort, early, tuple(a.diagnostics.equipoise_bounds))
            tables["overlap"] = pd.DataFrame(
                {
                    "arm": np.where(early, "early", "delayed"),
                    "preference_score": preference_score(ps_cohort, early),
                    "propensity_score": ps_cohort,
                }
            )
            diagnostics.update(
                propensity_model="cohort: early vs delayed referral given the baseline covariates (Table 1, overlap, "
                "quality of life)",
                max_abs_smd_before=_max_abs(smd["smd_before"]),
                max_abs_smd_after=_max_abs(smd["smd_after"]),
                equipoise_fraction=eq_cohort,
            )
            checks.append(
                diagnostics_table(
                    _max_abs(smd["smd_after"]),
                    eq_cohort,
                    smd_threshold=a.diagnostics.max_abs_smd,
                    equipoise_threshold=a.diagnostics.min_equipoise_fraction,
                    equipoise_bounds=tuple(a.diagnostics.equipoise_bounds),
                    analysis="cohort_iptw",
                )
            )
        elif n > 0:
            unavailable["table1_weighting"] = "every cohort member is in one exposure group: no comparison possible"
        bar.step("cohort description")

        # -- return to work ------------------------------------------------------------------------
        rtw_ok = n > 0 and len(inputs.rtw) > 0
        if "ehr_work_status" in inputs.build.load.absent_tables:
            unavailable["rtw"] = "no ehr_work_status table in the extract: return to work cannot be estimated"
            rtw_ok = False
        elif n > 0 and len(inputs.rtw) == 0:
            unavailable["rtw"] = "the return-to-work population is empty (nobody off work at index)"
        if rtw_ok:
            rtw_results = _rtw(spec, inputs, covariates, horizons, primary_h, alpha, trunc, B, seed, workers, bar)
            estimates += rtw_results["estimates"]
            tables.update(rtw_results["tables"])
            unavailable.update(rtw_results["unavailable"])
            checks += rtw_results["checks"]
            diagnostics.update(rtw_results["diagnostics"])
            primary = rtw_results["primary"]
        else:
            for _ in range(5):
                bar.step("return to work unavailable")

        # -- quality of life -------------------------------------------------------------------------
        if n > 0 and "qol" not in unavailable:
            q = _qol(spec, inputs, covariates, ps_cohort, trunc, alpha)
            estimates += q["estimates"]
            tables.update(q["tables"])
            unavailable.update(q["unavailable"])
        bar.step("quality of life")

    if checks:
        table = pd.concat(checks, ignore_index=True)
        tables["diagnostics"] = table
        diagnostics["checks"] = [
            dict(
                name=f"{r['analysis']}:{r['diagnostic'].replace(' ', '_')}",
                label=f"{r['diagnostic'].capitalize()} ({_ANALYSIS_LABELS.get(r['analysis'], r['analysis'])})",
                value=r["value"],
                threshold=r["threshold"],
                passed=r["passed"],
                analysis=r["analysis"],
                note=r["note"],
            )
            for r in table.to_dict("records")
        ]

    # -- write ------------------------------------------------------------------------------------
    tables["estimates"] = pd.DataFrame(
        estimates, columns=["outcome", "method", "measure", "arm", "horizon_days", "estimate", "ci_low", "ci_high", "n"]
    )
    written = {}
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        path = out_dir / f"{name}.parquet"
        frame.reset_index(drop=True).to_parquet(path, index=False)
        written[name] = {"file": path.name, "grain": TABLE_GRAINS.get(name, ""), "rows": len(frame)}
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
        },
        "provenance": {**_provenance(spec, inputs, B, seed, workers), "data_source": _data_source(inputs.build.load, inputs.cohort)},
    }
    results_path = out_dir / "results.json"
    results_path.write_text(json.dumps(_clean(results), indent=2, allow_nan=False) + "\n")
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


_ANALYSIS_LABELS = {
    "ccw": "clone-censor-weight, primary",
    "landmark_iptw": "propensity of referral within the grace period among persons still off work at its end",
    "cohort_iptw": "cohort propensity model: Table 1 and quality of life",
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


def _rtw(spec, inputs, covariates, horizons, primary_h, alpha, trunc, B, seed, workers, bar) -> dict:
    """Every return-to-work method: CCW (primary, grace-period and delay-band strategies, subgroups),
    CCW with the procedure-only referral definition, landmark IPTW, time-varying Cox, naive."""
    a = spec.analysis
    grace = spec.exposure.grace_period_days
    max_h = max(horizons)
    out = {"estimates": [], "tables": {}, "unavailable": {}, "checks": [], "diagnostics": {}, "primary": None}
    cohort = inputs.cohort
    wanted = [
        *covariates,
        "days_to_referral_procedure_only",
        "exposure",
        "age",
        *a.subgroups,
        f"baseline_{a.severity_instrument}",
    ]
    keep = [c for c in dict.fromkeys(wanted) if c in cohort.columns and c != "person_id"]
    frame = inputs.rtw[["person_id", "time_days", "event", "referral_day"]].merge(
        cohort[["person_id", *keep]], on="person_id", how="left", validate="one_to_one"
    )
    model_cov, used = _prepare_covariates(frame, covariates)
    subs = _subgroup_columns(spec, frame)
    analysis = pd.concat([frame[["time_days", "event", "referral_day"]], model_cov, subs], axis=1)
    analysis["time_days"] = pd.to_numeric(analysis["time_days"]).clip(upper=spec.cohort.followup_days)
    sub_cols = list(subs.columns)
    common = dict(horizons=horizons, max_day=max_h, n_bootstrap=B, seed=seed, workers=workers, alpha=alpha)

    # clone-censor-weight: primary, other grace periods and delay bands share one referral model
    strategies = {"early": (0, grace), "delayed": (grace + 1, None)}
    contrasts = [("early", "delayed")]
    for g in a.sensitivity_grace_periods:
        if g != grace:
            strategies[f"early_{g}"], strategies[f"delayed_{g}"] = (0, g), (g + 1, None)
            contrasts.append((f"early_{g}", f"delayed_{g}"))
    bands = band_strategies(spec.delay_categories())
    bands = {label: w for label, w in bands.items() if w[0] <= max_h}
    strategies.update({f"band {label}": w for label, w in bands.items()})
    ccw = None
    try:
        ccw = CloneCensorWeight(strategies=strategies, contrasts=contrasts, truncation_percentiles=trunc, **common).fit(
            analysis, used, subgroup_cols=sub_cols
        )
    except IpmError as exc:
        out["unavailable"]["rtw/ccw"] = str(exc)
    bar.step("clone-censor-weight")
    curves = []
    sensitivity = []
    if ccw is not None:
        s = ccw.summary
        primary_rows = s[(s.arm.isin(["early", "delayed"])) | (s.contrast == "early vs delayed")]
        # Every person is cloned into both arms, so the estimator's n counts clones (the whole population
        # twice). A reader's "n early" is the persons who actually followed the strategy, and the 11-person
        # rule applies to them: replace the arm sizes with those.
        ref_all = pd.to_numeric(analysis["referral_day"], errors="coerce").to_numpy(dtype=float)
        following = {arm: _persons_following(ref_all, strategies[arm]) for arm in ("early", "delayed")}
        primary_rows = primary_rows.assign(
            n=[following.get(arm, n) if isinstance(arm, str) else n for arm, n in zip(primary_rows["arm"], primary_rows["n"])]
        )
        out["estimates"] += _estimate_rows(primary_rows, "rtw", "ccw", max_h)
        c = ccw.curves_[ccw.curves_.arm.isin(["early", "delayed"])].rename(columns={"cumulative_incidence": "estimate"})
        curves.append(c.assign(method="ccw"))
        rd = s[
            (s.measure == "risk_difference") & (s.contrast == "early vs delayed") & (s.horizon_days == primary_h)
        ].iloc[0]
        lev = s[(s.measure == CUMULATIVE_INCIDENCE) & (s.horizon_days == primary_h)].set_index("arm")["estimate"]
        out["primary"] = dict(
            horizon_days=primary_h,
            estimate=rd.estimate,
            ci_low=rd.ci_low,
            ci_high=rd.ci_high,
            early=lev.get("early"),
            delayed=lev.get("delayed"),
            # persons behind each arm's level at the horizon: who followed the strategy, and who was
            # still followed (at risk) on that day; the console gates the numbers on these
            n_early=following["early"],
            n_delayed=following["delayed"],
            at_risk_early=_at_risk(c, "early", primary_h),
            at_risk_delayed=_at_risk(c, "delayed", primary_h),
        )
        for g in a.sensitivity_grace_periods:
            e, d = ("early", "delayed") if g == grace else (f"early_{g}", f"delayed_{g}")
            r = s[
                (s.contrast == f"{e} vs {d}") & (s.horizon_days == primary_h) & (s.measure == "risk_difference")
            ].iloc[0]
            sensitivity.append(
                dict(
                    analysis=f"grace_{g}",
                    label=f"Grace period {g} days" + (" (primary)" if g == grace else ""),
                    measure="risk_difference",
                    horizon_days=primary_h,
                    estimate=r.estimate,
                    ci_low=r.ci_low,
                    ci_high=r.ci_high,
                    n=r.n,
                    n_early=_persons_following(ref_all, strategies[e]),
                    n_delayed=_persons_following(ref_all, strategies[d]),
                )
            )
        # dose-response over delay bands (n: persons whose referral fell in the band; every person
        # of the RTW population is cloned into every band)
        dose = []
        ref_days = pd.to_numeric(analysis["referral_day"], errors="coerce").astype(float).to_numpy()
        before_outcome = ref_days < analysis["time_days"].to_numpy(dtype=float)
        for label, (lo, hi) in bands.items():
            in_band = int(np.sum(before_outcome & (ref_days >= lo) & (ref_days <= hi)))
            for h in horizons:
                if h < hi:
                    continue  # the band's window is not closed yet at this horizon
                r = s[(s.arm == f"band {label}") & (s.measure == CUMULATIVE_INCIDENCE) & (s.horizon_days == h)]
                if not r.empty:
                    r = r.iloc[0]
                    dose.append(
                        dict(
                            delay_category=label,
                            first_day=lo,
                            last_day=hi,
                            horizon_days=h,
                            estimate=r.estimate,
                            ci_low=r.ci_low,
                            ci_high=r.ci_high,
                            n=in_band,
                            n_cloned=r.n,
                        )
                    )
        out["tables"]["dose_response"] = pd.DataFrame(dose)
        # subgroups
        sg = ccw.subgroups_.copy()
        sg["subgroup"] = sg["subgroup"].str.replace("^sub_", "", regex=True)
        out["tables"]["subgroup_arms"] = sg
        rd_rows = sg[(sg.measure == "risk_difference") & (sg.horizon_days == primary_h)].copy()
        exp = frame.get("exposure", pd.Series("delayed", index=frame.index)).astype("string")
        split = []
        for r in rd_rows.to_dict("records"):
            m = (subs[f"sub_{r['subgroup']}"] == r["level"]).to_numpy()
            split.append((int((m & (exp == "early").to_numpy()).sum()), int((m & (exp != "early").to_numpy()).sum())))
        rd_rows["n_early"] = [e for e, _ in split]
        rd_rows["n_delayed"] = [d for _, d in split]
        out["tables"]["subgroups"] = rd_rows[
            [
                "subgroup",
                "level",
                "horizon_days",
                "estimate",
                "ci_low",
                "ci_high",
                "n",
                "n_early",
                "n_delayed",
                "p_interaction",
            ]
        ]
        # Balance of the two arms' weighted clones when the grace period closes. Information, not a
        # pass/fail check: the weighted arms represent the persons still off work at day G+1 under
        # each strategy, and with a real effect those two groups legitimately differ (early referral
        # sends the people it helps back to work sooner), so |SMD| < 0.1 is not expected of them.
        fe, fd = ccw.fits_["early"], ccw.fits_["delayed"]
        X = ccw.design_.matrix
        stacked = np.vstack([X[fe.weighted_population], X[fd.weighted_population]])
        arm_early = np.concatenate(
            [np.ones(fe.weighted_population.sum(), bool), np.zeros(fd.weighted_population.sum(), bool)]
        )
        w = np.concatenate([fe.final_weight[fe.weighted_population], fd.final_weight[fd.weighted_population]])
        for flag in (True, False):
            w[arm_early == flag] /= w[arm_early == flag].mean()  # mean 1 per arm (the scale is arbitrary)
        bal = smd_table(stacked, ccw.design_.names, arm_early, w).assign(analysis="ccw")
        balance = [bal]
        out["tables"]["weights"] = pd.DataFrame(
            {"arm": np.where(arm_early, "early", "delayed"), "weight": w, "method": "ccw"}
        )
        wt = ccw.weights_.set_index("arm")
        rr = s[(s.measure == "risk_ratio") & (s.contrast == "early vs delayed") & (s.horizon_days == primary_h)].iloc[0]
        ev = e_value(rr.estimate, rr.ci_low, rr.ci_high)
        out["diagnostics"].update(
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
            effective_sample_size={arm: float(wt.loc[arm, "ess"]) for arm in ("early", "delayed")},
            weight_truncation={
                "percentiles": list(trunc),
                "n_truncated": int(wt.loc[["early", "delayed"], "n_truncated"].sum()),
                "by_arm": {
                    arm: {
                        "lower": wt.loc[arm, "truncated_lower"],
                        "upper": wt.loc[arm, "truncated_upper"],
                        "n_truncated": int(wt.loc[arm, "n_truncated"]),
                    }
                    for arm in ("early", "delayed")
                },
                "scale": "weights normalised to mean 1 in each arm's weighted population",
            },
            weights={
                arm: weight_summary(np.where(arm_early == (arm == "early"), w, np.nan)) for arm in ("early", "delayed")
            },
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
            bootstrap={
                "replicates": B,
                "seed": seed,
                "failed": {"ccw": ccw.bootstrap_.failed if ccw.bootstrap_ else 0},
            },
            referral_model={
                "interval_days": ccw.hazard_interval_days,
                "covariates": ccw.design_.names,
                "dropped_covariates": ccw.design_.dropped,
            },
        )
    else:
        balance = []

    # procedure-only referral definition
    if ccw is not None and "days_to_referral_procedure_only" in frame.columns:
        try:
            proc = analysis.assign(
                referral_day=pd.to_numeric(frame["days_to_referral_procedure_only"], errors="coerce")
            )
            proc_ref = proc["referral_day"].to_numpy(dtype=float)
            m = CloneCensorWeight(grace_period_days=grace, truncation_percentiles=trunc, **common).fit(proc, used)
            r = m.summary[(m.summary.measure == "risk_difference") & (m.summary.horizon_days == primary_h)].iloc[0]
            sensitivity.append(
                dict(
                    analysis="procedure_only",
                    label="Referral = first IPM procedure only",
                    measure="risk_difference",
                    horizon_days=primary_h,
                    estimate=r.estimate,
                    ci_low=r.ci_low,
                    ci_high=r.ci_high,
                    n=r.n,
                    n_early=_persons_following(proc_ref, (0, grace)),
                    n_delayed=_persons_following(proc_ref, (grace + 1, None)),
                )
            )
        except IpmError as exc:
            out["unavailable"]["rtw/ccw_procedure_only"] = str(exc)
    bar.step("procedure-only referral")
    if sensitivity:
        out["tables"]["sensitivity"] = pd.DataFrame(sensitivity)

    # landmark
    try:
        lm = LandmarkIPTW(landmark_day=spec.landmark_day, truncation_percentiles=trunc, **common).fit(analysis, used)
        out["estimates"] += _estimate_rows(lm.summary, "rtw", "landmark_iptw", max_h)
        curves.append(lm.curves_.rename(columns={"cumulative_incidence": "estimate"}).assign(method="landmark_iptw"))
        out["tables"]["landmark_weightings"] = pd.concat(
            [t.assign(weighting=k) for k, t in lm.summaries_.items()], ignore_index=True
        )
        w_ate = lm.weights_["ate"]
        bal = smd_table(lm.design_.matrix, lm.design_.names, lm.treated_, w_ate).assign(analysis="landmark_iptw")
        balance.append(bal)
        eq = equipoise(lm.ps_, lm.treated_, tuple(a.diagnostics.equipoise_bounds))
        out["checks"].append(
            diagnostics_table(
                _max_abs(bal["smd_after"]),
                eq,
                smd_threshold=a.diagnostics.max_abs_smd,
                equipoise_threshold=a.diagnostics.min_equipoise_fraction,
                equipoise_bounds=tuple(a.diagnostics.equipoise_bounds),
                analysis="landmark_iptw",
            )
        )
        out["diagnostics"]["landmark"] = {
            "landmark_day": spec.landmark_day,
            "population": int(lm.population_.sum()),
            "effective_sample_size": {
                arm: effective_sample_size(w_ate[lm.treated_ == (arm == "early")]) for arm in ("early", "delayed")
            },
            "truncation": lm.truncation_,
        }
    except IpmError as exc:
        out["unavailable"]["rtw/landmark_iptw"] = str(exc)
    bar.step("landmark")

    # time-varying Cox
    try:
        tv = TimeVaryingCox(alpha=alpha).fit(analysis, used)
        out["estimates"] += _estimate_rows(tv.summary, "rtw", "tv_cox", max_h)
    except IpmError as exc:
        out["unavailable"]["rtw/tv_cox"] = str(exc)
    bar.step("time-varying Cox")

    # naive (biased on purpose)
    try:
        group = "exposure" if "exposure" in frame.columns and frame["exposure"].notna().all() else None
        nv_frame = analysis.assign(exposure=frame["exposure"]) if group else analysis
        nv = NaiveComparison(grace_period_days=grace, **common).fit(nv_frame, group_col=group)
        out["estimates"] += _estimate_rows(nv.summary, "rtw", "naive", max_h)
        curves.append(nv.curves_.rename(columns={"cumulative_incidence": "estimate"}).assign(method="naive"))
    except IpmError as exc:
        out["unavailable"]["rtw/naive"] = str(exc)
    bar.step("naive comparison")

    if curves:
        cols = [
            "method",
            "arm",
            "day",
            "estimate",
            "ci_low",
            "ci_high",
            "n_at_risk",
            "weighted_at_risk",
            "cumulative_incidence_competing",
            "one_minus_km",
        ]
        out["tables"]["rtw_curves"] = pd.concat(curves, ignore_index=True)[cols]
    if balance:
        out["tables"]["balance"] = pd.concat(balance, ignore_index=True)[["analysis", *SMD_COLUMNS]]
    return out


def _qol(spec, inputs, covariates, ps_cohort, trunc, alpha) -> dict:
    """IPTW x IPOW ANCOVA and responder analysis per instrument per horizon."""
    out = {"estimates": [], "tables": {}, "unavailable": {}}
    qol = inputs.qol
    cohort = inputs.cohort
    if qol.empty or qol["followup_score"].notna().sum() == 0:
        out["unavailable"]["qol"] = "no follow-up patient-reported outcome scores in the cohort"
        return out
    if ps_cohort is None:
        out["unavailable"]["qol"] = "no comparison possible: every cohort member is in one exposure group"
        return out
    window = spec.outcomes.qol.horizon_window_days
    mcid = spec.analysis.mcid.model_dump()
    model_cov, used = _prepare_covariates(cohort, covariates)
    early = (cohort["exposure"].astype("string") == "early").to_numpy(dtype=float)
    referral = pd.to_numeric(cohort["days_to_referral"], errors="coerce").to_numpy(dtype=float)
    position = pd.Series(np.arange(len(cohort)), index=cohort["person_id"].to_numpy())
    designs = {}
    summary_rows, estimate_rows = [], []
    groups = {key: part for key, part in qol.groupby(["instrument", "horizon_days"], sort=False)}
    for instrument in QOL_OUTCOMES:
        # the instrument's own baseline enters the ANCOVA as its baseline term, not twice
        own = [c for c in used if c != f"baseline_{instrument}"]
        if tuple(own) not in designs:
            designs[tuple(own)] = build_design(model_cov, own).matrix
        X = designs[tuple(own)]
        for horizon in spec.outcomes.qol.horizons_days:
            part = groups.get((instrument, horizon))
            if part is None or part.empty:
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
                if instrument in mcid:
                    both = g & np.isfinite(y) & np.isfinite(b)
                    change = (y - b) * (1 if INSTRUMENTS[instrument].higher_is_better else -1)
                    responders = float((change[both] >= mcid[instrument]).mean()) if both.any() else None
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
                    mcid=mcid.get(instrument),
                    higher_is_better=INSTRUMENTS[instrument].higher_is_better,
                    truncation_percentiles=trunc,
                    alpha=alpha,
                ).fit(df, "early", [], observation_covariates=["referred_before_window"], ps=ps_cohort, design=X)
            except IpmError as exc:
                out["unavailable"][f"{instrument}/{horizon}"] = str(exc)
                continue
            s = m.summary.assign(instrument=instrument, horizon_days=int(horizon))
            estimate_rows.append(s)
            for r in s[s.variant == "ipow"].to_dict("records"):
                out["estimates"].append(
                    dict(
                        outcome=instrument,
                        method="ancova_iptw",
                        measure=r["measure"],
                        arm=r["arm"],
                        horizon_days=int(horizon),
                        estimate=r["estimate"],
                        ci_low=r["ci_low"],
                        ci_high=r["ci_high"],
                        n=r["n"],
                    )
                )
    out["tables"]["qol_summary"] = pd.DataFrame(summary_rows)
    if estimate_rows:
        out["tables"]["qol_estimates"] = pd.concat(estimate_rows, ignore_index=True)
    return out
