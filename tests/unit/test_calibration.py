"""Empirical calibration against known answers: closed forms, the R package's own tests and vignettes,
direct formulas, numerical integration, and a fixed-seed simulation with known systematic error."""

from __future__ import annotations

import numpy as np
import numpy.testing as npt
import pandas as pd
import pytest
from scipy import integrate, optimize, stats

from ipm_outcomes.calibration import (
    EASE_THRESHOLD,
    EXCLUSION_REASONS,
    MIN_NEGATIVE_CONTROLS,
    EmpiricalCalibration,
    EmpiricalNull,
    SystematicErrorModel,
    calibrate_confidence_interval,
    calibrate_p,
    expected_absolute_systematic_error,
    fit_null,
    null_to_error_model,
    traditional_ci,
    traditional_p,
)
from ipm_outcomes.calibration import _bisect_bound
from ipm_outcomes.errors import IpmError

Z95 = stats.norm.ppf(0.975)


# --------------------------------------------------------------------------------------------------
# (1) The ML null: closed form with equal standard errors, brute force otherwise
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("se", [0.05, 0.2, 0.6])
def test_equal_standard_errors_give_the_closed_form_null(se):
    b = np.array([-0.31, 0.02, 0.15, 0.22, 0.41, 0.08, -0.05, 0.57])
    null = fit_null(b, np.full(b.size, se))
    var_ml = b.var()  # divisor n
    npt.assert_allclose(null.mean, b.mean(), atol=1e-6)
    npt.assert_allclose(null.sd, np.sqrt(max(0.0, var_ml - se**2)), atol=1e-6)
    if var_ml < se**2:  # all the spread is random error: the maximum is on the boundary, exactly 0
        assert null.sd == 0.0 and np.isnan(null.sd_se)
    npt.assert_allclose(null.mean_se, np.sqrt((null.sd**2 + se**2) / b.size), rtol=1e-9)


def test_unequal_standard_errors_match_a_brute_force_maximum():
    b = np.array([0.7, -0.1, 0.35, 0.05, 0.9, 0.2, 0.45, -0.3, 0.15, 0.6])
    s = np.array([0.1, 0.3, 0.05, 0.2, 0.4, 0.15, 0.08, 0.5, 0.12, 0.25])

    def nll(theta):
        v = theta[1] ** 2 + s**2
        return 0.5 * np.sum(np.log(2 * np.pi * v) + (b - theta[0]) ** 2 / v)

    brute = optimize.minimize(nll, [0.0, 0.3], method="Nelder-Mead",
                              options={"xatol": 1e-12, "fatol": 1e-14, "maxiter": 20000})
    null = fit_null(b, s)
    npt.assert_allclose([null.mean, null.sd], [brute.x[0], abs(brute.x[1])], atol=1e-6)
    assert null.log_likelihood == pytest.approx(-brute.fun, abs=1e-9)
    assert null.n_controls == 10


def test_fit_null_refuses_values_it_cannot_use_naming_the_position():
    with pytest.raises(IpmError, match=r"se_log_rr\[1\] is inf"):
        fit_null([0.1, 0.2], [0.1, np.inf])
    with pytest.raises(IpmError, match=r"log_rr\[0\] is nan"):
        fit_null([np.nan, 0.2], [0.1, 0.1])
    with pytest.raises(IpmError, match="cannot be negative"):
        fit_null([0.1, 0.2], [0.1, -0.1])
    with pytest.raises(IpmError, match="equal length"):
        fit_null([0.1, 0.2], [0.1])
    with pytest.raises(IpmError, match="no negative-control estimates"):
        fit_null([], [])


# --------------------------------------------------------------------------------------------------
# (2) EmpiricalCalibration's own tests and vignettes (OHDSI/EmpiricalCalibration on GitHub)
# --------------------------------------------------------------------------------------------------


def test_r_package_calibrate_p_with_a_zero_null():
    # tests/testthat/test-EmpiricalCalibrationUsingAsymptotics.R, "calibrateOneP argument requirements"
    null = EmpiricalNull(0.0, 0.0, 0)
    b, s = [0.1, 0.3, 0.2], [0.05, 0.1, np.nan]
    npt.assert_allclose(calibrate_p(null, b, s), [0.045500266, 0.002699796, np.nan], rtol=1e-7)
    npt.assert_allclose(calibrate_p(null, b, s, two_sided=False), [0.022750133, 0.001349898, np.nan], rtol=1e-7)
    npt.assert_allclose(np.round(calibrate_p(null, b, s, two_sided=False, upper=False), 2), [0.98, 1.00, np.nan])
    # "CalibrateP matches computeTraditionalP when mu = sigma = 0"
    assert calibrate_p(null, 0.2, 0.2)[0] == traditional_p(0.2, 0.2)[0]


def test_r_package_fit_null_of_two_exact_estimates():
    # tests/testthat/test-asymptoticNull.R, "fitNull output": fitNull(c(1, 2), c(0, 0)) has mean 1.5
    null = fit_null([1.0, 2.0], [0.0, 0.0])
    assert null.mean == pytest.approx(1.5, abs=1e-3)
    assert null.sd == pytest.approx(0.5, abs=1e-6)  # the closed form: sqrt(var_ML - 0)


def test_r_package_p_value_vignette():
    # vignettes/EmpiricalPCalibrationVignette (inst/doc/EmpiricalPCalibrationVignette.tex; also README.md):
    # the sccs negatives give the null Mean 0.7921, SD 0.2834 (printed to 4 decimals), and sertraline
    # (logRr 0.7326235, seLogRr 0.07371708) the calibrated p 0.8390598. The null is rounded, so the
    # p-value agrees to the rounding's effect (|dp/dmu| * 5e-5 < 2e-4).
    p = calibrate_p(EmpiricalNull(0.7921, 0.2834, 0), 0.7326235, 0.07371708)
    assert p[0] == pytest.approx(0.8390598, abs=2e-4)
    # tests/testthat/test-confidenceIntervalCalibration.R, "convertNullToErrorModel": the calibrated
    # log estimate of sertraline is -0.0593 with relative tolerance 0.1
    ci = calibrate_confidence_interval(0.7326235, 0.07371708, null_to_error_model(EmpiricalNull(0.7921, 0.2834, 0)))
    assert ci.log_rr[0] == pytest.approx(-0.0593, rel=0.1)


def test_r_package_ci_vignette_with_a_legacy_error_model():
    # vignettes/EmpiricalCiCalibrationVignette (inst/doc/EmpiricalCiCalibrationVignette.tex): the model fitted
    # to the southworthReplication controls and the calibrated CI of GI bleed (logRr -0.3575234, se
    # 0.06668903). R's uniroot stops at a tolerance of about 1.2e-4, so the bounds agree to 1e-4.
    model = SystematicErrorModel(-0.06655103, 0.93329424, -1.67417066, 0.01575879, legacy=True)
    ci = calibrate_confidence_interval(-0.3575234, 0.06668903, model)
    npt.assert_allclose(ci.loc[0, ["log_rr", "log_lb", "log_ub", "se_log_rr"]].to_numpy(dtype=float),
                        [-0.3117815, -0.7254078, 0.1067071, 0.2122781], atol=1e-4)
    plain = traditional_ci(-0.3575234, 0.06668903)  # computeTraditionalCi: 0.6994063 0.6964876 0.7023372
    assert np.exp(plain.log_rr[0]) == pytest.approx(0.6994063, abs=1e-7)


def test_r_package_ease_of_a_zero_null_is_zero():
    # tests/testthat/test-expected-systematic-error.R
    assert expected_absolute_systematic_error(EmpiricalNull(0.0, 0.0, 0)) == 0.0


# --------------------------------------------------------------------------------------------------
# (3) Calibrated p and CI against direct formulas
# --------------------------------------------------------------------------------------------------

B = np.array([-0.8, -0.2, 0.0, 0.35, 1.1])
S = np.array([0.3, 0.1, 0.25, 0.05, 0.4])


def test_a_zero_null_returns_the_uncalibrated_p_and_ci_exactly():
    null = EmpiricalNull(0.0, 0.0, 0)
    npt.assert_allclose(calibrate_p(null, B, S), 2 * stats.norm.sf(np.abs(B) / S), rtol=1e-12)
    ci = calibrate_confidence_interval(B, S, null_to_error_model(null))
    plain = traditional_ci(B, S)
    npt.assert_allclose(ci.to_numpy(), plain.to_numpy(), atol=1e-12)
    npt.assert_allclose(plain.log_lb, B - Z95 * S, atol=1e-15)


def test_a_pure_shift_moves_the_interval_by_exp_mu():
    mu = 0.3
    ci = calibrate_confidence_interval(B, S, null_to_error_model(EmpiricalNull(mu, 0.0, 0)))
    plain = traditional_ci(B, S)
    npt.assert_allclose(np.exp(ci[["log_rr", "log_lb", "log_ub"]].to_numpy()) * np.exp(mu),
                        np.exp(plain[["log_rr", "log_lb", "log_ub"]].to_numpy()), rtol=1e-12)
    npt.assert_allclose(ci.se_log_rr, S, rtol=1e-12)
    npt.assert_allclose(calibrate_p(EmpiricalNull(mu, 0.0, 0), B, S), 2 * stats.norm.sf(np.abs(B - mu) / S), rtol=1e-12)


def test_the_null_widens_and_shifts_by_its_mean_and_spread():
    mu, sigma = -0.1, 0.2
    null = EmpiricalNull(mu, sigma, 0)
    total = np.sqrt(sigma**2 + S**2)
    ci = calibrate_confidence_interval(B, S, null_to_error_model(null))
    npt.assert_allclose(ci.log_rr, B - mu, atol=1e-12)
    npt.assert_allclose(ci.log_lb, B - mu - Z95 * total, atol=1e-12)
    npt.assert_allclose(ci.log_ub, B - mu + Z95 * total, atol=1e-12)
    npt.assert_allclose(ci.se_log_rr, total, rtol=1e-10)
    z = (B - mu) / total
    npt.assert_allclose(calibrate_p(null, B, S), 2 * np.minimum(stats.norm.cdf(z), stats.norm.sf(z)), rtol=1e-12)
    npt.assert_allclose(calibrate_p(null, B, S, two_sided=False), stats.norm.sf(z), rtol=1e-12)
    npt.assert_allclose(calibrate_p(null, B, S, two_sided=False, upper=False), stats.norm.cdf(z), rtol=1e-12)
    # a 90% interval uses z = 1.645
    ci90 = calibrate_confidence_interval(B, S, null_to_error_model(null), ci_width=0.9)
    npt.assert_allclose(ci90.log_ub, B - mu + stats.norm.ppf(0.95) * total, atol=1e-12)


def test_a_mean_slope_other_than_one_divides_the_bounds():
    # mean(x) = mu + a x, sd constant: the bound solving z + (mu + a x - b) / sqrt(sd^2 + s^2) = 0
    mu, a, sigma = 0.05, 0.8, 0.1
    ci = calibrate_confidence_interval(B, S, null_to_error_model(EmpiricalNull(mu, sigma, 0), mean_slope=a))
    total = np.sqrt(sigma**2 + S**2)
    npt.assert_allclose(ci.log_lb, (B - mu - Z95 * total) / a, atol=1e-12)
    npt.assert_allclose(ci.log_ub, (B - mu + Z95 * total) / a, atol=1e-12)


def test_an_sd_slope_is_solved_as_the_package_solves_it():
    # sd(x) = sd0 + k |x| (the current model): each bound satisfies the package's equation
    model = SystematicErrorModel(0.05, 1.0, 0.1, 0.2)
    ci = calibrate_confidence_interval(B, S, model)
    for column, z in (("log_lb", Z95), ("log_ub", -Z95), ("log_rr", 0.0)):
        x = ci[column].to_numpy()
        residual = z + (model.mean_intercept + model.mean_slope * x - B) / np.sqrt(model.sd(x) ** 2 + S**2)
        npt.assert_allclose(residual, 0.0, atol=1e-12)
    assert (ci.log_lb < ci.log_rr).all() and (ci.log_rr < ci.log_ub).all()


def test_the_closed_form_for_a_constant_sd_is_the_packages_root():
    # a constant-sd model takes a closed form; the package's bisection in [-100, 100] finds the same roots
    model = null_to_error_model(EmpiricalNull(0.12, 0.3, 0), mean_slope=0.9)
    b = np.array([-3.0, -0.4, 0.0, 0.7, 2.5, 89.6])
    s = np.array([0.2, 0.05, 0.5, 0.1, 1.0, 0.1])
    ci = calibrate_confidence_interval(b, s, model)
    for column, z in (("log_lb", Z95), ("log_ub", -Z95), ("log_rr", 0.0)):
        npt.assert_allclose(ci[column], _bisect_bound(z, b, s, model), atol=1e-12, equal_nan=True)
    assert np.isnan(ci.log_ub.iloc[-1]) and np.isfinite(ci.log_lb.iloc[-1])  # beyond 100: NA, as R


def test_unusable_estimates_calibrate_to_missing():
    null = EmpiricalNull(0.1, 0.1, 0)
    ci = calibrate_confidence_interval([0.2, np.nan, np.inf, 0.1], [0.1, 0.1, 0.1, np.inf], null_to_error_model(null))
    assert ci.iloc[0].notna().all() and ci.iloc[1:].isna().all().all()
    assert np.isnan(calibrate_p(null, [np.inf], [0.1])[0])
    with pytest.raises(IpmError, match="ci_width"):
        calibrate_confidence_interval([0.2], [0.1], null_to_error_model(null), ci_width=95)


# --------------------------------------------------------------------------------------------------
# (4) EASE against numerical integration
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mu, sigma", [(0.0, 0.2), (0.1, 0.15), (-0.3, 0.1), (0.05, 0.5), (-0.02, 0.01), (0.4, 0.0)])
def test_ease_is_the_expected_absolute_error(mu, sigma):
    ease = expected_absolute_systematic_error(EmpiricalNull(mu, sigma, 0))
    if sigma == 0:
        assert ease == abs(mu)
        return
    density = stats.norm(mu, sigma).pdf
    numeric = integrate.quad(lambda x: -x * density(x), -np.inf, 0)[0] + integrate.quad(lambda x: x * density(x), 0, np.inf)[0]
    assert ease == pytest.approx(numeric, abs=1e-9)
    if mu == 0:
        assert ease == pytest.approx(sigma * np.sqrt(2 / np.pi), abs=1e-12)  # the half-normal mean


def test_ease_threshold_and_minimum_are_ohdsis():
    assert EASE_THRESHOLD == 0.25 and MIN_NEGATIVE_CONTROLS == 5


# --------------------------------------------------------------------------------------------------
# (5) Simulation with known systematic error N(0.1, 0.15^2)
# --------------------------------------------------------------------------------------------------

MU, SIGMA = 0.1, 0.15


def _controls(rng: np.random.Generator, n: int, true_log_rr=0.0) -> tuple[np.ndarray, np.ndarray]:
    se = rng.uniform(0.05, 0.3, n)
    return true_log_rr + rng.normal(MU, SIGMA, n) + rng.normal(0.0, se), se


def test_thirty_controls_recover_the_systematic_error_within_its_sampling_error():
    rng = np.random.default_rng(20140101)
    b, s = _controls(rng, 30)
    null = fit_null(b, s)
    assert abs(null.mean - MU) < 2 * null.mean_se
    assert abs(null.sd - SIGMA) < 2 * null.sd_se
    # the expected-information standard errors are the sampling error: over 400 replicate studies of
    # 30 controls with these standard errors, the spread of the fitted mean matches mean_se to 10%
    fits = [fit_null(MU + rng.normal(0, SIGMA, 30) + rng.normal(0, s), s) for _ in range(400)]
    means = np.array([f.mean for f in fits])
    assert np.std(means) == pytest.approx(np.sqrt(1 / np.sum(1 / (SIGMA**2 + s**2))), rel=0.1)
    assert abs(means.mean() - MU) < 3 * np.std(means) / np.sqrt(400)


@pytest.mark.slow
def test_a_null_fitted_to_thirty_controls_undercovers_slightly():
    # 2,000 studies, each with its own 30 negative controls (its own fitted null) and one biased estimate of
    # a true effect (the error model holds: the same systematic error at every effect size). The plug-in
    # null ignores its own sampling error (mean_se about 0.04, and the ML sigma is biased low by about 7% at
    # n = 30), so its 95% intervals cover about 93% (measured 93.5% with this seed) and about 7% (7.3%) of
    # negative controls get a calibrated p < 0.05: far better than uncalibrated (75% and 25%), not exact.
    rng = np.random.default_rng(2018)
    truth = rng.choice(np.log([1.0, 1.5, 2.0, 0.5]), 2000)
    b, s = _controls(rng, 2000, truth)
    nb, ns = _controls(rng, 2000)
    lows, highs, p = np.empty(2000), np.empty(2000), np.empty(2000)
    for i in range(2000):
        null = fit_null(*_controls(rng, 30))
        ci = calibrate_confidence_interval(b[i], s[i], null_to_error_model(null))
        lows[i], highs[i] = ci.log_lb[0], ci.log_ub[0]
        p[i] = calibrate_p(null, nb[i], ns[i])[0]
    covered = ((lows <= truth) & (truth <= highs)).mean()
    assert 0.915 <= covered < 0.95
    plain = traditional_ci(b, s)
    assert ((plain.log_lb <= truth) & (truth <= plain.log_ub)).mean() < 0.80
    assert 0.05 <= (p < 0.05).mean() <= 0.085
    assert (traditional_p(nb, ns) < 0.05).mean() > 0.2


def test_coverage_given_one_fitted_null_is_what_that_null_implies():
    # One study's null is off by its sampling error, and the coverage of its intervals with it: estimate
    # minus truth is N(MU, SIGMA^2 + s^2), so an interval b - mu_hat +- z sqrt(sd_hat^2 + s^2) covers with
    # probability Phi((z t - d) / v) - Phi((-z t - d) / v), d = MU - mu_hat, t = sqrt(sd_hat^2 + s^2),
    # v = sqrt(SIGMA^2 + s^2). The 2,000 intervals match that to 3 binomial SDs; with the true null, 95%.
    rng = np.random.default_rng(2018)
    null = fit_null(*_controls(rng, 30))
    truth = rng.choice(np.log([1.0, 1.5, 2.0, 0.5]), 2000)
    b, s = _controls(rng, 2000, truth)
    ci = calibrate_confidence_interval(b, s, null_to_error_model(null))
    covered = ((ci.log_lb <= truth) & (truth <= ci.log_ub)).mean()
    d, t, v = MU - null.mean, np.sqrt(null.sd**2 + s**2), np.sqrt(SIGMA**2 + s**2)
    expected = (stats.norm.cdf((Z95 * t - d) / v) - stats.norm.cdf((-Z95 * t - d) / v)).mean()
    assert covered == pytest.approx(expected, abs=3 * np.sqrt(expected * (1 - expected) / 2000))
    exact = calibrate_confidence_interval(b, s, null_to_error_model(EmpiricalNull(MU, SIGMA, 0)))
    assert ((exact.log_lb <= truth) & (truth <= exact.log_ub)).mean() == pytest.approx(0.95, abs=0.015)
    plain = traditional_ci(b, s)
    assert ((plain.log_lb <= truth) & (truth <= plain.log_ub)).mean() < 0.80  # the bias the calibration removes
    # calibrated p-values of negative controls under the true null are uniform: 5% below 0.05, not 25%
    nb, ns = _controls(rng, 2000)
    assert (calibrate_p(EmpiricalNull(MU, SIGMA, 0), nb, ns) < 0.05).mean() == pytest.approx(0.05, abs=0.015)
    assert (traditional_p(nb, ns) < 0.05).mean() > 0.2


# --------------------------------------------------------------------------------------------------
# (6) Negative controls in: exclusions, the too-few path, bad input
# --------------------------------------------------------------------------------------------------


def _table(n: int, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    b, s = _controls(rng, n)
    return pd.DataFrame({"outcome": [f"nc{i:02d}" for i in range(n)], "log_rr": b, "se_log_rr": s,
                         "events_early": rng.integers(20, 60, n), "events_delayed": rng.integers(20, 60, n)})


def test_too_few_controls_with_events_skips_calibration_with_the_reason():
    controls = _table(24)
    controls.loc[3:, "events_early"] = 0  # 21 controls without events in the early arm
    controls.loc[3:, "log_rr"] = -np.inf
    cal = EmpiricalCalibration().fit(controls, events=["events_early", "events_delayed"])
    assert not cal.calibrated_
    assert cal.reason_ == "not calibrated: only 3 of 24 negative controls had events in both arms (at least 5 are needed)"
    assert cal.null_ is None and cal.model_ is None and np.isnan(cal.ease_) and cal.ease_passes_ is None
    assert cal.exclusions_.to_dict("records") == [
        {"exclusion": "no_events", "reason": "had no events in an arm", "n_controls": 21}]
    contrasts = pd.DataFrame({"outcome": ["rtw"], "log_rr": [0.3], "se_log_rr": [0.1]})
    out = cal.calibrate(contrasts)
    assert out.loc[0, "rr"] == pytest.approx(np.exp(0.3))
    assert out.loc[0, "ci_low"] == pytest.approx(np.exp(0.3 - Z95 * 0.1))
    assert out[["calibrated_rr", "calibrated_ci_low", "calibrated_ci_high", "calibrated_p"]].isna().all().all()
    assert out.loc[0, "calibration"] == cal.reason_
    assert cal.summary.set_index("quantity").loc[["n_controls", "n_usable"], "estimate"].tolist() == [24, 3]


def test_each_exclusion_reason_is_counted_in_order():
    controls = _table(12)
    controls.loc[0, "events_delayed"] = 0
    controls.loc[1, "log_rr"] = np.nan
    controls.loc[2, "log_rr"] = np.inf
    controls.loc[3, "se_log_rr"] = np.nan
    controls.loc[4, "se_log_rr"] = np.inf
    controls.loc[5, "se_log_rr"] = 0.0
    controls.loc[6, ["events_early", "log_rr"]] = [0, np.nan]  # both: counted once, under the first reason
    cal = EmpiricalCalibration().fit(controls, events=["events_early", "events_delayed"])
    assert cal.exclusions_.to_dict("records") == [
        {"exclusion": key, "reason": EXCLUSION_REASONS[key], "n_controls": n}
        for key, n in [("no_events", 2), ("no_estimate", 1), ("infinite_estimate", 1), ("no_se", 1),
                       ("infinite_se", 1), ("zero_se", 1)]]
    assert cal.controls_.used.tolist() == [False] * 7 + [True] * 5
    assert cal.controls_.control.tolist()[:2] == ["nc00", "nc01"]
    assert "events_early" not in cal.controls_.columns  # the counts are not kept
    assert cal.calibrated_ and cal.n_usable_ == 5
    assert cal.reason_ == ("calibrated on 5 of 12 negative controls (2 had no events in an arm; 1 had no estimate; "
                           "1 had an infinite estimate; 1 had no standard error; 1 had an infinite standard error; "
                           "1 had a standard error of zero)")
    used = cal.controls_[cal.controls_.used]
    direct = fit_null(used.log_rr, used.se_log_rr)
    assert (cal.null_.mean, cal.null_.sd) == (direct.mean, direct.sd)

    cal6 = EmpiricalCalibration(min_controls=6).fit(controls, events=["events_early", "events_delayed"])
    assert not cal6.calibrated_
    assert cal6.reason_ == ("not calibrated: only 5 of 12 negative controls had a usable estimate (at least 6 are "
                            "needed; 2 had no events in an arm; 1 had no estimate; 1 had an infinite estimate; "
                            "1 had no standard error; 1 had an infinite standard error; 1 had a standard error of zero)")


def test_no_controls_at_all():
    cal = EmpiricalCalibration().fit(_table(0))
    assert cal.reason_ == "not calibrated: no negative-control estimates" and cal.exclusions_.empty


def test_calibrated_contrasts_match_the_functions_and_the_diagnostic():
    controls = _table(25, seed=11)
    cal = EmpiricalCalibration().fit(controls)
    assert cal.reason_ == "calibrated on 25 of 25 negative controls"
    contrasts = pd.DataFrame({"outcome": ["rtw", "surgery"], "log_rr": [0.4, -0.2], "se_log_rr": [0.08, 0.15]},
                             index=[10, 20])
    out = cal.calibrate(contrasts)
    assert list(out.index) == [10, 20] and out.outcome.tolist() == ["rtw", "surgery"]
    ci = calibrate_confidence_interval(contrasts.log_rr, contrasts.se_log_rr, null_to_error_model(cal.null_))
    npt.assert_allclose(out.calibrated_ci_low, np.exp(ci.log_lb), rtol=1e-12)
    npt.assert_allclose(out.calibrated_rr, np.exp(contrasts.log_rr - cal.null_.mean), rtol=1e-12)
    npt.assert_allclose(out.calibrated_p, calibrate_p(cal.null_, contrasts.log_rr, contrasts.se_log_rr), rtol=1e-12)
    assert cal.ease_ == expected_absolute_systematic_error(cal.null_)
    assert cal.ease_passes_ == (cal.ease_ < 0.25)
    summary = cal.summary.set_index("quantity")
    assert summary.loc["null_mean", "estimate"] == cal.null_.mean and summary.loc["null_sd", "se"] == cal.null_.sd_se
    # the diagnostic fails at its threshold: a stricter one than this study's EASE
    strict = EmpiricalCalibration(ease_threshold=cal.ease_).fit(controls)
    assert strict.ease_passes_ is False
    assert type(cal)(**cal.get_params()).get_params() == {"min_controls": 5, "ci_width": 0.95, "ease_threshold": 0.25}


def test_exactly_the_minimum_calibrates():
    controls = _table(5)
    assert EmpiricalCalibration().fit(controls).calibrated_
    assert not EmpiricalCalibration().fit(controls.iloc[:4]).calibrated_


def test_bad_input_is_one_line_naming_column_and_row():
    controls = _table(6).astype({"se_log_rr": object})
    controls.loc[2, "se_log_rr"] = "n/a"
    with pytest.raises(IpmError) as err:
        EmpiricalCalibration().fit(controls)
    assert str(err.value) == "negative controls: column se_log_rr, row 3 (outcome 'nc02'): 'n/a' is not a number"
    controls = _table(6)
    controls.loc[4, "se_log_rr"] = -0.1
    with pytest.raises(IpmError, match=r"column se_log_rr, row 5 \(outcome 'nc04'\): standard error -0.1 is negative"):
        EmpiricalCalibration().fit(controls)
    with pytest.raises(IpmError, match="no column.*log_hr"):
        EmpiricalCalibration().fit(_table(6), log_rr="log_hr")
    with pytest.raises(IpmError, match="min_controls"):
        EmpiricalCalibration(min_controls=0).fit(_table(6))
    with pytest.raises(IpmError, match="call fit"):
        EmpiricalCalibration().calibrate(_table(2))
    with pytest.raises(IpmError, match=r"column log_rr, row 2: 'x' is not a number"):
        EmpiricalCalibration().fit(_table(6)).calibrate(pd.DataFrame({"log_rr": [0.1, "x"], "se_log_rr": [0.1, 0.1]}))
