"""Weighted Kaplan-Meier / Aalen-Johansen against lifelines and against hand-computed miniatures."""

import warnings

import numpy as np
import numpy.testing as npt
import pytest
from lifelines import AalenJohansenFitter, CoxPHFitter, KaplanMeierFitter

from ipm_outcomes.errors import IpmError
from ipm_outcomes.estimators.survival import (
    WeightedAalenJohansenFitter,
    WeightedKaplanMeierFitter,
    cause_specific_hazard_ratio,
    event_table,
    restricted_mean,
)


@pytest.fixture(scope="module")
def competing():
    """Continuous times (no ties), three outcomes: censored, cause 1, cause 2."""
    rng = np.random.default_rng(11)
    n = 400
    t = rng.exponential(10, n)
    e = rng.choice([0, 1, 2], n, p=[0.3, 0.5, 0.2])
    w = rng.uniform(0.5, 2.0, n)
    return t, e, w


def _lifelines_aj(t, e, weights=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        aj = AalenJohansenFitter(calculate_variance=False).fit(t, e, event_of_interest=1, weights=weights)
    curve = aj.cumulative_density_.iloc[:, 0]
    return curve.index.to_numpy(), curve.to_numpy()


def test_aalen_johansen_matches_lifelines_unweighted(competing):
    t, e, _ = competing
    times, expected = _lifelines_aj(t, e)
    ours = WeightedAalenJohansenFitter().fit(t, e)
    npt.assert_allclose(ours.predict(times), expected, rtol=1e-9, atol=1e-12)


def test_aalen_johansen_matches_lifelines_with_case_weights(competing):
    t, e, w = competing
    times, expected = _lifelines_aj(t, e, w)
    ours = WeightedAalenJohansenFitter().fit(t, e, weights=w)
    npt.assert_allclose(ours.predict(times), expected, rtol=1e-9, atol=1e-12)


def test_kaplan_meier_matches_lifelines_with_ties_and_weights(competing):
    t, e, w = competing
    t_days = np.ceil(t)  # many ties
    for weights in (None, w):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lk = KaplanMeierFitter().fit(t_days, e == 1, weights=weights).survival_function_.iloc[:, 0]
        ours = WeightedKaplanMeierFitter().fit(t_days, e == 1, weights=weights)
        npt.assert_allclose(ours.predict(lk.index.to_numpy()), lk.to_numpy(), rtol=1e-9, atol=1e-12)


def test_weighted_miniature_by_hand():
    # time, event, weight
    #   1  1  2      risk set at 1: 2+1+1+3+1 = 8, cause-1 weight 2  -> h1 = 2/8
    #   2  2  1      risk set at 2: 6, cause-2 weight 1               -> h2 = 1/6
    #   2  0  1      (censored at 2: still in the risk set at 2)
    #   3  1  3      risk set at 3: 4, cause-1 weight 3               -> h1 = 3/4
    #   4  0  1
    t = [1, 2, 2, 3, 4]
    e = [1, 2, 0, 1, 0]
    w = [2, 1, 1, 3, 1]
    aj = WeightedAalenJohansenFitter().fit(t, e, weights=w)
    s1 = 1 - 2 / 8
    s2 = s1 * (1 - 1 / 6)
    expected_cif1 = [2 / 8, 2 / 8, 2 / 8 + s2 * 3 / 4, 2 / 8 + s2 * 3 / 4]
    npt.assert_allclose(aj.cumulative_incidence_.iloc[:, 0].to_numpy(), expected_cif1, rtol=1e-12)
    aj2 = WeightedAalenJohansenFitter(event_of_interest=2).fit(t, e, weights=w)
    npt.assert_allclose(aj2.predict([1, 2, 4]), [0, s1 / 6, s1 / 6], rtol=1e-12)
    # 1 - KM with the competing event as censoring: 1 - (6/8)(1/4) at day 3, above the AJ value
    km = WeightedKaplanMeierFitter().fit(t, np.array(e) == 1, weights=w)
    npt.assert_allclose(1 - km.predict([3]), [1 - (6 / 8) * (1 - 3 / 4)], rtol=1e-12)
    assert 1 - km.predict([3])[0] > aj.predict([3])[0]


def test_time_varying_weights_by_hand():
    # Two weight columns: column 0 applies on days 0..1, column 1 from day 2 on.
    #   person  time event  w(days 0-1)  w(days 2+)
    #     a      1    1        1            -
    #     b      2    1        1            3
    #     c      3    0        2            1
    # day 1: at risk a,b,c with 1+1+2 = 4, event a (1) -> h = 1/4
    # day 2: at risk b,c with 3+1 = 4, event b (3)     -> h = 3/4
    t = [1, 2, 3]
    e = [1, 1, 0]
    W = np.array([[1.0, 1.0], [1.0, 3.0], [2.0, 1.0]])
    table = event_table(t, e, W, weight_breaks=[0, 2], timeline=np.arange(4))
    npt.assert_allclose(table.at_risk, [4, 4, 4, 1])
    npt.assert_allclose(table.events[:, 0], [0, 1, 3, 0])
    npt.assert_allclose(table.n_at_risk, [3, 3, 2, 1])
    aj = WeightedAalenJohansenFitter().fit(t, e, weights=W, weight_breaks=[0, 2], timeline=np.arange(4))
    npt.assert_allclose(aj.predict([1, 2, 3]), [1 / 4, 1 / 4 + 3 / 4 * 3 / 4, 1 / 4 + 3 / 4 * 3 / 4])


def test_timeline_must_hold_every_duration():
    with pytest.raises(IpmError, match="timeline"):
        event_table([0.5, 2], [1, 0], timeline=np.arange(3))


def test_restricted_mean_by_hand():
    # curve 1 on [0,2), 0.5 on [2,5), 0.25 from 5: integral to 6 = 2 + 1.5 + 0.25
    assert restricted_mean(np.array([2.0, 5.0]), np.array([0.5, 0.25]), 6) == pytest.approx(3.75)
    aj = WeightedAalenJohansenFitter().fit([2, 5], [1, 1])
    # CIF 0.5 from day 2, 1 from day 5: days not returned over [0, 6] = 2 + 0.5 * 3 + 0 = 3.5
    assert aj.restricted_mean_event_free_time(6) == pytest.approx(3.5)


def test_binary_cox_from_tables_matches_lifelines(competing):
    t, e, w = competing
    rng = np.random.default_rng(5)
    arm = rng.integers(0, 2, t.size).astype(bool)
    t = t * np.where(arm, 0.7, 1.0)  # arm 1 faster
    import pandas as pd

    df = pd.DataFrame({"t": t, "e": (e == 1).astype(int), "arm": arm.astype(float), "w": w})
    for weights in (None, "w"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cph = CoxPHFitter().fit(
                df[["t", "e", "arm"] + ([weights] if weights else [])], "t", "e", weights_col=weights
            )
        grid = np.unique(t)
        ww = w if weights else None
        t1 = event_table(t[arm], e[arm], None if ww is None else ww[arm], timeline=grid, n_causes=2)
        t0 = event_table(t[~arm], e[~arm], None if ww is None else ww[~arm], timeline=grid, n_causes=2)
        log_hr, se = cause_specific_hazard_ratio(t1, t0, cause=1)
        assert log_hr == pytest.approx(cph.params_["arm"], rel=1e-6)
        if weights is None:
            assert se == pytest.approx(cph.standard_errors_["arm"], rel=1e-5)
