"""Landmark IPTW, naive comparison, dose-response bands and the bootstrap machinery."""

import numpy as np
import numpy.testing as npt
import pandas as pd
import pytest
from simulate import simulate

from ipm_outcomes.errors import IpmError
from ipm_outcomes.estimators import DoseResponse, LandmarkIPTW, NaiveComparison, WeightedAalenJohansenFitter
from ipm_outcomes.estimators import bootstrap as boot
from ipm_outcomes.estimators.iptw import treatment_weights, truncate

COVARIATES = ["severity", "male", "age", "payer_type"]


@pytest.fixture(scope="module")
def observed():
    return simulate(10_000, 7)


def test_naive_curves_are_plain_aalen_johansen_by_group(observed):
    nv = NaiveComparison(n_bootstrap=0).fit(observed)
    early = (observed.referral_day <= 42).fillna(False).to_numpy()
    for arm, rows in (("early", early), ("delayed", ~early)):
        aj = WeightedAalenJohansenFitter().fit(observed.time_days[rows], observed.event[rows])
        got = nv.curves_[nv.curves_.arm == arm].set_index("day").cumulative_incidence
        npt.assert_allclose(got.loc[[90, 180, 365]].to_numpy(), aj.predict([90, 180, 365]), rtol=1e-12)
    n = nv.summary[nv.summary.measure == "cumulative_incidence"].groupby("arm").n.first()
    assert n["early"] == early.sum() and n["delayed"] == (~early).sum()


def test_naive_group_column_must_be_early_or_delayed(observed):
    with pytest.raises(IpmError, match="expected early or delayed"):
        NaiveComparison(n_bootstrap=0).fit(observed.assign(g="x"), group_col="g")


def test_landmark_population_and_balance(observed):
    lm = LandmarkIPTW(landmark_day=42, n_bootstrap=0).fit(observed, COVARIATES)
    npt.assert_array_equal(lm.population_, observed.time_days.to_numpy() > 42)
    ref = observed.referral_day[lm.population_]
    npt.assert_array_equal(lm.treated_, (ref <= 42).fillna(False).to_numpy())
    # ATE weights balance severity between the referred and the not referred (to the OHDSI 0.1
    # threshold; the landmark propensity is only approximately logistic in this simulation)
    from ipm_outcomes.diagnostics import standardized_mean_difference as smd

    sev = lm.design_.matrix[:, lm.design_.names.index("severity")]
    t, w = lm.treated_, lm.weights_["ate"]
    assert abs(smd(sev[t], sev[~t])) > 0.3
    assert abs(smd(sev[t], sev[~t], w[t], w[~t])) < 0.1
    # curves start at the landmark: nobody in the population has an event by day 42
    c = lm.curves_.set_index(["arm", "day"]).cumulative_incidence
    assert c.loc[("early", 42)] == 0 and c.loc[("delayed", 42)] == 0
    assert set(lm.summaries_) == {"ate", "att", "overlap"}


def test_landmark_estimates_a_benefit_when_there_is_one(observed):
    lm = LandmarkIPTW(n_bootstrap=30, seed=2, workers=1).fit(observed, COVARIATES)
    rd = lm.summary[(lm.summary.measure == "risk_difference") & (lm.summary.horizon_days == 180)].iloc[0]
    assert rd.ci_low > 0


def test_landmark_needs_both_groups(observed):
    with pytest.raises(IpmError, match="same group"):
        LandmarkIPTW(n_bootstrap=0).fit(observed.assign(referral_day=pd.NA), COVARIATES)


def test_iptw_weights_by_hand():
    ps = np.array([0.2, 0.5, 0.8, 0.25])
    t = np.array([1, 0, 1, 0])
    npt.assert_allclose(treatment_weights(ps, t, "ate", stabilized=False), [5, 2, 1.25, 4 / 3])
    npt.assert_allclose(treatment_weights(ps, t, "ate"), [2.5, 1, 0.625, 2 / 3])
    npt.assert_allclose(treatment_weights(ps, t, "att", stabilized=False), [1, 1, 1, 1 / 3])
    npt.assert_allclose(treatment_weights(ps, t, "overlap"), [0.8, 0.5, 0.2, 0.25])
    w, lo, hi, n_out = truncate(np.arange(1.0, 101.0), (1, 99))
    assert (lo, hi, n_out) == (pytest.approx(1.99), pytest.approx(99.01), 2)
    assert w.min() == pytest.approx(1.99) and w.max() == pytest.approx(99.01)


def test_dose_response_bands_order_like_the_simulated_benefit(observed):
    bands = [("0-14", 0, 14), ("15-42", 15, 42), ("43-90", 43, 90)]
    dr = DoseResponse(bands, horizons=(180,), truncation_percentiles=None, n_bootstrap=0).fit(observed, COVARIATES)
    t = dr.table_.set_index("band").estimate
    # referral within 42 days carries the effect in the simulation; later referral none
    assert t["0-14"] > t["43-90"] + 0.03 and t["15-42"] > t["43-90"]


def test_bootstrap_replicates_are_reproducible_and_independent_of_workers():
    data = {"x": np.arange(50.0)}

    def mean(d):
        return {"m": np.array(d["x"].mean())}

    a = boot.run(_Mean(), data, {"m": np.array(0.0)}, n_replicates=30, seed=4, workers=1)
    b = boot.run(_Mean(), data, {"m": np.array(0.0)}, n_replicates=30, seed=4, workers=2)
    npt.assert_array_equal(a.replicates["m"], b.replicates["m"])
    # replicate r is the mean of the r-th resample drawn from SeedSequence(4).spawn(30)[r]
    ss = np.random.SeedSequence(4).spawn(30)[7]
    idx = np.random.Generator(np.random.PCG64(ss)).integers(0, 50, 50)
    assert a.replicates["m"][7] == pytest.approx(idx.mean())
    lo, hi = a.interval("m")
    assert lo == pytest.approx(np.percentile(a.replicates["m"], 2.5)) and hi == pytest.approx(
        np.percentile(a.replicates["m"], 97.5)
    )
    assert mean(data)["m"] == pytest.approx(24.5)


def test_failed_replicates_are_counted_not_hidden():
    res = boot.run(_Fails(), {"x": np.arange(10.0)}, {"m": np.array(0.0)}, n_replicates=5, seed=1, workers=1)
    assert res.failed == 5 and "boom" in res.first_error
    assert np.isnan(res.interval("m")[0])


def test_nan_percentiles_match_numpy():
    r = np.random.default_rng(0).normal(size=(200, 4, 3))
    r[3, 1, 1] = np.nan
    r[:, 2, 2] = np.nan
    got = boot.nan_percentiles(r, [2.5, 97.5])
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        ref = np.nanpercentile(r, [2.5, 97.5], axis=0)
    npt.assert_allclose(got, ref, equal_nan=True)


class _Mean:
    def __call__(self, d):
        return {"m": np.array(d["x"].mean())}


class _Fails:
    def __call__(self, d):
        raise ValueError("boom")
