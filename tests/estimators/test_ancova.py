"""IPTW x IPOW weighted ANCOVA on simulated quality-of-life data with a planted effect."""

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from ipm_outcomes.errors import IpmError
from ipm_outcomes.estimators import WeightedANCOVA
from ipm_outcomes.estimators.ancova import _wls


def _row(summary, measure, arm=None, variant="ipow"):
    s = summary[(summary.variant == variant) & (summary.measure == measure)]
    s = s[s.arm.isna()] if arm is None else s[s.arm == arm]
    assert len(s) == 1
    return s.iloc[0]


def _qol(n=8000, seed=1, effect=3.0):
    """Severity raises the chance of early referral and lowers the score (confounding); a
    post-baseline factor (more visits once referred) raises both the chance of a follow-up score
    and the score itself, so complete cases are a biased sample unless weighted."""
    rng = np.random.default_rng(seed)
    sev = rng.normal(size=n)
    age = rng.uniform(20, 64, n)
    early = rng.random(n) < 1 / (1 + np.exp(-(-0.8 + 0.9 * sev)))
    base = 40 - 3 * sev + rng.normal(0, 5, n)
    engaged = rng.random(n) < 0.3 + 0.4 * early
    follow = base + 5 - 2 * sev + effect * early + 4 * engaged + rng.normal(0, 4, n)
    observed = rng.random(n) < np.where(engaged, 0.85, 0.35)
    base_obs = np.where(rng.random(n) < 0.9, base, np.nan)
    return pd.DataFrame(
        {
            "early": early.astype(int),
            "severity": sev,
            "age": age,
            "baseline_score": base_obs,
            "followup_score": np.where(observed, follow, np.nan),
            "engaged": engaged.astype(int),
        }
    ), effect


def test_mean_difference_recovers_the_planted_effect():
    df, effect = _qol()
    m = WeightedANCOVA(mcid=5, higher_is_better=True).fit(
        df, "early", ["severity", "age"], observation_covariates=["engaged"]
    )
    md = _row(m.summary, "mean_difference")
    # the adjusted difference equals engaged-share difference x 4 plus the effect: "engaged" is on
    # the causal path (early -> more visits -> better score), so the total effect is 3 + 4 * 0.4
    total = effect + 4 * 0.4
    assert md.ci_low < total < md.ci_high
    assert abs(md.estimate - total) < 0.5
    # complete cases over-represent the engaged, who improve more; weighting fixes the arm means
    early = _row(m.summary, "adjusted_mean", "early").estimate
    assert early - _row(m.summary, "adjusted_mean", "delayed").estimate == pytest.approx(md.estimate)


def test_complete_case_arm_means_are_biased_without_observation_weights():
    df, effect = _qol(seed=2)
    m = WeightedANCOVA().fit(df, "early", ["severity", "age"], observation_covariates=["engaged"])
    # true mean follow-up under "delayed" for everyone: 45 + 4 * 0.3 (severity averages 0)
    true_delayed = 45 + 4 * 0.3
    ipow = _row(m.summary, "adjusted_mean", "delayed").estimate
    cc = _row(m.summary, "adjusted_mean", "delayed", variant="complete_case").estimate
    assert abs(ipow - true_delayed) < 0.3
    assert cc - true_delayed > 0.5


def test_responders_respect_the_direction_of_improvement():
    df, _ = _qol(seed=3)
    better_up = WeightedANCOVA(mcid=5, higher_is_better=True).fit(
        df, "early", ["severity"], observation_covariates=["engaged"]
    )
    better_down = WeightedANCOVA(mcid=5, higher_is_better=False).fit(
        df, "early", ["severity"], observation_covariates=["engaged"]
    )
    up = _row(better_up.summary, "responder_proportion", "delayed").estimate
    down = _row(better_down.summary, "responder_proportion", "delayed").estimate
    # scores rise by about 5 + 4 * engaged on average: most improve by >= 5 upwards, few downwards
    assert up > 0.5 > 0.1 > down
    rd = _row(better_up.summary, "responder_risk_difference")
    assert rd.ci_low > 0


def test_wls_matches_statsmodels_and_drops_redundant_columns():
    rng = np.random.default_rng(4)
    n = 500
    X = np.column_stack([np.ones(n), rng.normal(size=(n, 2)), np.ones(n)])  # last column = intercept
    y = X[:, 1] * 2 + rng.normal(size=n)
    w = rng.uniform(0.5, 2, n)
    beta, V = _wls(y, X, w)
    ref = sm.WLS(y, X[:, :3], weights=w).fit(cov_type="HC1")
    np.testing.assert_allclose(beta[:3], ref.params, rtol=1e-10)
    np.testing.assert_allclose(V[:3, :3], ref.cov_params(), rtol=1e-8)
    assert beta[3] == 0 and np.all(V[3] == 0)


def test_needs_both_groups_with_scores():
    df, _ = _qol(n=200)
    with pytest.raises(IpmError, match="both exposure groups"):
        WeightedANCOVA().fit(df.assign(early=1), "early", ["severity"])
