"""The analysis plan's empirical-calibration step on hand-made negative controls and contrasts: the calibrated
values are those of :mod:`ipm_outcomes.calibration`'s functions, too few controls leave the estimates
uncalibrated with the reason, and the plan item names what it reads."""

from __future__ import annotations

import numpy as np
import numpy.testing as npt
import pandas as pd
import pytest
from scipy import stats

from ipm_outcomes.analysis import calibrate_contrasts
from ipm_outcomes.calibration import (
    calibrate_confidence_interval,
    calibrate_p,
    expected_absolute_systematic_error,
    fit_null,
    null_to_error_model,
)
from ipm_outcomes.estimators.bootstrap import BootstrapResult, log_ratio
from ipm_outcomes.plan import CALIBRATION_ID, build_plan, primary
from ipm_outcomes.report_data import conform_table
from ipm_outcomes.spec import load_spec

CONTROLS = pd.DataFrame({
    "outcome": ["nc_a", "nc_b", "nc_c", "nc_d", "nc_e", "nc_f", "nc_g"],
    "log_rr": [0.10, -0.05, 0.22, 0.03, -0.12, 0.18, 0.40],
    "se": [0.08, 0.10, 0.12, 0.07, 0.09, 0.15, 0.20],
    "events_early": [30, 25, 18, 40, 22, 12, 0],  # nc_g: no events in the early arm, excluded
    "events_delayed": [35, 20, 21, 44, 30, 15, 9],
})
CONTRASTS = pd.DataFrame({
    "analysis": ["primary", "secondary_lumbar_surgery", "secondary_lumbar_surgery"],
    "outcome": ["rtw", "lumbar_surgery", "lumbar_surgery"],
    "horizon_days": [180, 90, 365],
    "log_rr": [0.35, -0.20, -0.45],
    "se": [0.06, 0.11, 0.09],
})


@pytest.fixture(scope="module")
def item():
    return next(i for i in build_plan(load_spec()) if i.id == CALIBRATION_ID)


def test_calibrated_values_are_those_of_the_calibration_functions(item):
    out = calibrate_contrasts(item, CONTROLS, CONTRASTS)
    used = CONTROLS.iloc[:6]
    null = fit_null(used["log_rr"], used["se"])
    assert null.sd > 0  # the controls spread beyond their random error: a real widening to check
    ci = calibrate_confidence_interval(CONTRASTS["log_rr"], CONTRASTS["se"], null_to_error_model(null))
    p = calibrate_p(null, CONTRASTS["log_rr"], CONTRASTS["se"])
    t = out.tables["calibrated_estimates"]
    assert list(t["analysis"]) == list(CONTRASTS["analysis"]) and list(t["horizon_days"]) == [180, 90, 365]
    npt.assert_allclose(t["calibrated_estimate"], np.exp(ci["log_rr"]), rtol=1e-12)
    npt.assert_allclose(t["calibrated_ci_low"], np.exp(ci["log_lb"]), rtol=1e-12)
    npt.assert_allclose(t["calibrated_ci_high"], np.exp(ci["log_ub"]), rtol=1e-12)
    npt.assert_allclose(t["calibrated_p"], p, rtol=1e-12)
    # calibrated interval of the null's model: b - mu +- z sqrt(sigma^2 + s^2)
    z = stats.norm.ppf(0.975)
    half = z * np.sqrt(null.sd ** 2 + CONTRASTS["se"] ** 2)
    npt.assert_allclose(np.log(t["calibrated_ci_high"]), CONTRASTS["log_rr"] - null.mean + half, atol=1e-9)
    # the uncalibrated columns: the Wald interval and p-value of the same log ratio and standard error
    npt.assert_allclose(t["estimate"], np.exp(CONTRASTS["log_rr"]), rtol=1e-12)
    npt.assert_allclose(t["ci_low"], np.exp(CONTRASTS["log_rr"] - z * CONTRASTS["se"]), rtol=1e-12)
    npt.assert_allclose(t["p"], 2 * stats.norm.sf(np.abs(CONTRASTS["log_rr"] / CONTRASTS["se"])), rtol=1e-12)
    assert t["calibrated"].all() and (t["measure"] == "risk_ratio").all()
    assert t["note"].iloc[0].startswith("calibrated with negative controls estimated in the whole cohort")
    assert t["note"].iloc[1:].isna().all()
    conform_table("calibrated_estimates", t, "calibrated_estimates.parquet")  # as the results data model declares it
    d = out.diagnostics[CALIBRATION_ID]
    assert (d["n_controls"], d["n_usable"]) == (7, 6)
    assert d["excluded"] == [{"exclusion": "no_events", "reason": "had no events in an arm", "n_controls": 1}]
    npt.assert_allclose([d["null"]["mean"], d["null"]["sd"], d["null"]["mean_se"], d["null"]["sd_se"]],
                        [null.mean, null.sd, null.mean_se, null.sd_se], rtol=1e-12)
    ease = expected_absolute_systematic_error(null)
    npt.assert_allclose(d["ease"], ease, rtol=1e-12)
    (check,) = out.checks
    row = check.iloc[0]
    assert (row["analysis"], row["diagnostic"], row["threshold"]) == (CALIBRATION_ID, "ease", "expected absolute systematic error (EASE) < 0.25")
    npt.assert_allclose(row["value"], ease, rtol=1e-12)
    assert bool(row["passed"]) == (ease < 0.25)
    assert out.unavailable == {}


def test_a_biased_null_fails_the_ease_check(item):
    biased = CONTROLS.assign(log_rr=CONTROLS["log_rr"] + 0.4)
    out = calibrate_contrasts(item, biased, CONTRASTS)
    row = out.checks[0].iloc[0]
    assert row["value"] > 0.25 and not bool(row["passed"])
    # the calibrated ratio moves towards the null by the controls' bias
    t = out.tables["calibrated_estimates"]
    assert (t["calibrated_estimate"] < t["estimate"]).all()


def test_too_few_controls_with_events_leave_the_estimates_uncalibrated(item):
    few = CONTROLS.assign(events_delayed=[35, 20, 21, 0, 0, 0, 9])  # nc_a..nc_c usable; nc_g has none early
    out = calibrate_contrasts(item, few, CONTRASTS)
    reason = "not calibrated: only 3 of 7 negative controls had events in both arms (at least 5 are needed)"
    assert out.unavailable == {CALIBRATION_ID: reason}
    assert out.checks == []
    t = out.tables["calibrated_estimates"]
    assert not t["calibrated"].any()
    assert t[["calibrated_estimate", "calibrated_ci_low", "calibrated_ci_high", "calibrated_p"]].isna().all().all()
    npt.assert_allclose(t["estimate"], np.exp(CONTRASTS["log_rr"]), rtol=1e-12)
    d = out.diagnostics[CALIBRATION_ID]
    assert d["calibrated"] is False and d["reason"] == reason and d["null"] is None and d["ease"] is None
    # no negative control at all (their outcome marts absent): the same, with its own reason
    none = calibrate_contrasts(item, CONTROLS.iloc[:0], CONTRASTS)
    assert none.unavailable == {CALIBRATION_ID: "not calibrated: no negative-control estimates"}


def test_the_plan_item_runs_after_and_names_what_it_calibrates():
    plan = build_plan(load_spec())
    ids = [i.id for i in plan]
    item = plan[ids.index(CALIBRATION_ID)]
    assert (item.method, item.role) == ("empirical_calibration", "calibration")
    controls = [i.id for i in plan if i.role == "negative_control"]
    secondary = [i.id for i in plan if i.role == "secondary_outcome" and i.method == "ccw"]
    assert item.settings["negative_controls"] == controls and len(controls) >= 20
    assert item.settings["calibrates"] == [primary(plan).id, *secondary]
    assert all(ids.index(i) < ids.index(CALIBRATION_ID) for i in [*controls, *item.settings["calibrates"]])
    assert item.settings["horizons"]["primary"] == [180]
    assert item.settings["horizons"]["secondary_lumbar_surgery"] == [90, 180, 365]


def test_log_standard_error_is_the_standard_deviation_of_the_logged_replicates():
    reps = np.array([[1.2, 0.0], [0.8, 2.0], [1.5, 0.5], [np.nan, 1.0]])
    boot = BootstrapResult({"rr": reps}, 4, 0, 0)
    want = [np.std(np.log([1.2, 0.8, 1.5]), ddof=1), np.std(np.log([2.0, 0.5, 1.0]), ddof=1)]
    npt.assert_allclose(boot.log_standard_error("rr"), want, rtol=1e-12)
    npt.assert_array_equal(np.isnan(log_ratio([0.0, -1.0, np.inf, 2.0])), [True, True, False, False])
