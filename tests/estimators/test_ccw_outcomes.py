"""Clone-censor-weight for many outcomes with one referral model: equal to one fit per outcome."""

import numpy as np
import numpy.testing as npt
import pandas as pd
import pytest

from ipm_outcomes.errors import IpmError
from ipm_outcomes.estimators import CloneCensorWeight, MultiOutcomeCloneCensorWeight, MultiOutcomeNaive, NaiveComparison

SETTINGS = dict(grace_period_days=14, horizons=(30, 60, 90), hazard_interval_days=7, l2=1e-4)
OUTCOMES = ("dep", "ed", "surgery")


def _cohort(n=500, seed=7):
    """Persons with two covariates, a referral hazard that depends on them, follow-up ending at death
    (event 2 of every outcome) or censoring, and three outcomes that do not end follow-up."""
    rng = np.random.default_rng(seed)
    sev = rng.normal(size=n)
    male = rng.integers(0, 2, n)
    referral = np.floor(rng.exponential(40 / np.exp(0.6 * sev), n)).astype(float)
    referral[rng.random(n) < 0.3] = np.nan
    death = np.floor(rng.exponential(900, n))
    censor = np.where(rng.random(n) < 0.3, rng.integers(5, 120, n), 120)
    follow = np.minimum(death, censor).astype(int)
    died = death <= censor
    df = pd.DataFrame({"severity": sev, "male": male, "referral_day": pd.array(referral, dtype="Int64"),
                       "followup_days": follow})
    referral_eff = np.where(np.isnan(referral), np.inf, referral)
    for k, (base, effect) in zip(OUTCOMES, ((150, 0.7), (90, 1.0), (400, 1.5)), strict=True):
        early = referral_eff <= 14
        t = 1 + np.floor(rng.exponential(base * np.where(early, effect, 1.0) / np.exp(0.4 * sev), n))
        hit = t <= follow
        df[f"time_{k}"] = np.where(hit, t, follow).astype(int)
        df[f"event_{k}"] = np.where(hit, 1, np.where(died, 2, 0))
    return df


def _separate(df, k, **kw):
    return CloneCensorWeight(**SETTINGS, **kw).fit(
        df, ["severity", "male"], duration_col=f"time_{k}", event_col=f"event_{k}", followup_col="followup_days"
    )


def test_one_shared_fit_equals_one_fit_per_outcome_with_the_same_referral_model():
    df = _cohort()
    multi = MultiOutcomeCloneCensorWeight(**SETTINGS, n_bootstrap=6, seed=3, workers=1).fit(
        df, {k: (f"time_{k}", f"event_{k}") for k in OUTCOMES}, ["severity", "male"]
    )
    for k in OUTCOMES:
        one = _separate(df, k, n_bootstrap=6, seed=3, workers=1)
        for arm in ("early", "delayed"):
            npt.assert_allclose(multi.values_[f"cif/{k}/{arm}"], one.values_[f"cif/{arm}"], rtol=0, atol=1e-10)
            npt.assert_allclose(multi.tables_[arm][k].at_risk, one.fits_[arm].table.at_risk, rtol=1e-10)
            npt.assert_array_equal(multi.tables_[arm][k].n_at_risk, one.fits_[arm].table.n_at_risk)
            # the same resamples: every replicate's curve is the separate fit's
            npt.assert_allclose(multi.bootstrap_.replicates[f"cif/{k}/{arm}"], one.bootstrap_.replicates[f"cif/{arm}"],
                                rtol=0, atol=1e-10)
        npt.assert_allclose(multi.values_[f"rd/{k}/early/delayed"], one.values_["rd/early/delayed"], atol=1e-10)
        npt.assert_allclose(multi.values_[f"rr/{k}/early/delayed"], one.values_["rr/early/delayed"], rtol=1e-10)
        s = multi.summary[(multi.summary.outcome == k) & (multi.summary.measure == "risk_difference")]
        o = one.summary[one.summary.measure == "risk_difference"]
        npt.assert_allclose(s[["estimate", "ci_low", "ci_high"]].to_numpy(float),
                            o[["estimate", "ci_low", "ci_high"]].to_numpy(float), atol=1e-10)
    # one referral model: the persons' follow-up, not any outcome, ends its person-days
    for m_multi, m_one in zip(multi.referral_models_, _separate(df, "ed", n_bootstrap=0).referral_models_, strict=True):
        npt.assert_allclose(m_multi.coef_, m_one.coef_, rtol=1e-12)
        npt.assert_allclose(m_multi.alpha_, m_one.alpha_, rtol=1e-12)


def test_the_population_column_restricts_the_at_risk_set_only():
    df = _cohort(seed=11)
    rng = np.random.default_rng(5)
    df["new_dep"] = rng.random(len(df)) < 0.8  # 20% had the diagnosis at baseline: not in the population
    fit = lambda frame: MultiOutcomeCloneCensorWeight(**SETTINGS, n_bootstrap=0).fit(  # noqa: E731
        frame, {"dep": ("time_dep", "event_dep", "new_dep")}, ["severity", "male"]
    )
    multi = fit(df)
    # reference: a separate fit in which the persons outside the population are censored on day 0
    # (at risk on day 0 only, when no outcome can occur), with the same referral model
    ref = df.assign(time_dep=np.where(df["new_dep"], df["time_dep"], 0), event_dep=np.where(df["new_dep"], df["event_dep"], 0))
    one = _separate(ref, "dep", n_bootstrap=0)
    for arm in ("early", "delayed"):
        npt.assert_allclose(multi.values_[f"cif/dep/{arm}"], one.values_[f"cif/{arm}"], atol=1e-10)
        # persons outside the population are nowhere in the outcome's at-risk set
        assert multi.tables_[arm]["dep"].n_at_risk[0] == df["new_dep"].sum()
    # ... and their outcome data cannot change anything
    out = ~df["new_dep"]
    changed = df.assign(time_dep=np.where(out, 1, df["time_dep"]), event_dep=np.where(out, 1, df["event_dep"]))
    npt.assert_allclose(fit(changed).values_["cif/dep/early"], multi.values_["cif/dep/early"], atol=0)
    n = multi.summary[(multi.summary.measure == "cumulative_incidence")]["n"].unique()
    assert list(n) == [int(df["new_dep"].sum())]


def test_hand_computed_miniature_when_the_outcome_ends_follow_up():
    # tests/estimators/test_ccw.py's miniature, worked by hand there: with follow-up = the outcome's day
    # the multi-outcome estimator is the single-outcome one
    mini = pd.DataFrame({"time_days": [1, 4, 5, 3, 5, 2], "event": [1, 1, 0, 2, 1, 1],
                         "referral_day": pd.array([None, 0, 1, None, 3, 2], dtype="Int64")})
    m = MultiOutcomeCloneCensorWeight(grace_period_days=2, horizons=(5,), hazard_interval_days=1, n_bootstrap=0).fit(
        mini.assign(followup_days=mini["time_days"]), {"rtw": ("time_days", "event")}, []
    )
    npt.assert_allclose(m.values_["cif/rtw/early"], [0, 1 / 9, 1 / 9, 1 / 9, 5 / 9, 5 / 9])
    npt.assert_allclose(m.values_["cif/rtw/delayed"],
                        [0, 0.2, 0.2 + 0.8 / 3, 0.2 + 0.8 / 3, 0.2 + 0.8 / 3, 0.2 + 0.8 / 3 + 0.8 * 2 / 3 / 2])
    npt.assert_allclose(m.tables_["early"]["rtw"].at_risk, [6, 6, 16 / 3, 16 / 3, 16 / 3, 8 / 3])
    rows = m.summary.set_index(["measure", "arm"])
    assert rows.loc[("cumulative_incidence", "early"), "n_events"] == 3  # persons 1, 2 and 6 (whose RTW weighs 0 but is a person)


def test_no_events_in_an_arm_gives_a_missing_log_ratio_not_infinity():
    df = _cohort(n=200, seed=2)
    df["time_none"], df["event_none"] = df["followup_days"], 0
    m = MultiOutcomeCloneCensorWeight(**SETTINGS, n_bootstrap=0).fit(df, {"none": ("time_none", "event_none")}, ["severity"])
    lr = m.summary[m.summary.measure == "log_risk_ratio"]
    assert lr["estimate"].isna().all() and (lr["n_events"] == 0).all()


def test_an_outcome_after_the_end_of_follow_up_is_one_readable_error():
    df = _cohort(n=50)
    df.loc[7, "time_ed"] = int(df.loc[7, "followup_days"]) + 1
    with pytest.raises(IpmError, match=r"column time_ed: row 7 holds day \d+, after the end of follow-up"):
        MultiOutcomeCloneCensorWeight(**SETTINGS, n_bootstrap=0).fit(df, {"ed": ("time_ed", "event_ed")}, ["severity"])


def test_the_naive_comparison_of_many_outcomes_is_the_naive_comparison_of_each():
    df = _cohort(seed=4)
    df["new_dep"] = np.arange(len(df)) % 5 != 0
    multi = MultiOutcomeNaive(grace_period_days=14, horizons=(30, 90), n_bootstrap=4, seed=1, workers=1).fit(
        df, {"dep": ("time_dep", "event_dep", "new_dep"), "ed": ("time_ed", "event_ed")}
    )
    for k, rows in (("dep", df["new_dep"].to_numpy()), ("ed", np.ones(len(df), bool))):
        one = NaiveComparison(grace_period_days=14, horizons=(30, 90), n_bootstrap=0).fit(
            df[rows], duration_col=f"time_{k}", event_col=f"event_{k}"
        )
        for arm in ("early", "delayed"):
            npt.assert_allclose(multi.values_[f"cif/{k}/{arm}"], one.values_[f"cif/{arm}"], atol=1e-12)
        npt.assert_allclose(multi.values_[f"rd/{k}/early/delayed"], one.values_["rd/early/delayed"], atol=1e-12)
    assert multi.summary["ci_low"].notna().any()
