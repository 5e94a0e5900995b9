"""Logistic regression and the pooled logistic hazard against statsmodels."""

import numpy as np
import pytest
import statsmodels.api as sm

from ipm_outcomes.estimators.propensity import LogisticRegression, PooledLogisticHazard


@pytest.fixture(scope="module")
def xy():
    rng = np.random.default_rng(2)
    n = 3000
    X = rng.normal(size=(n, 3))
    X[:, 2] = rng.binomial(1, 0.3, n)
    y = rng.binomial(1, 1 / (1 + np.exp(-(0.3 + X @ [0.5, -1.0, 0.7]))))
    return X, y


def test_logistic_matches_statsmodels(xy):
    X, y = xy
    ours = LogisticRegression(l2=0).fit(X, y)
    ref = sm.GLM(y, sm.add_constant(X), family=sm.families.Binomial()).fit()
    np.testing.assert_allclose([ours.intercept_, *ours.coef_], ref.params, rtol=1e-7)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict(sm.add_constant(X)), rtol=1e-7)


def test_logistic_with_weights_and_warm_start(xy):
    X, y = xy
    w = np.random.default_rng(3).uniform(0.5, 2, len(y))
    cold = LogisticRegression(l2=0).fit(X, y, sample_weight=w)
    ref = sm.GLM(y, sm.add_constant(X), family=sm.families.Binomial(), freq_weights=w).fit()
    np.testing.assert_allclose([cold.intercept_, *cold.coef_], ref.params, rtol=1e-7)
    warm = LogisticRegression(l2=0).fit(X, y, sample_weight=w, init=(0.2, np.array([0.4, -0.9, 0.6])))
    np.testing.assert_allclose(warm.coef_, cold.coef_, rtol=1e-7)


def test_separation_stays_finite():
    X = np.array([[0.0], [0.0], [1.0], [1.0]])
    y = np.array([0, 0, 1, 1])
    m = LogisticRegression().fit(X, y)
    assert np.all(np.isfinite(m.coef_)) and m.predict_proba(np.array([[1.0]]))[0] > 0.9


def _daily_data(seed=4, n=2000, horizon=30):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    lin = X @ [0.4, -0.3]
    R = np.full(n, 10**9)
    for s in range(horizon):
        h = 1 / (1 + np.exp(-(-3 + 0.5 * (s >= 10) + lin)))
        new = (R == 10**9) & (rng.random(n) < h)
        R[new] = s
    T = rng.integers(0, 40, n)  # leaves the risk set for other reasons
    exit_day = np.minimum(R, T)
    return X, exit_day, R <= T


def test_pooled_hazard_equals_person_day_logistic_regression():
    X, exit_day, event = _daily_data()
    horizon = 30
    m = PooledLogisticHazard(interval_days=10, l2=0).fit(X, exit_day, event, horizon=horizon)
    rows, ys = [], []
    for i in range(len(exit_day)):
        last = min(exit_day[i], horizon - 1)
        for s in range(last + 1):
            rows.append([s < 10, 10 <= s < 20, s >= 20, *X[i]])
            ys.append(float(event[i] and s == exit_day[i] and exit_day[i] < horizon))
    ref = sm.GLM(np.array(ys), np.array(rows, float), family=sm.families.Binomial()).fit()
    np.testing.assert_allclose(m.coef_, ref.params[3:], rtol=1e-6)
    start = m.start_values()[0]
    np.testing.assert_allclose(start, ref.params[:3], rtol=1e-6)
    # survival on day s = product of (1 - daily hazard) through s
    h = m.interval_hazard(X[:2])
    surv = m.survival(X[:2])
    np.testing.assert_allclose(surv[:, 12], (1 - h[:, 0]) ** 10 * (1 - h[:, 1]) ** 3, rtol=1e-12)


def test_pooled_hazard_intervals_without_events_have_zero_hazard():
    X, exit_day, event = _daily_data()
    event = event & (exit_day >= 10)  # no events in days 0..9
    m = PooledLogisticHazard(interval_days=10, l2=0).fit(X, exit_day, event, horizon=30)
    assert m.alpha_[0] == -np.inf
    np.testing.assert_allclose(m.survival(X[:3])[:, 9], 1.0)


def test_pooled_hazard_chord_restart_gives_the_same_fit():
    X, exit_day, event = _daily_data()
    full = PooledLogisticHazard(interval_days=10, standardize=False).fit(X, exit_day, event, horizon=30)
    idx = np.random.default_rng(1).integers(0, len(X), len(X))
    cold = PooledLogisticHazard(interval_days=10, standardize=False).fit(X[idx], exit_day[idx], event[idx], horizon=30)
    warm = PooledLogisticHazard(interval_days=10, standardize=False).fit(
        X[idx], exit_day[idx], event[idx], horizon=30, init=full.start_values()
    )
    assert warm.converged_
    np.testing.assert_allclose(warm.coef_, cold.coef_, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(warm.alpha_, cold.alpha_, rtol=1e-6)
