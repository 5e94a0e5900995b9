"""The numpy Cox model against lifelines (no tied event times, so Breslow = Efron)."""

import warnings

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter, CoxTimeVaryingFitter
from simulate import EXTENDED, simulate

from ipm_outcomes.errors import IpmError
from ipm_outcomes.estimators.cox import CoxRegression
from ipm_outcomes.estimators.tv_cox import TimeVaryingCox, counting_process


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    n = 400
    X = rng.normal(size=(n, 3))
    T = rng.exponential(1 / np.exp(X @ [0.5, -0.3, 0.2]))
    C = rng.exponential(2, n)
    df = pd.DataFrame(X, columns=list("abc"))
    df["t"] = np.minimum(T, C)
    df["e"] = (T <= C).astype(int)
    df["w"] = rng.uniform(0.5, 2, n)
    df["id"] = np.arange(n) // 2
    df["s"] = rng.uniform(0, 0.3, n) * df["t"]
    return df


def _lifelines(df, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CoxPHFitter().fit(df, "t", "e", **kw)


def test_model_based_fit_matches_lifelines(data):
    ours = CoxRegression().fit(data[list("abc")], data.t, data.e, names=list("abc"))
    ref = _lifelines(data[["a", "b", "c", "t", "e"]])
    np.testing.assert_allclose(ours.params_.values, ref.params_.values, rtol=1e-5)
    np.testing.assert_allclose(ours.summary["se(coef)"].values, ref.standard_errors_.values, rtol=1e-5)
    assert ours.log_likelihood_ == pytest.approx(ref.log_likelihood_, rel=1e-9)


def test_weighted_robust_fit_matches_lifelines(data):
    ours = CoxRegression().fit(data[list("abc")], data.t, data.e, weights=data.w, names=list("abc"))
    ref = _lifelines(data[["a", "b", "c", "t", "e", "w"]], weights_col="w", robust=True)
    np.testing.assert_allclose(ours.params_.values, ref.params_.values, rtol=1e-5)
    np.testing.assert_allclose(ours.summary["se(coef)"].values, ref.standard_errors_.values, rtol=1e-5)


def test_cluster_robust_matches_lifelines(data):
    ours = CoxRegression().fit(data[list("abc")], data.t, data.e, cluster=data.id, names=list("abc"))
    ref = _lifelines(data[["a", "b", "c", "t", "e", "id"]], cluster_col="id", robust=True)
    np.testing.assert_allclose(ours.summary["se(coef)"].values, ref.standard_errors_.values, rtol=1e-5)


def test_delayed_entry_matches_lifelines_time_varying(data):
    ours = CoxRegression().fit(data[list("abc")], data.t, data.e, start=data.s, robust=False, names=list("abc"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = CoxTimeVaryingFitter().fit(
            data[["a", "b", "c", "s", "t", "e"]].assign(pid=np.arange(len(data))),
            id_col="pid",
            start_col="s",
            stop_col="t",
            event_col="e",
        )
    np.testing.assert_allclose(ours.params_.values, ref.params_.values, rtol=1e-6)
    np.testing.assert_allclose(ours.summary["se(coef)"].values, ref.standard_errors_.values, rtol=1e-6)


def test_rows_need_positive_length():
    with pytest.raises(IpmError, match="stop > start"):
        CoxRegression().fit(np.zeros((2, 1)), [1.0, 2.0], [1, 0], start=[1.0, 0.0])


def test_counting_process_rows_by_hand():
    # person 0: referred day 3, RTW day 10 -> unreferred (-1, 3], referred (3, 10] with the event
    # person 1: RTW day 5, referral day 5 recorded after it -> one unreferred row ending in the event
    # person 2: never referred, competing event day 7 -> one row, no RTW event
    # person 3: referred day 0, censored day 4 -> (-1, 0] unreferred, (0, 4] referred
    rows = counting_process(np.array([10, 5, 7, 4]), np.array([1, 1, 2, 0]), np.array([3, 5, 10**9, 0]))
    got = sorted(rows.itertuples(index=False, name=None))
    assert got == sorted(
        [(0, -1, 3, 0, 0), (0, 3, 10, 1, 1), (1, -1, 5, 0, 1), (2, -1, 7, 0, 0), (3, -1, 0, 0, 0), (3, 0, 4, 1, 0)]
    )


def test_time_varying_cox_recovers_a_planted_hazard_ratio():
    # exponential RTW hazard 0.01/day, x2 after a referral at a random day; 3000 persons
    rng = np.random.default_rng(8)
    n = 3000
    ref = rng.integers(0, 60, n)
    u = rng.exponential(1, n)
    t_before = u / 0.01
    t = np.where(t_before <= ref, t_before, ref + (u - 0.01 * ref) / 0.02)
    time = np.minimum(np.ceil(t), 365).astype(int)
    event = (np.ceil(t) <= 365).astype(int)
    df = pd.DataFrame({"time_days": time, "event": event, "referral_day": ref, "x": rng.normal(size=n)})
    m = TimeVaryingCox().fit(df, ["x"])
    row = m.summary.iloc[0]
    assert row.ci_low < 2.0 < row.ci_high
    assert abs(np.log(row.estimate / 2.0)) < 0.1


def test_time_varying_cox_recovers_the_hazard_ratio_with_the_real_referral_mechanisms():
    # The extended simulator (issue 19): the RTW hazard is multiplied by 1.5 from the day after any
    # referral; referral is confounded by severity (adjusted for), is also recorded after the outcome
    # (must not count), and competing events censor the cause-specific model.
    df = simulate(20_000, 12, hr=1.5, **EXTENDED)
    assert (df.referral_day >= df.time_days).any()
    row = TimeVaryingCox().fit(df, ["severity", "male", "age", "payer_type"]).summary.iloc[0]
    assert row.ci_low < 1.5 < row.ci_high
    assert abs(np.log(row.estimate / 1.5)) < 0.06
