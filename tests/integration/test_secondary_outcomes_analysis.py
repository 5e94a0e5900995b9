"""The cohort outcome analyses end to end: secondary outcomes and negative controls from a synthetic
extract into the results tables, and an outcome whose input the extract lacks is unavailable, not zero."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ipm_outcomes import analysis, cohort, ingest, synth
from ipm_outcomes.calibration import expected_absolute_systematic_error, fit_null
from ipm_outcomes.plan import build_plan, negative_control_outcomes
from ipm_outcomes.report_data import TABLES, load_results
from ipm_outcomes.spec import load_spec
from ipm_outcomes.vocabulary import COST_UNITS

SECONDARY = ("new_depression_anxiety", "new_sleep_disorder", "long_term_opioid", "long_term_opioid_in_opioid_naive",
             "lumbar_surgery", "ed_visit_lbp")


def _study(root: Path, persons: int, seed: int, replicates: int, drop: tuple[str, ...] = (), edit=None):
    spec_file = root / "spec.toml"
    spec_file.write_text(f'extends = "default"\n[analysis]\nbootstrap_replicates = {replicates}\n')
    spec = load_spec(spec_file)
    synth.generate(root / "extract", persons=persons, seed=seed, file_format="parquet")
    for table in drop:
        (root / "extract" / f"{table}.parquet").unlink()
    if edit is not None:
        edit(root / "extract")
    ingest.load_extract(root / "extract", root / "db.duckdb")
    cohort.build(spec, root / "db.duckdb")
    summary = analysis.run(spec, root / "db.duckdb", root / "results", workers=2)
    return spec, summary, json.loads((root / "results" / "results.json").read_text())


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("outcomes_small")
    return (root, *_study(root, persons=3000, seed=5, replicates=8))


def test_every_secondary_outcome_has_its_estimates_at_every_horizon(small):
    root, spec, summary, results = small
    est = pd.read_parquet(root / "results" / "secondary_estimates.parquet")
    assert list(est.columns) == TABLES["secondary_estimates"].column_names
    assert not est.duplicated(list(TABLES["secondary_estimates"].key)).any()
    for unit in SECONDARY:
        for method, prefix in (("ccw", "secondary"), ("naive", "naive")):
            rows = est[est["analysis"] == f"{prefix}_{unit}"]
            assert set(rows["method"]) == {method}
            got = {(m, a if isinstance(a, str) else None, h) for m, a, h in zip(rows["measure"], rows["arm"], rows["horizon_days"])}
            want = {(m, arm, h) for h in (90, 180, 365) for m, arm in (
                ("cumulative_incidence", "early"), ("cumulative_incidence", "delayed"), ("risk_difference", None),
                ("risk_ratio", None), ("log_risk_ratio", None))}
            assert got == want, unit
            ccw_rows = rows[rows["measure"] == "risk_difference"]
            assert ccw_rows["estimate"].notna().all() and (ccw_rows["ci_low"] <= ccw_rows["ci_high"]).all()
    # the opioid-naive analysis is of fewer persons than the whole cohort's
    pop = est[(est["measure"] == "risk_difference") & (est["horizon_days"] == 365)].set_index("analysis")["n"]
    assert pop["secondary_long_term_opioid_in_opioid_naive"] < pop["secondary_long_term_opioid"] == summary.n
    # arm sizes are persons who followed the strategy, which add up to the population
    arms = est[(est["analysis"] == "secondary_lumbar_surgery") & (est["measure"] == "cumulative_incidence")
               & (est["horizon_days"] == 365)]
    assert arms["n"].sum() == summary.n
    curves = pd.read_parquet(root / "results" / "secondary_curves.parquet")
    assert len(curves) == len(SECONDARY) * 2 * 2 * 366  # items x (ccw, naive) x arms x days 0..365


def test_negative_controls_give_one_log_risk_ratio_each_with_its_standard_error(small):
    root, spec, summary, results = small
    nc = pd.read_parquet(root / "results" / "negative_controls.parquet")
    assert list(nc["outcome"]) == negative_control_outcomes(spec)
    assert (nc["horizon_days"] == 365).all()
    usable = nc[nc["usable"]]
    assert len(usable) >= 20 and usable["se"].gt(0).all() and np.isfinite(usable["log_rr"]).all()
    assert (usable["events_early"] > 0).all() and (usable["events_delayed"] > 0).all()
    assert nc.loc[~nc["usable"], "reason"].str.startswith("too few events").all()
    # the report's reader reads them through the data model
    data = load_results(root / "results")
    assert set(data.tables) >= {"secondary_estimates", "secondary_curves", "negative_controls"}
    assert {i.id for i in build_plan(spec)} == {i["id"] for i in results["plan"]}


def test_the_calibration_step_writes_its_table_null_and_ease_check(small):
    root, spec, summary, results = small
    plan = build_plan(spec)
    item = next(i for i in plan if i.id == "empirical_calibration")
    cal = pd.read_parquet(root / "results" / "calibrated_estimates.parquet")
    assert list(cal.columns) == TABLES["calibrated_estimates"].column_names
    # the primary at the primary horizon, each secondary clone-censor-weight analysis at every horizon
    want = [("primary", 180)] + [(f"secondary_{u}", h) for u in SECONDARY for h in (90, 180, 365)]
    assert list(zip(cal["analysis"], cal["horizon_days"])) == want
    assert item.settings["calibrates"] == list(dict.fromkeys(cal["analysis"]))
    # the uncalibrated ratios are the estimates' own, and their log with its bootstrap SE the secondary table's
    est = pd.read_parquet(root / "results" / "secondary_estimates.parquet")
    log_rr = est[(est["method"] == "ccw") & (est["measure"] == "log_risk_ratio")].set_index(["analysis", "horizon_days"])
    sec = cal.iloc[1:].set_index(["analysis", "horizon_days"])
    np.testing.assert_allclose(sec["log_rr"], log_rr.loc[sec.index, "estimate"], rtol=1e-12)
    np.testing.assert_allclose(sec["se"], log_rr.loc[sec.index, "se"], rtol=1e-12)
    np.testing.assert_allclose(cal["estimate"], np.exp(cal["log_rr"]), rtol=1e-12)
    primary_rr = next(e for e in results["estimates"] if e["analysis"] == "primary" and e["measure"] == "risk_ratio"
                      and e["horizon_days"] == 180)
    np.testing.assert_allclose(cal["estimate"].iloc[0], primary_rr["estimate"], rtol=1e-12)
    assert cal["se"].gt(0).all() and cal["calibrated"].all()
    assert cal["calibrated_ci_low"].le(cal["calibrated_estimate"]).all()
    assert cal["calibrated_estimate"].le(cal["calibrated_ci_high"]).all()
    assert cal["note"].iloc[0].startswith("calibrated with negative controls estimated in the whole cohort")
    # the null and EASE in the diagnostics, fitted to the usable negative controls
    nc = pd.read_parquet(root / "results" / "negative_controls.parquet")
    d = results["diagnostics"]["empirical_calibration"]
    assert d["calibrated"] and (d["n_controls"], d["n_usable"]) == (len(nc), int(nc["usable"].sum()))
    null = fit_null(nc.loc[nc["usable"], "log_rr"], nc.loc[nc["usable"], "se"])
    np.testing.assert_allclose([d["null"]["mean"], d["null"]["sd"]], [null.mean, null.sd], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(d["ease"], expected_absolute_systematic_error(null), rtol=1e-9, atol=1e-12)
    check = next(c for c in results["diagnostics"]["checks"] if c["name"] == "empirical_calibration:ease")
    assert check["threshold"] == "expected absolute systematic error (EASE) < 0.25" and check["passed"] == (d["ease"] < 0.25)
    assert summary.diagnostics_passed["empirical_calibration:ease"] == check["passed"]
    # and the report's reader reads them back
    data = load_results(root / "results")
    assert "calibrated_estimates" in data.tables
    assert any(c.name == "empirical_calibration:ease" for c in data.checks)


def test_without_pharmacy_claims_long_term_opioid_is_unavailable_with_the_reason(tmp_path):
    spec, summary, results = _study(tmp_path, persons=1500, seed=3, replicates=0, drop=("pharmacy_claim",))
    assert results["unavailable"]["secondary/long_term_opioid"] == "the extract has no pharmacy_claim rows"
    est = pd.read_parquet(tmp_path / "results" / "secondary_estimates.parquet")
    assert "long_term_opioid" not in set(est["outcome"])  # never a zero
    assert {"new_depression_anxiety", "lumbar_surgery", "ed_visit_lbp"} <= set(est["outcome"])
    # all-claims cost is of medical claims only, and says so; back-pain cost (medical claims) has no caveat
    caveats = {o: results["diagnostics"][f"cost_analysis/{o}"]["caveat"] for o in ("cost_total_365", "cost_lbp_365")}
    assert caveats == {"cost_total_365": "medical claims only: the extract has no pharmacy_claim rows", "cost_lbp_365": None}


COSTS = ("cost_total_365", "cost_lbp_365")


def test_each_cost_outcome_has_both_arms_and_the_difference_in_its_units(small):
    root, spec, summary, results = small
    cost = pd.read_parquet(root / "results" / "cost_estimates.parquet")
    assert list(cost.columns) == TABLES["cost_estimates"].column_names
    assert (cost["units"] == COST_UNITS).all() and (cost["horizon_days"] == spec.cohort.followup_days).all()
    for outcome in COSTS:
        for method, analysis_id in (("ccw_cost", outcome), ("naive", f"naive_{outcome}")):
            rows = cost[cost["analysis"] == analysis_id]
            assert set(rows["method"]) == {method} and set(rows["outcome"]) == {outcome}
            by = {(m, a if isinstance(a, str) else None): r for m, a, r in zip(rows["measure"], rows["arm"], rows.itertuples())}
            assert set(by) == {("mean_cost", "early"), ("mean_cost", "delayed"), ("mean_cost_difference", None)}
            early, delayed, diff = by["mean_cost", "early"], by["mean_cost", "delayed"], by["mean_cost_difference", None]
            assert diff.estimate == pytest.approx(early.estimate - delayed.estimate, rel=1e-12)
            for r in (early, delayed, diff):
                assert r.ci_low <= r.estimate <= r.ci_high and r.se > 0, (analysis_id, r)
            assert early.estimate > 0 and delayed.estimate > 0
            # arm sizes are persons (who followed the strategy, or are in the eventual-referral group)
            assert early.n + delayed.n == diff.n == summary.n
    means = cost[cost["measure"] == "mean_cost"].set_index(["analysis", "arm"])["estimate"]
    for arm in ("early", "delayed"):  # back-pain related costs are a part of all costs
        assert 0 < means["cost_lbp_365", arm] < means["cost_total_365", arm]
    # the naive comparison is a different estimate from the same data, not a copy
    assert means["naive_cost_total_365", "early"] != means["cost_total_365", "early"]
    # the written results validate and read back through the data model
    data = load_results(root / "results")
    pd.testing.assert_frame_equal(data.tables["cost_estimates"], cost)
    assert {i.id for i in data.plan if i.role == "cost"} == {*COSTS, *(f"naive_{o}" for o in COSTS)}
    assert "cost/cost_total_365" not in results["unavailable"] and results["intervals"]["ccw_cost"]
    assert results["diagnostics"]["cost_analysis/cost_total_365"]["bootstrap_failed"] == 0
    assert results["diagnostics"]["cost_analysis/cost_total_365"]["caveat"] is None  # pharmacy claims present



def test_the_cost_outcomes_share_one_fit_that_equals_a_fit_per_outcome(small):
    """The two clone-censor-weight cost items are one MultiOutcomeCloneCensorCost fit (the persons' follow-up
    is the same for both); their rows equal what CloneCensorCost gives for each outcome alone, as the
    analysis fitted them before they were shared (same data, settings and seed)."""
    from ipm_outcomes.estimators import CloneCensorCost

    root, spec, summary, results = small
    cost = pd.read_parquet(root / "results" / "cost_estimates.parquet")
    inputs = analysis._read(spec, root / "db.duckdb")
    a = spec.analysis
    ctx = analysis._Context(spec, inputs, build_plan(spec), list(a.covariates), 1 - a.ci_level, (0, 100),
                            a.bootstrap_replicates, spec.study.seed, 1)  # fmt: skip
    items = {i.id: i for i in ctx.plan}
    shared = {ctx.cost_fit(items[o])[0] for o in COSTS}
    assert len(shared) == 1 and shared.pop().outcomes_ == COSTS
    for outcome in COSTS:
        table, daily, used = analysis._cost_data(ctx, outcome)
        s = items[outcome].settings
        one = CloneCensorCost(grace_period_days=s["grace_period_days"], horizon_days=spec.cohort.followup_days,
                              method=s["estimator"], interval_days=s["interval_days"], loss_model=s["loss_model"],
                              l2=a.model_l2_penalty, n_bootstrap=a.bootstrap_replicates, seed=spec.study.seed, workers=1,
                              alpha=1 - a.ci_level).fit(table, daily, used, referral_col="days_to_referral",
                                                                amount_col="allowed_amount")  # fmt: skip
        rows = cost[cost["analysis"] == outcome].reset_index(drop=True)
        np.testing.assert_allclose(rows[["estimate", "ci_low", "ci_high"]].to_numpy(float),
                                   one.summary[["estimate", "ci_low", "ci_high"]].to_numpy(float), rtol=1e-10)
        assert list(rows["n"]) == list(one.summary["n"])


def _no_allowed_amounts(extract: Path) -> None:
    for table in ("medical_claim", "pharmacy_claim"):
        path = extract / f"{table}.parquet"
        frame = pd.read_parquet(path)
        frame["allowed_amount"] = pd.Series([None] * len(frame), dtype="float64")
        frame.to_parquet(path, index=False)


def test_without_allowed_amounts_the_costs_are_unavailable_with_the_reason(tmp_path):
    spec, summary, results = _study(tmp_path, persons=1500, seed=3, replicates=0, edit=_no_allowed_amounts)
    for outcome in COSTS:
        assert results["unavailable"][f"cost/{outcome}"] == "no medical_claim line has an allowed_amount"
    assert "cost_estimates" not in results["tables"]  # no rows, never a cost of zero
    assert not (tmp_path / "results" / "cost_estimates.parquet").exists()
    assert "new_depression_anxiety" in set(pd.read_parquet(tmp_path / "results" / "secondary_estimates.parquet")["outcome"])
    data = load_results(tmp_path / "results")
    assert "cost_estimates" not in data.tables and data.unavailable["cost/cost_lbp_365"]
