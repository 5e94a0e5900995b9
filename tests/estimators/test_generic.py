"""The generic estimators a researcher can use on their own data, against statsmodels, lifelines
and hand-computed miniatures: weighted GLM with robust SE, IPW mean difference, unpenalised
propensity and hazard models, the public design builder with declared categoricals, the shared
constructor contract."""

import warnings

import numpy as np
import numpy.testing as npt
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf

from ipm_outcomes.errors import IpmError
from ipm_outcomes.estimators import (
    CloneCensorWeight,
    CoxRegression,
    DoseResponse,
    IPWMeanDifference,
    LandmarkIPTW,
    LogisticRegression,
    NaiveComparison,
    PooledLogisticHazard,
    PropensityScore,
    TimeVaryingCox,
    WeightedAalenJohansenFitter,
    WeightedANCOVA,
    WeightedGLM,
    WeightedKaplanMeierFitter,
    build_design,
)

FAMILIES = {
    "gaussian": sm.families.Gaussian(),
    "binomial": sm.families.Binomial(),
    "poisson": sm.families.Poisson(),
}


@pytest.fixture(scope="module")
def glm_data():
    rng = np.random.default_rng(1)
    n = 300
    X = rng.normal(size=(n, 2))
    w = rng.uniform(0.2, 3.0, n)
    y = {
        "gaussian": 1 + X @ [1.0, -1.0] + rng.normal(size=n) * (1 + np.abs(X[:, 0])),
        "binomial": rng.binomial(1, 1 / (1 + np.exp(-(0.2 + X @ [0.8, -0.5])))).astype(float),
        "poisson": rng.poisson(np.exp(0.5 + X @ [0.3, 0.2])).astype(float),
    }
    return X, y, w


# -- weighted GLM with robust standard errors ------------------------------------------------------


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_weighted_glm_hc0_equals_statsmodels(glm_data, family):
    X, y, w = glm_data
    ours = WeightedGLM(family=family, cov_type="HC0").fit(X, y[family], sample_weight=w)
    ref = sm.GLM(y[family], sm.add_constant(X), family=FAMILIES[family], var_weights=w).fit(cov_type="HC0")
    npt.assert_allclose(ours.params_.to_numpy(), ref.params, rtol=1e-6, atol=1e-9)
    npt.assert_allclose(ours.bse_.to_numpy(), ref.bse, rtol=1e-6)
    assert ours.converged_


@pytest.mark.parametrize("family", ["gaussian", "binomial"])
def test_weighted_glm_model_based_se_equals_statsmodels(glm_data, family):
    X, y, w = glm_data
    ours = WeightedGLM(family=family, cov_type="nonrobust").fit(X, y[family], sample_weight=w)
    ref = sm.GLM(y[family], sm.add_constant(X), family=FAMILIES[family], var_weights=w).fit()
    npt.assert_allclose(ours.bse_.to_numpy(), ref.bse, rtol=1e-6)
    npt.assert_allclose(ours.scale_, ref.scale, rtol=1e-9)


def test_weighted_glm_hc1_is_hc0_times_n_over_n_minus_p(glm_data):
    # R's sandwich::vcovHC(type = "HC1") and statsmodels' WLS HC1; statsmodels' GLM applies no
    # correction for "HC1" (it reports HC0), so the binomial case is checked against HC0 x n/(n-p)
    X, y, w = glm_data
    n, p = X.shape[0], X.shape[1] + 1
    ours = WeightedGLM(cov_type="HC1").fit(X, y["gaussian"], sample_weight=w)
    ref = sm.WLS(y["gaussian"], sm.add_constant(X), weights=w).fit(cov_type="HC1")
    npt.assert_allclose(ours.bse_.to_numpy(), ref.bse, rtol=1e-6)
    ours = WeightedGLM(family="binomial", cov_type="HC1").fit(X, y["binomial"], sample_weight=w)
    hc0 = sm.GLM(y["binomial"], sm.add_constant(X), family=FAMILIES["binomial"], var_weights=w).fit(cov_type="HC0")
    npt.assert_allclose(ours.bse_.to_numpy(), hc0.bse * np.sqrt(n / (n - p)), rtol=1e-6)


def test_weighted_mean_and_its_sandwich_by_hand():
    # intercept-only gaussian model: the weighted mean m = sum(w y) / sum(w), and the HC0
    # variance sum(w^2 (y - m)^2) / sum(w)^2
    y = np.array([1.0, 2.0, 4.0, 7.0])
    w = np.array([1.0, 2.0, 1.0, 4.0])
    m = (1 + 4 + 4 + 28) / 8  # 37/8
    var = (1 * (1 - m) ** 2 + 4 * (2 - m) ** 2 + 1 * (4 - m) ** 2 + 16 * (7 - m) ** 2) / 64
    fit = WeightedGLM().fit(np.zeros((4, 0)), y, sample_weight=w)
    assert fit.params_["const"] == pytest.approx(m, rel=1e-12)
    assert fit.bse_["const"] == pytest.approx(np.sqrt(var), rel=1e-12)
    s = fit.summary.loc["const"]
    assert s.ci_low == pytest.approx(m - 1.959963984540054 * np.sqrt(var), rel=1e-9)


def test_weighted_glm_refuses_bad_input():
    with pytest.raises(IpmError, match="unknown cov_type 'HC3'"):
        WeightedGLM(cov_type="HC3").fit(np.ones((5, 1)), np.arange(5.0))
    with pytest.raises(IpmError, match="row 2 has a missing"):
        WeightedGLM().fit(np.array([[1.0], [2.0], [np.nan], [4.0]]), np.arange(4.0))
    with pytest.raises(IpmError, match="binomial outcome must lie in"):
        WeightedGLM(family="binomial").fit(np.arange(4.0), np.array([0, 1, 2, 0.0]))


# -- IPW mean difference (marginal structural model) -----------------------------------------------

# One binary confounder x: the saturated propensity model gives P(a = 1 | x) = the share treated in
# each stratum, and the ATE-weighted mean difference equals standardisation over x:
#   x = 0 (8 persons): treated y = 5, 7 (mean 6);   control y = 2, 3, 4, 3, 2, 4 (mean 3)
#   x = 1 (4 persons): treated y = 10, 12, 8 (mean 10); control y = 6 (mean 6)
#   ATE = 8/12 * (6 - 3) + 4/12 * (10 - 6) = 2 + 4/3 = 10/3
#   ATT = (2 * 3 + 3 * 4) / 5 = 18/5 (treated: 2 with x = 0, 3 with x = 1)
MINI = pd.DataFrame(
    {
        "x": [0] * 8 + [1] * 4,
        "a": [1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0],
        "y": [5.0, 7, 2, 3, 4, 3, 2, 4, 10, 12, 8, 6],
    }
)


def test_ipw_mean_difference_equals_standardisation_by_hand():
    ate = IPWMeanDifference().fit(MINI, "y", "a", ["x"])
    diff = ate.summary[ate.summary.measure == "mean_difference"].iloc[0]
    assert diff.estimate == pytest.approx(10 / 3, rel=1e-9)
    means = ate.summary[ate.summary.measure == "mean"].set_index("arm").estimate
    # potential-outcome means: treated 8/12 * 6 + 4/12 * 10 = 22/3; control 8/12 * 3 + 4/12 * 6 = 4
    assert means["treated"] == pytest.approx(22 / 3, rel=1e-9) and means["control"] == pytest.approx(4, rel=1e-9)
    assert list(ate.summary.n) == [5, 7, 12]
    npt.assert_allclose(ate.ps_, np.where(MINI.x == 1, 3 / 4, 2 / 8), rtol=1e-9)
    att = IPWMeanDifference(estimand="att").fit(MINI, "y", "a", ["x"])
    assert att.summary.estimate.iloc[2] == pytest.approx(18 / 5, rel=1e-9)


@pytest.mark.parametrize("cov_type", ["HC0", "HC1"])
def test_ipw_mean_difference_se_is_the_weighted_glm_sandwich(cov_type):
    m = IPWMeanDifference(cov_type=cov_type).fit(MINI, "y", "a", ["x"])
    # geepack/survey: the robust SE of y ~ a with the weights (treated as known)
    X = sm.add_constant(MINI.a.to_numpy(float))
    if cov_type == "HC0":
        ref = sm.GLM(MINI.y, X, var_weights=m.weights_).fit(cov_type="HC0")
    else:
        ref = sm.WLS(MINI.y, X, weights=m.weights_).fit(cov_type="HC1")
    diff = m.summary[m.summary.measure == "mean_difference"].iloc[0]
    assert diff.se == pytest.approx(ref.bse.iloc[1], rel=1e-6)
    control = m.summary[m.summary.arm == "control"].iloc[0]
    assert control.se == pytest.approx(ref.bse.iloc[0], rel=1e-6)
    assert diff.ci_low == pytest.approx(diff.estimate - 1.959963984540054 * diff.se, rel=1e-9)


def test_ipw_mean_difference_bootstrap_refits_the_propensity_model():
    big = pd.concat([MINI] * 5, ignore_index=True)
    a = IPWMeanDifference(n_bootstrap=40, seed=3, workers=1).fit(big, "y", "a", ["x"])
    b = IPWMeanDifference(n_bootstrap=40, seed=3, workers=1).fit(big, "y", "a", ["x"])
    pd.testing.assert_frame_equal(a.summary, b.summary)
    reps = a.bootstrap_.replicates["difference"]
    lo, hi = np.percentile(reps, [2.5, 97.5])
    diff = a.summary.iloc[2]
    assert (diff.ci_low, diff.ci_high) == (pytest.approx(lo), pytest.approx(hi))
    assert diff.se == pytest.approx(np.std(reps, ddof=1))
    assert np.unique(np.round(reps, 9)).size > 10  # each replicate refits, so they differ


def test_ipw_mean_difference_truncation_only_when_asked():
    plain = IPWMeanDifference(stabilized=False).fit(MINI, "y", "a", ["x"])
    assert plain.truncation_["n_truncated"] == 0 and np.isnan(plain.truncation_["upper"])
    npt.assert_allclose(plain.weights_, np.where(MINI.a == 1, 1 / plain.ps_, 1 / (1 - plain.ps_)), rtol=1e-12)
    capped = IPWMeanDifference(stabilized=False, truncation_percentiles=(0, 90)).fit(MINI, "y", "a", ["x"])
    assert capped.weights_.max() == pytest.approx(np.percentile(plain.weights_, 90))


def test_ipw_mean_difference_names_bad_rows():
    with pytest.raises(IpmError, match=r"column a: row 3 holds 2; expected 0/1"):
        IPWMeanDifference().fit(MINI.assign(a=MINI.a.where(MINI.index != 3, 2)), "y", "a", ["x"])
    with pytest.raises(IpmError, match=r"column y: row 5 holds nan; expected a number"):
        IPWMeanDifference().fit(MINI.assign(y=MINI.y.where(MINI.index != 5)), "y", "a", ["x"])
    with pytest.raises(IpmError, match="same treatment group"):
        IPWMeanDifference().fit(MINI.assign(a=1), "y", "a", ["x"])
    with pytest.raises(IpmError, match="unknown estimand"):
        IPWMeanDifference(estimand="atc").fit(MINI, "y", "a", ["x"])


# -- propensity and hazard models: maximum likelihood unless a penalty is asked for --------------


@pytest.fixture(scope="module")
def squared():
    """A covariate entering with its square: the case where even l2 = 1e-4 shrinks visibly."""
    rng = np.random.default_rng(5)
    n = 2000
    x = rng.normal(size=n)
    X = np.column_stack([x, x**2, rng.binomial(1, 0.4, n)])
    y = rng.binomial(1, 1 / (1 + np.exp(-(-1 + 0.5 * x + 0.8 * x**2 - 0.6 * X[:, 2]))))
    return X, y


def test_logistic_default_is_the_maximum_likelihood_fit(squared):
    X, y = squared
    ref = sm.GLM(y, sm.add_constant(X), family=sm.families.Binomial()).fit()
    for model in (LogisticRegression().fit(X, y), PropensityScore().fit(X, y).model_):
        npt.assert_allclose([model.intercept_, *model.coef_], ref.params, rtol=1e-6)
    # the penalty is a parameter, and it does shrink the coefficient of the squared term
    ridge = LogisticRegression(l2=1e-3).fit(X, y)
    assert ridge.coef_[1] < ref.params[2] * (1 - 1e-3)


def test_penalty_keeps_a_separated_fit_finite_and_says_so():
    X = np.array([[0.0], [0.0], [1.0], [1.0], [0.0], [1.0]])
    y = np.array([0, 0, 1, 1, 0, 1])
    mle = LogisticRegression(max_iter=30).fit(X, y)
    assert not mle.converged_  # no maximum exists: the fit reports it instead of pretending
    ridge = LogisticRegression(l2=1e-2).fit(X, y)
    assert ridge.converged_ and 0 < ridge.coef_[0] < 20


def _person_days(X, exit_day, event, horizon, interval_days, weights=None):
    rows, ys, ws = [], [], []
    for i in range(len(exit_day)):
        for s in range(min(exit_day[i], horizon - 1) + 1):
            rows.append([*(s // interval_days == k for k in range(-(-horizon // interval_days))), *X[i]])
            ys.append(float(event[i] and s == exit_day[i]))
            ws.append(1.0 if weights is None else weights[i])
    return np.array(rows, float), np.array(ys), np.array(ws)


@pytest.fixture(scope="module")
def hazard_data():
    rng = np.random.default_rng(8)
    n = 400
    X = rng.normal(size=(n, 2))
    R = np.full(n, 10**6)
    for s in range(20):
        h = 1 / (1 + np.exp(-(-2.5 + 0.4 * (s >= 10) + X @ [0.5, -0.4])))
        R[(R == 10**6) & (rng.random(n) < h)] = s
    T = rng.integers(0, 25, n)
    return X, np.minimum(R, T), R <= T


def test_pooled_hazard_default_is_the_person_day_maximum_likelihood_fit(hazard_data):
    X, exit_day, event = hazard_data
    m = PooledLogisticHazard(interval_days=10).fit(X, exit_day, event, horizon=20)
    Z, y, _ = _person_days(X, exit_day, event & (exit_day < 20), 20, 10)
    ref = sm.GLM(y, Z, family=sm.families.Binomial()).fit()
    npt.assert_allclose(m.coef_, ref.params[2:], rtol=1e-6)
    npt.assert_allclose(m.start_values()[0], ref.params[:2], rtol=1e-6)


def test_pooled_hazard_accepts_weights(hazard_data):
    X, exit_day, event = hazard_data
    w = np.random.default_rng(2).uniform(0.3, 3.0, len(exit_day))
    m = PooledLogisticHazard(interval_days=10).fit(X, exit_day, event, horizon=20, sample_weight=w)
    Z, y, wd = _person_days(X, exit_day, event & (exit_day < 20), 20, 10, w)
    ref = sm.GLM(y, Z, family=sm.families.Binomial(), freq_weights=wd).fit()
    npt.assert_allclose(m.coef_, ref.params[2:], rtol=1e-6)
    npt.assert_allclose(m.start_values()[0], ref.params[:2], rtol=1e-6)
    # a weight of 2 is the same person counted twice
    k = np.random.default_rng(3).integers(1, 3, len(exit_day))
    weighted = PooledLogisticHazard(interval_days=10).fit(X, exit_day, event, horizon=20, sample_weight=k)
    idx = np.repeat(np.arange(len(k)), k)
    doubled = PooledLogisticHazard(interval_days=10).fit(X[idx], exit_day[idx], event[idx], horizon=20)
    npt.assert_allclose(weighted.coef_, doubled.coef_, rtol=1e-8)
    assert weighted.n_events_ == int(np.sum(event & (exit_day < 20)))
    with pytest.raises(IpmError, match="sample_weight must be one finite weight"):
        PooledLogisticHazard().fit(X, exit_day, event, horizon=20, sample_weight=-w)


# -- the design builder: categorical covariates declared, never silently continuous ---------------

REGIONS = pd.DataFrame(
    {
        "region": [1, 2, 2, 3, 3, 3, 1, 3, 2, 3],
        "age": [30.0, 41, np.nan, 25, 52, 38, 47, 33, 29, 60],
        "sector": ["retail", "care", "care", None, "retail", "care", "retail", "care", "care", "retail"],
    }
)


def test_declared_categorical_is_dummy_coded_with_the_most_frequent_level_as_reference():
    d = build_design(REGIONS, ["region", "age", "sector"], categorical=["region"])
    # levels after the reference in order of frequency (2 has 3 persons, 1 has 2)
    assert d.names == ["region=2", "region=1", "age", "age__missing", "sector=retail", "sector=(missing)"]
    npt.assert_array_equal(d.matrix[:, 0], (REGIONS.region == 2).astype(float))
    npt.assert_array_equal(d.matrix[:, 1], (REGIONS.region == 1).astype(float))
    assert d.matrix[2, 2] == pytest.approx(REGIONS.age.mean()) and d.matrix[2, 3] == 1.0
    assert d.kinds == {"region": "categorical", "age": "continuous", "sector": "categorical"}
    assert d.references == {"region": "3", "sector": "care"}
    summary = d.summary()
    assert list(summary.kind) == ["categorical"] * 2 + ["continuous", "missing indicator"] + ["categorical"] * 2
    # undeclared, the same codes are an amount (one column): the summary shows it
    assert build_design(REGIONS, ["region"]).names == ["region"]
    assert build_design(REGIONS, ["region"]).summary().kind.tolist() == ["continuous"]
    # a pandas category column is categorical without being declared
    assert build_design(REGIONS.assign(region=REGIONS.region.astype("category")), ["region"]).names == [
        "region=2",
        "region=1",
    ]


def test_reference_level_and_declaration_errors():
    d = build_design(REGIONS, ["region"], categorical=["region"], reference={"region": 1})
    assert d.names == ["region=3", "region=2"] and d.references == {"region": "1"}
    with pytest.raises(IpmError, match="reference level '9' does not occur"):
        build_design(REGIONS, ["region"], categorical=["region"], reference={"region": 9})
    with pytest.raises(IpmError, match="categorical column.s. sector are not among the covariates"):
        build_design(REGIONS, ["region"], categorical=["sector"])
    with pytest.raises(IpmError, match="numeric column; declare it categorical"):
        build_design(REGIONS, ["age"], reference={"age": 30})


def test_declared_categorical_fits_as_statsmodels_c_term():
    rng = np.random.default_rng(9)
    n = 600
    df = pd.DataFrame({"region": rng.choice([1, 2, 3, 4], n, p=[0.4, 0.3, 0.2, 0.1]), "x": rng.normal(size=n)})
    lin = -0.5 + 0.7 * (df.region == 2) - 0.4 * (df.region == 3) + 1.0 * (df.region == 4) + 0.3 * df.x
    df["y"] = rng.binomial(1, 1 / (1 + np.exp(-lin)))
    d = build_design(df, ["region", "x"], categorical=["region"])
    ours = LogisticRegression().fit(d.matrix, df.y)
    ref = smf.glm("y ~ C(region, Treatment(1)) + x", df, family=sm.families.Binomial()).fit()
    npt.assert_allclose([ours.intercept_, *ours.coef_], ref.params.to_numpy(), rtol=1e-6)


# -- the plain treatment column and the shared constructor contract --------------------------------


def _landmark_frame():
    """24 persons: follow-up day, event (0/1/2), referral day (None = never), a covariate."""
    time = [3, 50, 60, 70, 90, 100, 120, 45, 80, 200, 40, 55, 65, 75, 85, 95, 110, 130, 150, 170, 44, 190, 210, 30]
    event = [1, 1, 0, 1, 1, 2, 1, 1, 0, 1, 0, 1, 1, 1, 0, 1, 1, 2, 1, 0, 1, 1, 0, 1]
    ref = [None, 10, 20, None, 30, None, 5, None, 41, 60, None, 2, None, 15, 70, None, 8, 43, None, 35, 12, None, 1, 3]
    sev = [1, 3, 2, 1, 3, 2, 3, 1, 2, 1, 2, 3, 1, 2, 2, 1, 3, 2, 1, 3, 2, 1, 3, 2]
    return pd.DataFrame({"time_days": time, "event": event, "referral_day": pd.array(ref, "Int64"), "severity": sev})


def test_landmark_with_a_treatment_column_equals_the_referral_day_version():
    df = _landmark_frame()
    by_day = LandmarkIPTW(landmark_day=42, horizons=(100, 180), n_bootstrap=0).fit(df, ["severity"])
    df["referred_by_42"] = (df.referral_day <= 42).fillna(False).astype(int)
    by_col = LandmarkIPTW(landmark_day=42, horizons=(100, 180), n_bootstrap=0).fit(
        df.drop(columns="referral_day"), ["severity"], treatment_col="referred_by_42"
    )
    pd.testing.assert_frame_equal(by_day.summary, by_col.summary)
    pd.testing.assert_frame_equal(by_day.curves_, by_col.curves_)


def test_landmark_without_covariates_is_plain_aalen_johansen_with_named_arms():
    df = _landmark_frame().assign(trained=lambda d: d.severity >= 2)
    lm = LandmarkIPTW(landmark_day=0, horizons=(100,), arms=("trained", "not trained"), n_bootstrap=0).fit(
        df, [], treatment_col="trained"
    )
    # no covariates: every stabilised ATE weight is 1, so each arm is its unweighted curve
    npt.assert_allclose(lm.weights_["ate"], 1.0, rtol=1e-12)
    for arm, rows in (("trained", df.trained), ("not trained", ~df.trained)):
        aj = WeightedAalenJohansenFitter().fit(df.time_days[rows], df.event[rows])
        got = lm.summary[(lm.summary.arm == arm) & (lm.summary.measure == "cumulative_incidence")].estimate.iloc[0]
        assert got == pytest.approx(aj.predict([100])[0], rel=1e-12)
    assert set(lm.summary.contrast.dropna()) == {"trained vs not trained"}
    with pytest.raises(IpmError, match="column trained: row 0 holds 'yes'"):
        LandmarkIPTW(landmark_day=0, horizons=(100,), n_bootstrap=0).fit(
            df.assign(trained="yes"), [], treatment_col="trained"
        )


@pytest.mark.parametrize(
    "cls",
    [
        CloneCensorWeight,
        LandmarkIPTW,
        NaiveComparison,
        IPWMeanDifference,
        WeightedANCOVA,
        WeightedGLM,
        LogisticRegression,
        PooledLogisticHazard,
        PropensityScore,
        CoxRegression,
        TimeVaryingCox,
        WeightedKaplanMeierFitter,
        WeightedAalenJohansenFitter,
    ],
)
def test_constructor_stores_settings_as_given_and_get_params_copies(cls):
    est = cls()
    params = est.get_params()
    copy = cls(**params)
    assert copy.get_params() == params and copy is not est
    # defaults are the textbook estimator: no hidden penalty, no truncation
    assert params.get("l2", 0.0) == 0.0 and params.get("truncation_percentiles") is None
    with pytest.raises(IpmError, match="has no setting 'l3'"):
        est.set_params(l3=1)


def test_dose_response_params_include_the_settings_it_passes_on():
    dr = DoseResponse([("0-14", 0, 14)], horizons=[180], n_bootstrap=0, l2=1e-3)
    assert dr.get_params() == {"bands": [("0-14", 0, 14)], "horizons": [180], "n_bootstrap": 0, "l2": 1e-3}
    assert DoseResponse(**dr.get_params()).get_params() == dr.get_params()
    assert dr.set_params(seed=4).kwargs["seed"] == 4
    with pytest.raises(IpmError, match="has no setting 'l3'"):
        dr.set_params(l3=1)


def test_invalid_settings_fail_in_fit_not_in_the_constructor():
    lm = LandmarkIPTW(estimand="atc", horizons=[100])  # stored as given
    assert lm.horizons == [100]
    with pytest.raises(IpmError, match="unknown estimand 'atc'"):
        lm.fit(_landmark_frame(), ["severity"])
    with pytest.raises(IpmError, match="interval_days must be >= 1"):
        PooledLogisticHazard(interval_days=0).fit(np.zeros((3, 1)), np.array([1, 2, 3]), np.ones(3, bool), horizon=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        NaiveComparison(horizons=[100, 180], n_bootstrap=0).fit(_landmark_frame())
