"""Clone-censor-weight: clones and weights by hand, then against simulated counterfactual truth."""

import numpy as np
import numpy.testing as npt
import pandas as pd
import pytest
import simulate as sim
from simulate import EXTENDED, simulate, truth

from ipm_outcomes.errors import IpmError
from ipm_outcomes.estimators import CloneCensorWeight, NaiveComparison, clone
from ipm_outcomes.estimators._common import NEVER

COVARIATES = ["severity", "male", "age", "payer_type"]


def test_clone_follow_up_by_hand():
    #            time event referral   early [0,42]            delayed [43, never]
    # a: RTW 30, never referred        RTW 30 (no deviation)   RTW 30
    # b: RTW 60, referred day 10       RTW 60                  censored after day 10
    # c: RTW 90, referred day 42       RTW 90                  censored after day 42
    # d: RTW 90, referred day 43       censored after day 42   RTW 90
    # e: RTW 20, referral recorded 20  RTW 20 (outcome first)  RTW 20
    # f: censored day 42, never        censored 42             censored 42
    # g: competing day 100, never      censored after day 42   competing 100
    time = np.array([30, 60, 90, 90, 20, 42, 100])
    event = np.array([1, 1, 1, 1, 1, 0, 2])
    referral = np.array([NEVER, 10, 42, 43, 20, NEVER, NEVER])
    d, e = clone(time, event, referral, 0, 42)
    npt.assert_array_equal(d, [30, 60, 90, 42, 20, 42, 42])
    npt.assert_array_equal(e, [1, 1, 1, 0, 1, 0, 0])
    d, e = clone(time, event, referral, 43, None)
    npt.assert_array_equal(d, [30, 10, 42, 90, 20, 42, 100])
    npt.assert_array_equal(e, [1, 0, 0, 1, 1, 0, 2])


MINI = pd.DataFrame(
    {
        # person:        1     2    3     4     5    6
        "time_days": [1, 4, 5, 3, 5, 2],
        "event": [1, 1, 0, 2, 1, 1],
        "referral_day": pd.array([None, 0, 1, None, 3, 2], dtype="Int64"),
    }
)


def _mini_fit():
    # no covariates and one baseline interval per day: the referral model is the daily
    # Kaplan-Meier hazard of referral, so every weight can be worked out by hand
    return CloneCensorWeight(
        grace_period_days=2, horizons=(5,), truncation_percentiles=None, hazard_interval_days=1, n_bootstrap=0
    ).fit(MINI, [])


def test_ccw_weights_and_curves_by_hand():
    # Referral at risk on day s: no outcome by s and not referred before s.
    #   day 0: persons 1-6 at risk, person 2 referred     h0 = 1/6   S(0) = 5/6
    #   day 1: persons 3,4,5,6 at risk, person 3 referred h1 = 1/4   S(1) = 5/8
    #   day 2: persons 4,5 at risk (6's day-2 referral comes after its RTW that day)  S(2) = 5/8
    # Early [0, 2]: not yet referred on day s weighs (1 - S(2)/S(s-1)) / (1 - S(2)):
    #   1 on day 0, 2/3 on day 1, 0 on day 2; referred persons weigh 1/(1 - S(2)) = 8/3 from
    #   the day after their referral.
    #   day 1: at risk 5 x 2/3 + 8/3 (person 2) = 6, RTW of person 1 (2/3)  -> CIF 1/9
    #   day 2: persons 2,3 (8/3 each); person 6's RTW has weight 0
    #   day 4: RTW of person 2, at risk 16/3                               -> CIF 1/9 + 8/9 * 1/2
    # Delayed [3, never]: 1/S(s-1) until day 3, then 1/S(2) for everyone left:
    #   day 1: 5 x 6/5 = 6, RTW (person 1) 6/5           -> CIF 0.2
    #   day 2: persons 4,5,6 x 8/5, RTW (person 6)       -> + 0.8 * 1/3
    #   day 3: persons 4,5 x 8/5, competing (person 4)   -> competing 0.8 * 2/3 * 1/2
    #   day 5: person 5 x 8/5, RTW                       -> + 0.8 * 2/3 * 1/2
    m = _mini_fit()
    c = m.curves_.set_index(["arm", "day"])
    npt.assert_allclose(c.loc["early", "cumulative_incidence"].to_numpy(), [0, 1 / 9, 1 / 9, 1 / 9, 5 / 9, 5 / 9])
    npt.assert_allclose(c.loc["early", "weighted_at_risk"].to_numpy(), [6, 6, 16 / 3, 16 / 3, 16 / 3, 8 / 3])
    npt.assert_allclose(c.loc["early", "n_at_risk"].to_numpy(), [6, 6, 5, 2, 2, 1])
    cif_delayed = [0, 0.2, 0.2 + 0.8 / 3, 0.2 + 0.8 / 3, 0.2 + 0.8 / 3, 0.2 + 0.8 / 3 + 0.8 * 2 / 3 / 2]
    npt.assert_allclose(c.loc["delayed", "cumulative_incidence"].to_numpy(), cif_delayed)
    npt.assert_allclose(c.loc["delayed", "cumulative_incidence_competing"].to_numpy()[3:], [0.8 * 2 / 3 / 2] * 3)
    npt.assert_allclose(c.loc["delayed", "weighted_at_risk"].to_numpy(), [6, 6, 4.8, 3.2, 1.6, 1.6])
    rd = m.summary[(m.summary.measure == "risk_difference")].estimate.iloc[0]
    assert rd == pytest.approx(5 / 9 - cif_delayed[5])
    # days not back at work over days 0..4: sum of 1 - CIF
    early_off = m.summary[(m.summary.measure == "restricted_mean_days_off_work") & (m.summary.arm == "early")]
    assert early_off.estimate.iloc[0] == pytest.approx(5 - (0 + 1 / 9 + 1 / 9 + 1 / 9 + 5 / 9))


def test_referral_score_by_hand():
    m = _mini_fit()
    npt.assert_allclose(m.referral_score_, 1 - 5 / 8)


def test_invalid_strategy_is_reported():
    with pytest.raises(IpmError, match="not a valid range"):
        CloneCensorWeight(strategies={"x": (10, 5)}, n_bootstrap=0).fit(MINI, [])


@pytest.fixture(scope="module")
def truth_default():
    return truth(200_000, 99)


@pytest.fixture(scope="module")
def observed():
    return simulate(20_000, 1)


def test_ccw_recovers_the_simulated_truth(observed, truth_default):
    # Tolerance 0.025: about three bootstrap standard errors at 20,000 persons (measured 0.003-0.008
    # for the arm levels, 0.008 for the difference at day 180); the truth's Monte Carlo error is ~0.001.
    m = CloneCensorWeight(truncation_percentiles=None, n_bootstrap=0).fit(observed, COVARIATES)
    s = m.summary
    for arm in ("early", "delayed"):
        for h in (90, 180, 365):
            est = s[(s.measure == "cumulative_incidence") & (s.arm == arm) & (s.horizon_days == h)].estimate.iloc[0]
            assert est == pytest.approx(truth_default[arm][h], abs=0.025), (arm, h)
    rd = s[(s.measure == "risk_difference") & (s.horizon_days == 180)].estimate.iloc[0]
    assert rd == pytest.approx(truth_default["early"][180] - truth_default["delayed"][180], abs=0.025)


def test_ccw_recovers_the_truth_with_the_real_referral_mechanisms():
    # Issue 19's mechanisms: referral after the outcome at 0.3 times the rate (recorded, also inside
    # the window), the referral probability halving from day 120, an effect of any referral from
    # the day after it, fewer competing events. Same tolerance as above (about three standard errors).
    t = truth(200_000, 98, **EXTENDED)
    m = CloneCensorWeight(truncation_percentiles=None, n_bootstrap=0).fit(simulate(20_000, 8, **EXTENDED), COVARIATES)
    s = m.summary
    for arm in ("early", "delayed"):
        for h in (90, 180, 365):
            est = s[(s.measure == "cumulative_incidence") & (s.arm == arm) & (s.horizon_days == h)].estimate.iloc[0]
            assert est == pytest.approx(t[arm][h], abs=0.025), (arm, h)


@pytest.mark.parametrize("severity", [-1.0, 2.5])
def test_exact_truth_equals_the_simulated_strategies(severity):
    # The coverage study scores the simulator against exact_truth (no Monte Carlo error). Its closed
    # form must be what truth() simulates: referral days from the natural distribution restricted
    # to the window (halving from day 120), the day's outcome before the referral and the hazard
    # changed from the day after it. hr = 4 makes a one-day shift of the effect (from day r instead
    # of r + 1) move the cumulative incidence by about 0.01, ten times the tolerance's standard error.
    n, hr, options = 300_000, 4.0, dict(EXTENDED, hr=4.0)
    one = (np.full(n, severity), np.ones(n, dtype=int), np.full(n, 50.0), np.full(n, "workers_comp"))
    p_ref, lam_rtw, lam_comp = sim._rates(*one, 0.6)
    lam_comp = lam_comp * options["competing_scale"]
    exact = sim._strategy_cif(
        p_ref[:1], lam_rtw[:1], lam_comp[:1], hr=hr, grace=42, horizons=(90, 180, 365),
        effect_any_referral=True, halving_day=120,
    )  # fmt: skip
    rng = np.random.default_rng(5)
    for name, (lo, hi) in {"early": (0, 42), "delayed": (43, np.inf)}.items():
        referral = sim._referral_in(rng, p_ref, lo, hi, 120)
        time, event = sim._outcomes(rng, referral, lam_rtw, lam_comp, hr, 42, np.full(n, 366), True)
        for h in (90, 180, 365):
            simulated = np.mean((event == 1) & (time <= h))
            se = np.sqrt(simulated * (1 - simulated) / n)
            assert exact[name][h][0] == pytest.approx(simulated, abs=4 * se), (name, h)


def test_naive_comparison_is_biased_the_way_the_simulation_makes_it(observed, truth_default):
    nv = NaiveComparison(n_bootstrap=0).fit(observed)
    rd = nv.summary[(nv.summary.measure == "risk_difference") & (nv.summary.horizon_days == 180)].estimate.iloc[0]
    true_rd = truth_default["early"][180] - truth_default["delayed"][180]
    # sicker persons are referred sooner and quick recoverers are never referred: early looks worse
    assert rd < true_rd - 0.05


def test_aalen_johansen_arm_levels_match_truth_and_one_minus_km_does_not(truth_default):
    # Competing events are common here (long-term disability / retirement / death): treating them
    # as censoring (1 - KM) estimates RTW in a world without them and overstates it.
    observed = simulate(20_000, 2)
    m = CloneCensorWeight(truncation_percentiles=None, n_bootstrap=0).fit(observed, COVARIATES)
    c = m.curves_.set_index(["arm", "day"])
    for arm in ("early", "delayed"):
        aj = c.loc[(arm, 365), "cumulative_incidence"]
        km = c.loc[(arm, 365), "one_minus_km"]
        assert aj == pytest.approx(truth_default[arm][365], abs=0.025)
        assert km - truth_default[arm][365] > 0.04
        assert km - aj > 0.04


def test_bootstrap_interval_covers_truth_and_is_worker_independent(truth_default):
    observed = simulate(6_000, 3)
    fits = [
        CloneCensorWeight(truncation_percentiles=None, n_bootstrap=40, seed=11, workers=w).fit(
            observed, COVARIATES, subgroup_cols=["male"]
        )
        for w in (1, 2)
    ]
    pd.testing.assert_frame_equal(fits[0].summary, fits[1].summary)
    pd.testing.assert_frame_equal(fits[0].subgroups_, fits[1].subgroups_)
    s = fits[0].summary
    row = s[(s.measure == "risk_difference") & (s.horizon_days == 180)].iloc[0]
    true_rd = truth_default["early"][180] - truth_default["delayed"][180]
    assert row.ci_low < true_rd < row.ci_high
    assert row.ci_low < row.estimate < row.ci_high
    assert fits[0].bootstrap_.failed == 0


def test_subgroup_estimates_use_the_same_weights():
    observed = simulate(6_000, 4)
    m = CloneCensorWeight(truncation_percentiles=None, n_bootstrap=0).fit(observed, COVARIATES, subgroup_cols=["male"])
    sg = m.subgroups_
    assert set(sg.level) == {"0", "1"}
    rd = sg[(sg.measure == "risk_difference") & (sg.horizon_days == 180)].set_index("level").estimate
    overall = m.summary[(m.summary.measure == "risk_difference") & (m.summary.horizon_days == 180)].estimate.iloc[0]
    # the subgroup differences bracket the overall one (no effect modification by sex here)
    assert min(rd) - 0.05 < overall < max(rd) + 0.05
    assert sg.n[sg.level == "1"].iloc[0] == int(observed.male.sum())


def test_null_effect_with_strong_confounding():
    # no effect of referral, strong confounding by indication: the primary interval covers 0 and
    # the naive one does not
    observed = simulate(8_000, 20261128, hr=1.0)
    m = CloneCensorWeight(truncation_percentiles=None, n_bootstrap=60, seed=3, workers=2).fit(observed, COVARIATES)
    nv = NaiveComparison(n_bootstrap=60, seed=3, workers=2).fit(observed)
    ccw_rd = m.summary[(m.summary.measure == "risk_difference") & (m.summary.horizon_days == 180)].iloc[0]
    naive_rd = nv.summary[(nv.summary.measure == "risk_difference") & (nv.summary.horizon_days == 180)].iloc[0]
    assert ccw_rd.ci_low < 0 < ccw_rd.ci_high
    assert naive_rd.ci_high < 0


def _brute_force_curves(df, covariates, grace, max_day, model, X):
    """Weighted Aalen-Johansen curves of both primary strategies with every clone-day's weight
    computed as the product of the daily ratios P_strategy(referral decision) / P_observed(...)
    (no telescoping), from the fitted referral model's daily hazards h(s | X)."""
    h = model.interval_hazard(X)  # one column per day (hazard_interval_days=1)
    n, days = h.shape
    S = np.cumprod(1 - h, axis=1)  # S[:, s] = P(no referral through day s)
    time = df.time_days.to_numpy()
    event = df.event.to_numpy()
    referral = df.referral_day.fillna(NEVER).astype(np.int64).to_numpy()
    curves = {}
    for name, (a, b) in {"early": (0, grace), "delayed": (grace + 1, None)}.items():
        duration, ev = clone(time, event, referral, a, b)
        at_risk = np.zeros(max_day + 1)
        events = np.zeros((max_day + 1, 2))
        for i in range(n):
            w = 1.0
            for t in range(min(duration[i], max_day) + 1):
                at_risk[t] += w
                if t == duration[i] and ev[i] > 0:
                    events[t, ev[i] - 1] += w
                # the referral decision at the end of day t (after the day's outcome), for the next day
                if t >= time[i] or referral[i] < t or t >= days:
                    continue  # no decision (outcome first, already referred), or past the windows: ratio 1
                s_prev = S[i, t - 1] if t >= 1 else 1.0
                h_obs = h[i, t]
                if b is not None:  # early [a, b]: natural timing restricted to the window
                    h_str = h_obs * s_prev / (s_prev - S[i, b]) if t <= b else 1.0
                else:  # delayed [a, never]: no referral before a, natural afterwards
                    h_str = 0.0 if t < a else h_obs
                referred_now = referral[i] == t
                w *= h_str / h_obs if referred_now else (1 - h_str) / (1 - h_obs)
        hazard = np.divide(events, at_risk[:, None], out=np.zeros_like(events), where=at_risk[:, None] > 0)
        surv = np.cumprod(1 - hazard.sum(1))
        curves[name] = np.cumsum(np.concatenate([[1.0], surv[:-1]]) * hazard[:, 0])
    return curves


def test_ccw_curves_equal_the_untelescoped_inverse_probability_weights():
    # Pins the closed-form weights (before, inside and after the window; unreferred and referred
    # clones; the day a referred clone's weight changes) and the same-day order (outcome first,
    # then referral) against the weights written as a product of daily probability ratios. The data
    # hold referrals on day 0 and on the last day of the window, referrals on the day of the outcome
    # and after it (also inside the window), competing events and censoring.
    rng = np.random.default_rng(5)
    n, grace, max_day = 400, 5, 14
    x = rng.normal(size=n)
    p = 1 / (1 + np.exp(-(-1.8 + 0.8 * x)))
    natural = rng.geometric(p) - 1
    lam = np.exp(-2.6 - 0.5 * x)
    time = np.minimum(rng.geometric(1 - np.exp(-lam)), max_day + 3)
    event = np.where(time > max_day + 2, 0, np.where(rng.random(n) < 0.85, 1, 2))
    event = np.where(rng.random(n) < 0.1, 0, event)
    after = time + rng.integers(0, 4, n)  # some referred on or after their outcome day
    referral = np.where(natural < time, natural, np.where(rng.random(n) < 0.5, after, -1))
    df = pd.DataFrame(
        {
            "time_days": time,
            "event": event,
            "referral_day": pd.array(np.where(referral >= 0, referral, 0), dtype="Int64"),
            "x": x,
        }
    )
    df["referral_day"] = df["referral_day"].where(referral >= 0)
    assert ((df.referral_day == 0) & (df.time_days > 0)).any() and (df.referral_day == grace).any()
    assert (df.referral_day == df.time_days).any() and ((df.referral_day > df.time_days) & (df.referral_day <= grace)).any()
    m = CloneCensorWeight(
        grace_period_days=grace, horizons=(max_day,), truncation_percentiles=None, hazard_interval_days=1, n_bootstrap=0
    ).fit(df, ["x"])
    X = (x - x.mean()) / x.std()
    expected = _brute_force_curves(df, ["x"], grace, max_day, m.referral_models_[0], X[:, None])
    c = m.curves_.set_index(["arm", "day"])
    for arm in ("early", "delayed"):
        npt.assert_allclose(c.loc[arm, "cumulative_incidence"].to_numpy(), expected[arm], rtol=1e-9, atol=1e-12)


def test_referral_model_is_the_true_daily_logistic_model_and_the_default_penalty_is_negligible():
    # The simulator's daily referral probability is logit^-1(-4 + 0.6 severity + 0.01 (age - 42)
    # + 0.3 workers' comp): the pooled logistic referral model (main effects, piecewise-constant
    # baseline) is correctly specified, and its coefficients are recovered. The default ridge
    # penalty (l2 = 1e-4 per person on standardised slopes) moves nothing that matters.
    df = simulate(20_000, 9, **EXTENDED)
    fits = {
        l2: CloneCensorWeight(truncation_percentiles=None, n_bootstrap=0, l2=l2).fit(df, COVARIATES)
        for l2 in (1e-4, 0.0)
    }
    m = fits[0.0]
    model = m.referral_models_[0]
    scale = m.design_.matrix.std(axis=0)
    coef = dict(zip(m.design_.names, model.coef_ / scale))  # per unit of the original covariate
    assert coef["severity"] == pytest.approx(0.6, abs=0.05)
    assert coef["age"] == pytest.approx(0.01, abs=0.004)
    assert coef["payer_type=workers_comp"] == pytest.approx(0.3, abs=0.1)
    assert coef["male"] == pytest.approx(0.0, abs=0.07)
    for arm in ("early", "delayed"):
        a = fits[1e-4].curves_.set_index(["arm", "day"]).loc[arm, "cumulative_incidence"].to_numpy()
        b = fits[0.0].curves_.set_index(["arm", "day"]).loc[arm, "cumulative_incidence"].to_numpy()
        npt.assert_allclose(a, b, atol=2e-4)


def test_truncation_at_percentiles_0_and_100_is_no_truncation():
    # The study spec switches truncation off with [0, 100] (issue 19: truncating at fixed
    # percentiles shifts the arms by the same amount at every size, so the primary analysis does not
    # truncate). That must be exactly the untruncated estimator: the caps of the clones followed
    # after the window (the 0th/100th percentiles of their final weights) must not clip clones with
    # an outcome before the window closed, nor the transitional weights inside it.
    df = simulate(6_000, 21, **EXTENDED)
    a = CloneCensorWeight(truncation_percentiles=(0, 100), n_bootstrap=0).fit(df, COVARIATES)
    b = CloneCensorWeight(truncation_percentiles=None, n_bootstrap=0).fit(df, COVARIATES)
    pd.testing.assert_frame_equal(a.curves_, b.curves_)
    assert (a.weights_.n_truncated == 0).all()


def test_days_off_at_any_horizon_equals_the_summary_at_the_estimators_horizons():
    """days_off_at reads the restricted mean (and its bootstrap interval) from the by-day values: at the
    estimator's own horizons it gives exactly the summary's rows, and at any other day it is the sum of the
    curve's complement up to that day."""
    observed = simulate(2_000, 6)
    m = CloneCensorWeight(truncation_percentiles=None, n_bootstrap=8, seed=3).fit(observed, COVARIATES)
    cols = ["measure", "arm", "horizon_days", "estimate", "ci_low", "ci_high", "n"]
    days_off = m.summary[m.summary.measure.isin(["rmst_difference", "restricted_mean_days_off_work"])]
    days_off = days_off[days_off.arm.isin(["early", "delayed"]) | (days_off.contrast == "early vs delayed")]
    got = m.days_off_at([90, 180, 365])
    key = ["measure", "arm", "horizon_days"]
    pd.testing.assert_frame_equal(
        got[cols].sort_values(key, na_position="first").reset_index(drop=True),
        days_off[cols].sort_values(key, na_position="first").reset_index(drop=True),
    )
    at_300 = m.days_off_at([300]).set_index("arm")
    cif = m.values_
    for arm in ("early", "delayed"):
        assert at_300.loc[arm, "estimate"] == pytest.approx(300 - cif[f"cif/{arm}"][:300].sum(), abs=1e-9)
    diff = m.days_off_at([300]).query("measure == 'rmst_difference'").iloc[0]
    assert diff.estimate == pytest.approx(at_300.loc["early", "estimate"] - at_300.loc["delayed", "estimate"], abs=1e-9)
    assert diff.ci_low < diff.estimate < diff.ci_high


@pytest.mark.parametrize("estimator", ["naive", "landmark"])
def test_days_off_at_equals_the_summary_of_the_other_two_arm_estimators(estimator):
    from ipm_outcomes.estimators import LandmarkIPTW

    observed = simulate(2_000, 7)
    if estimator == "naive":
        m = NaiveComparison(n_bootstrap=5, seed=1).fit(observed)
    else:
        m = LandmarkIPTW(n_bootstrap=5, seed=1).fit(observed, COVARIATES)
    got = m.days_off_at([365]).query("measure == 'rmst_difference'").iloc[0]
    want = m.summary.query("measure == 'rmst_difference' and horizon_days == 365").iloc[0]
    # the same sums, accumulated in another order
    assert [got.estimate, got.ci_low, got.ci_high] == pytest.approx([want.estimate, want.ci_low, want.ci_high], abs=1e-9)
