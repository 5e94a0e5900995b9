"""Mean costs with censored follow-up (estimators/costs.py): Bang and Tsiatis (2000) simple and
partitioned estimators against hand-computed answers and simulated truth, and the clone-censor-weight
mean cost per referral strategy against a truth simulated under each strategy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ipm_outcomes.errors import IpmError
from ipm_outcomes.estimators import CloneCensorCost, IPCWMeanCost, MultiOutcomeCloneCensorCost, NaiveCostComparison
from ipm_outcomes.estimators.costs import km_censoring_survival

# Five persons followed on days 0..10. P2 is lost after day 4 and P4 after day 8; P3 dies on day 6.
PERSONS = pd.DataFrame(
    {
        "person_id": ["P1", "P2", "P3", "P4", "P5"],
        "observed_day": [10, 4, 6, 8, 10],
        "complete": [True, False, True, False, True],
    }
)
DAILY = pd.DataFrame(
    [
        ("P1", 0, 20.0), ("P1", 3, 30.0), ("P1", 7, 40.0), ("P1", 10, 10.0),
        ("P2", 1, 10.0), ("P2", 4, 20.0),
        ("P3", 2, 20.0), ("P3", 6, 40.0),
        ("P4", 0, 10.0), ("P4", 5, 15.0), ("P4", 8, 25.0),
        ("P5", 4, 30.0), ("P5", 9, 50.0),
    ],
    columns=["person_id", "day", "amount"],
)  # fmt: skip


def test_km_of_loss_by_hand():
    """Loss after day 4: 1 of 5 who could be lost; after day 8: 1 of 3 (P3 died on day 6 and is out;
    P1 and P5 are followed on)."""
    K = km_censoring_survival(PERSONS.observed_day.to_numpy(), PERSONS.complete.to_numpy(), 10)
    expected = [1, 1, 1, 1, 1, 0.8, 0.8, 0.8, 0.8, 0.8 * 2 / 3, 0.8 * 2 / 3]
    np.testing.assert_allclose(K, expected, rtol=1e-12)


def test_simple_estimator_by_hand():
    """Complete histories weighted by 1/K(last day): (100/(8/15) + 60/0.8 + 80/(8/15)) / 5 = 82.5."""
    est = IPCWMeanCost(method="simple", horizon_days=10).fit(PERSONS, DAILY)
    assert est.mean_ == pytest.approx(82.5, rel=1e-12)
    assert est.complete_case_mean_ == pytest.approx(80.0)  # (100 + 60 + 80) / 3
    assert est.summary.loc[0, "estimate"] == pytest.approx(82.5, rel=1e-12)


def test_partitioned_estimator_by_hand():
    """Intervals 0-4, 5-9, 10: everyone's 0-4 costs (140, all observed through day 4, K = 1);
    5-9: P1 40 and P5 50 at K(9) = 8/15, P3 (died on day 6) 40 at K(6) = 0.8; day 10: P1 10 at
    K(10) = 8/15. Mean = (140 + 75 + 93.75 + 50 + 18.75) / 5 = 75.5."""
    est = IPCWMeanCost(method="partitioned", horizon_days=10, interval_days=5).fit(PERSONS, DAILY)
    assert est.mean_ == pytest.approx(75.5, rel=1e-12)


def test_without_censoring_both_are_the_plain_mean():
    persons = PERSONS.assign(complete=True)
    plain = DAILY.groupby("person_id").amount.sum().reindex(persons.person_id).mean()
    for method in ("simple", "partitioned"):
        est = IPCWMeanCost(method=method, horizon_days=10, interval_days=3).fit(persons, DAILY)
        assert est.mean_ == plain
        np.testing.assert_array_equal(est.censoring_survival_, np.ones(11))


def test_costs_after_the_last_observed_day_or_the_horizon_are_not_counted():
    extra = pd.concat([DAILY, pd.DataFrame([("P2", 5, 999.0), ("P1", 11, 999.0)], columns=DAILY.columns)])
    est = IPCWMeanCost(method="partitioned", horizon_days=10, interval_days=5).fit(PERSONS, extra)
    assert est.mean_ == pytest.approx(75.5, rel=1e-12)


def test_subject_specific_survival_is_used_as_given():
    """K_i(t) = 0.5 for everyone from day 1 doubles every complete history's weight (simple)."""
    K = np.full((5, 11), 0.5)
    K[:, 0] = 1.0
    est = IPCWMeanCost(method="simple", horizon_days=10).fit(PERSONS, DAILY, censoring_survival=K)
    assert est.mean_ == pytest.approx((100 + 60 + 80) * 2 / 5, rel=1e-12)


@pytest.mark.parametrize(
    ("persons", "daily", "message"),
    [
        (PERSONS.assign(complete=["yes", True, True, True, True]), DAILY, "column complete: row 0 holds 'yes'"),
        (PERSONS.assign(observed_day=[10, -1, 6, 8, 10]), DAILY, "column observed_day: row 1 holds -1"),
        (PERSONS, DAILY.assign(amount=[1.0] * 12 + [-5.0]), "column amount: row 12 holds -5.0"),
        (PERSONS, DAILY.assign(person_id=["P1"] * 12 + ["P9"]), "row 12 names person 'P9'"),
    ],
)
def test_bad_input_is_one_line_naming_column_and_row(persons, daily, message):
    with pytest.raises(IpmError, match=message):
        IPCWMeanCost().fit(persons, daily)


# --- covariate-dependent loss: the complete-case mean is biased, IPCW is not ---------------------

H = 100
DEATH = 0.004  # daily hazard of death
LOSS = (0.002, 0.012)  # daily hazard of loss by group: the costly group is lost more often


def _expected_days() -> float:
    """E[number of days with costs] = sum_{t=0..H} P(alive on day t), death day ~ geometric from 0."""
    return float(np.sum((1 - DEATH) ** np.arange(H + 1)))


def _cost_study(rng: np.random.Generator, n: int):
    x = rng.random(n) < 0.5
    daily_mean = np.where(x, 30.0, 10.0)
    death = rng.geometric(DEATH, n) - 1  # the death day (costs accrue on it)
    loss_rate = np.where(x, LOSS[1], LOSS[0])
    lost_after = rng.geometric(loss_rate) - 1  # followed through this day
    end = np.minimum(death, H)
    last = np.minimum(end, lost_after)
    complete = end <= lost_after  # a death on the day of loss comes first
    person = np.repeat(np.arange(n), last + 1)
    day = np.arange(len(person)) - np.repeat(np.cumsum(last + 1) - (last + 1), last + 1)
    amount = rng.gamma(2.0, daily_mean[person] / 2.0)
    persons = pd.DataFrame({"person_id": np.arange(n), "observed_day": last, "complete": complete})
    daily = pd.DataFrame({"person_id": person, "day": day, "amount": amount})
    K = (1 - loss_rate[:, None]) ** np.arange(H + 1)[None, :]  # P(still observed on day t | x)
    return persons, daily, K


@pytest.fixture(scope="module")
def replicated():
    rng = np.random.default_rng(20261206)
    out = {"simple": [], "partitioned": [], "complete_case": [], "km_only": []}
    for _ in range(40):
        persons, daily, K = _cost_study(rng, 1500)
        simple = IPCWMeanCost(method="simple", horizon_days=H).fit(persons, daily, censoring_survival=K)
        part = IPCWMeanCost(method="partitioned", horizon_days=H, interval_days=10).fit(persons, daily, censoring_survival=K)
        out["simple"].append(simple.mean_)
        out["partitioned"].append(part.mean_)
        out["complete_case"].append(simple.complete_case_mean_)
        out["km_only"].append(IPCWMeanCost(horizon_days=H, interval_days=10).fit(persons, daily).mean_)
    return {k: np.array(v) for k, v in out.items()}


def test_ipcw_recovers_the_truth_where_the_complete_case_mean_is_biased(replicated):
    truth = 0.5 * (10.0 + 30.0) * _expected_days()
    for method in ("simple", "partitioned"):
        est = replicated[method]
        se = est.std(ddof=1) / np.sqrt(len(est))
        assert abs(est.mean() - truth) < 3 * se, (method, est.mean(), truth, se)
    cc = replicated["complete_case"]
    assert truth - cc.mean() > 10 * cc.std(ddof=1) / np.sqrt(len(cc))  # the costly are lost more: too low
    # Kaplan-Meier of loss ignores that the costly are lost more: biased too, less than complete cases
    km = replicated["km_only"]
    assert cc.mean() < km.mean() < truth - 3 * km.std(ddof=1) / np.sqrt(len(km))


def test_partitioned_and_simple_agree_and_partitioned_is_more_efficient(replicated):
    simple, part = replicated["simple"], replicated["partitioned"]
    diff = simple - part
    assert abs(diff.mean()) < 3 * diff.std(ddof=1) / np.sqrt(len(diff))
    assert part.std() < simple.std()


# --- clone-censor-weight mean cost per referral strategy ------------------------------------------

G, HC = 14, 120
RATE_RATIO, REFERRAL_COST = 0.5, 400.0


def _referral_p(x):
    return 1 / (1 + np.exp(-(-3.6 + 1.2 * x)))  # daily referral probability (logistic in x)


def _daily_base(x):
    return 10.0 + 15.0 * x  # the sicker cost more and are referred sooner: confounding


def _total(x, death, r):
    """Cost of days 0..min(death, HC): base per day, times RATE_RATIO after the referral day, plus the
    referral's own cost on its day."""
    end = np.minimum(death, HC)
    after = np.clip(end - r, 0, None)
    return _daily_base(x) * ((end + 1) - (1 - RATE_RATIO) * after) + REFERRAL_COST * (r <= end)


def _ccw_truth(seed=7, n=400_000):
    rng = np.random.default_rng(seed)
    x = (rng.random(n) < 0.4).astype(float)
    death = rng.geometric(DEATH, n) - 1
    p = _referral_p(x)
    # early: natural (geometric from day 0) referral day truncated to 0..G; delayed: G+1 + geometric
    u = rng.random(n)
    early = np.floor(np.log1p(-u * (1 - (1 - p) ** (G + 1))) / np.log1p(-p)).astype(int)
    delayed = G + rng.geometric(p)
    return _total(x, death, early).mean(), _total(x, death, delayed).mean()


def _ccw_study(seed, n, loss=(0.004, 0.004)):
    rng = np.random.default_rng(seed)
    x = (rng.random(n) < 0.4).astype(float)
    death = rng.geometric(DEATH, n) - 1
    r = rng.geometric(_referral_p(x)) - 1
    lost_after = rng.geometric(np.where(x == 1, loss[1], loss[0])) - 1  # by default independent of everything
    end = np.minimum(death, HC)
    last = np.minimum(end, lost_after)
    complete = end <= lost_after
    person = np.repeat(np.arange(n), last + 1)
    day = np.arange(len(person)) - np.repeat(np.cumsum(last + 1) - (last + 1), last + 1)
    amount = _daily_base(x[person]) * np.where(day > r[person], RATE_RATIO, 1.0) + REFERRAL_COST * (day == r[person])
    persons = pd.DataFrame(
        {
            "person_id": np.arange(n),
            "observed_day": last,
            "complete": complete,
            "referral_day": np.where(r <= last, r, np.nan),  # seen only while followed
            "x": x,
        }
    )
    return persons, pd.DataFrame({"person_id": person, "day": day, "amount": amount})


@pytest.fixture(scope="module")
def ccw_truth():
    return _ccw_truth()


@pytest.mark.parametrize("method", ["partitioned", "simple"])
def test_clone_censor_cost_recovers_the_strategy_means(ccw_truth, method):
    persons, daily = _ccw_study(11, 6000)
    est = CloneCensorCost(grace_period_days=G, horizon_days=HC, method=method, interval_days=15,
                          n_bootstrap=40, seed=3, workers=1).fit(persons, daily, ["x"])  # fmt: skip
    early, delayed = ccw_truth
    truth = {"mean/early": early, "mean/delayed": delayed, "difference/early/delayed": early - delayed}
    for key, value in truth.items():
        se = float(est.bootstrap_.standard_error(key))
        assert abs(float(est.values_[key]) - value) < 3 * se, (key, float(est.values_[key]), value, se)
    s = est.summary.set_index(["measure", "arm"])
    assert s.loc[("mean_cost_difference", None), "ci_low"] < early - delayed < s.loc[("mean_cost_difference", None), "ci_high"]
    # the naive contrast (referred by G or not, complete cases) is far off: confounding by severity
    cc = persons.complete
    totals = daily.groupby("person_id").amount.sum().reindex(persons.person_id).to_numpy()
    referred = persons.referral_day.fillna(10**6).to_numpy() <= G
    naive = totals[cc & referred].mean() - totals[cc & ~referred].mean()
    assert abs(naive - (early - delayed)) > 5 * float(est.bootstrap_.standard_error("difference/early/delayed"))



def test_referral_survival_is_the_referral_model_clone_censor_weight_fits():
    """The cost weights use the same referral model as CloneCensorWeight.fit: 1 - S(G) is its referral score."""
    from ipm_outcomes.estimators import CloneCensorWeight, build_design, standardize
    from ipm_outcomes.estimators._common import integer_days

    persons, _ = _ccw_study(11, 2000)
    df = persons.assign(time_days=persons.observed_day + 1, event=0)
    ccw = CloneCensorWeight(grace_period_days=G, horizons=(HC,), n_bootstrap=0).fit(df, ["x"], referral_col="referral_day")
    X = standardize(build_design(df, ["x"]).matrix)
    referral = integer_days(df.referral_day, "referral_day", nullable=True)
    S = ccw.referral_survival(X, df.time_days.to_numpy(), referral, range(G + 1))
    assert S.shape == (2000, G + 1) and np.all(np.diff(S, axis=1) <= 0)
    np.testing.assert_allclose(1 - S[:, G], ccw.referral_score_, rtol=1e-12)


def test_loss_that_depends_on_covariates_needs_the_loss_model(ccw_truth):
    """The costly (x = 1) are lost five times as often: Kaplan-Meier of loss leaves both arms too cheap;
    the pooled logistic loss model given x recovers them."""
    persons, daily = _ccw_study(12, 6000, loss=(0.003, 0.015))
    early, delayed = ccw_truth
    truth = {"mean/early": early, "mean/delayed": delayed, "difference/early/delayed": early - delayed}
    fits = {
        model: CloneCensorCost(grace_period_days=G, horizon_days=HC, interval_days=15, loss_model=model,
                               n_bootstrap=40, seed=3, workers=1).fit(persons, daily, ["x"])  # fmt: skip
        for model in ("km", "pooled_logistic")
    }
    for key, value in truth.items():
        est = fits["pooled_logistic"]
        se = float(est.bootstrap_.standard_error(key))
        assert abs(float(est.values_[key]) - value) < 3 * se, (key, float(est.values_[key]), value, se)
    for key in ("mean/early", "mean/delayed"):
        km = fits["km"]
        assert float(km.values_[key]) < truth[key] - 3 * float(km.bootstrap_.standard_error(key)), key
    with pytest.raises(IpmError, match="loss_model='cox'"):
        CloneCensorCost(loss_model="cox").fit(persons, daily, ["x"])



@pytest.mark.parametrize("loss_model", ["km", "pooled_logistic"])
def test_one_shared_cost_fit_equals_one_fit_per_outcome(loss_model):
    """Two cost outcomes of the same persons and follow-up (all costs, and a related part of them with
    days without any) fitted once: every estimate, interval and bootstrap replicate equals the outcome's
    own CloneCensorCost with the same seed."""
    persons, daily = _ccw_study(13, 1500, loss=(0.003, 0.015))
    rng = np.random.default_rng(4)
    related = daily[rng.random(len(daily)) < 0.3].assign(amount=lambda d: d.amount * 0.5)
    outcomes = {"total": daily, "related": related}
    settings = dict(grace_period_days=G, horizon_days=HC, interval_days=15, loss_model=loss_model, n_bootstrap=8,
                    seed=5, workers=1)
    multi = MultiOutcomeCloneCensorCost(**settings).fit(persons, outcomes, ["x"])
    assert multi.outcomes_ == ("total", "related")
    for k, costs in outcomes.items():
        one = CloneCensorCost(**settings).fit(persons, costs, ["x"])
        for tail in ("mean/{}/early", "mean/{}/delayed", "difference/{}/early/delayed"):
            key, own = tail.format(k), tail.replace("{}/", "")
            np.testing.assert_allclose(multi.values_[key], one.values_[own], rtol=1e-10, atol=0)
            np.testing.assert_allclose(multi.bootstrap_.replicates[key], one.bootstrap_.replicates[own], rtol=1e-10, atol=0)
        mine = multi.summary[multi.summary.outcome == k].drop(columns="outcome").reset_index(drop=True)
        pd.testing.assert_frame_equal(mine, one.summary, check_exact=False, rtol=1e-10)
    # the outcomes differ: the test compares two different answers, not one twice
    assert abs(float(multi.values_["mean/total/early"]) - float(multi.values_["mean/related/early"])) > 100
    assert multi.bootstrap_.n_replicates == 8 and multi.bootstrap_.failed == 0



def test_warm_started_replicates_find_the_cold_started_solution():
    """Each bootstrap replicate refits the referral model from the full-data fit's coefficients and Hessian
    (chord iterations, as CloneCensorWeight's replicates): the same solution as a fit from scratch, to the
    solver's tolerance (steps < 1e-7 in the coefficients)."""
    from ipm_outcomes.estimators import costs as C
    from ipm_outcomes.estimators.bootstrap import resample

    persons, daily = _ccw_study(21, 3000)
    est = CloneCensorCost(grace_period_days=G, horizon_days=HC, interval_days=15, n_bootstrap=4, seed=2, workers=1)
    captured = {}
    real_run = C.boot.run

    def run(statistic, data, values, **kw):
        captured.update(statistic=statistic, data=data)
        return real_run(statistic, data, values, **kw)

    C.boot.run = run
    try:
        est.fit(persons, daily, ["x"])
    finally:
        C.boot.run = real_run
    settings = captured["statistic"].settings
    assert settings["init"]  # the replicates are warm-started
    cold_settings = {k: v for k, v in settings.items() if k != "init"}
    for r in range(4):
        sample = resample(captured["data"], np.random.default_rng(r))
        warm, cold = C._strategy_means(settings, sample), C._strategy_means(cold_settings, sample)
        for key in cold:
            assert float(warm[key]) == pytest.approx(float(cold[key]), rel=1e-7, abs=1e-6), key

def test_a_bad_cost_table_of_a_shared_fit_names_its_outcome():
    persons, daily = _ccw_study(13, 200)
    bad = daily.assign(amount=lambda d: np.where(np.arange(len(d)) == 7, -1.0, d.amount))
    with pytest.raises(IpmError, match=r"^related: cost table, column amount: row 7 holds -1.0"):
        MultiOutcomeCloneCensorCost(grace_period_days=G, horizon_days=HC, n_bootstrap=0).fit(
            persons, {"total": daily, "related": bad}, ["x"]
        )
    with pytest.raises(IpmError, match="no outcomes given"):
        MultiOutcomeCloneCensorCost().fit(persons, {}, ["x"])


# Referral days for the naive comparison (grace period 2): P1 and P2 are referred within it; P4's referral
# on day 9 falls after its last observed day (8), so it is not seen and P4 counts as not referred.
REFERRAL = [1, 2, None, 9, 5]


def test_naive_cost_comparison_by_hand():
    """Simple estimator per eventual-referral group, each with its own Kaplan-Meier of loss.
    Early {P1, P2}: P2 lost after day 4 of 2 at risk, K(10) = 1/2; mean = (100 / 0.5) / 2 = 100.
    Delayed {P3, P4, P5}: P3 died on day 6 (K = 1), P4 lost after day 8 of 2 at risk (P4, P5), K(10) = 1/2;
    mean = (60 + 80 / 0.5) / 3 = 220 / 3."""
    persons = PERSONS.assign(referral_day=pd.array(REFERRAL, dtype="Int64"))
    est = NaiveCostComparison(grace_period_days=2, horizon_days=10, method="simple", n_bootstrap=0).fit(persons, DAILY)
    s = est.summary.set_index(["measure", est.summary["arm"].fillna("-")])
    assert s.loc[("mean_cost", "early"), "estimate"] == pytest.approx(100.0, rel=1e-12)
    assert s.loc[("mean_cost", "delayed"), "estimate"] == pytest.approx(220 / 3, rel=1e-12)
    assert s.loc[("mean_cost_difference", "-"), "estimate"] == pytest.approx(100 - 220 / 3, rel=1e-12)
    assert list(s["n"]) == [2, 3, 5]
    assert s["ci_low"].isna().all()


def test_naive_cost_comparison_is_the_ipcw_mean_of_each_group_with_a_seeded_bootstrap():
    persons = PERSONS.assign(referral_day=pd.array(REFERRAL, dtype="Int64"))
    est = NaiveCostComparison(grace_period_days=2, horizon_days=10, interval_days=5, n_bootstrap=40, seed=3,
                              workers=1).fit(persons, DAILY)
    for arm, ids in (("early", ["P1", "P2"]), ("delayed", ["P3", "P4", "P5"])):
        group = IPCWMeanCost(horizon_days=10, interval_days=5).fit(persons[persons.person_id.isin(ids)], DAILY[DAILY.person_id.isin(ids)])
        assert est.values_[f"mean/{arm}"] == pytest.approx(group.mean_, rel=1e-12)
    again = NaiveCostComparison(grace_period_days=2, horizon_days=10, interval_days=5, n_bootstrap=40, seed=3,
                                workers=2).fit(persons, DAILY)
    pd.testing.assert_frame_equal(est.summary, again.summary)  # seeded: the same intervals on any number of workers
    diff = est.summary.iloc[2]
    assert diff.ci_low < diff.ci_high and est.bootstrap_.n_replicates == 40
