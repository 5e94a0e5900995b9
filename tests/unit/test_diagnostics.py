"""Diagnostics against hand computation and the published formulas."""

import math

import numpy as np
import pytest

from ipm_outcomes.diagnostics import (
    diagnostics_table,
    e_value,
    effective_sample_checks,
    effective_sample_size,
    equipoise,
    histogram,
    preference_score,
    smd_table,
    standardized_mean_difference,
    weight_summary,
)


def test_smd_continuous_by_hand():
    # treated 1,2,3: mean 2, population variance 2/3; control 2,4: mean 3, variance 1
    assert standardized_mean_difference([1, 2, 3], [2, 4]) == pytest.approx((2 - 3) / math.sqrt((2 / 3 + 1) / 2))


def test_smd_binary_by_hand():
    # p1 = 0.75, p0 = 0.25: (0.5) / sqrt((0.1875 + 0.1875) / 2)
    assert standardized_mean_difference([1, 1, 1, 0], [0, 0, 0, 1]) == pytest.approx(0.5 / math.sqrt(0.1875))


def test_smd_weighted_by_hand():
    # treated values 0, 1 with weights 1, 3: mean 0.75, variance 0.1875
    # control values 0, 1 with weights 3, 1: mean 0.25, variance 0.1875
    got = standardized_mean_difference([0, 1], [0, 1], [1, 3], [3, 1])
    assert got == pytest.approx(0.5 / math.sqrt(0.1875))
    # weights that equalise the groups give 0
    assert standardized_mean_difference([0, 1], [0, 1], [1, 1], [2, 2]) == pytest.approx(0.0)


def test_smd_edge_cases():
    assert standardized_mean_difference([1, 1], [1, 1]) == 0.0
    assert math.isnan(standardized_mean_difference([], [1.0]))


def test_smd_table_columns_and_values():
    X = np.array([[1.0, 0], [2, 1], [3, 1], [2, 0], [4, 0]])
    t = np.array([1, 1, 1, 0, 0], bool)
    w = np.array([1, 1, 1, 1, 1.0])
    table = smd_table(X, ["x", "flag"], t, w)
    assert list(table.covariate) == ["x", "flag"]
    assert table.smd_before.iloc[0] == pytest.approx(standardized_mean_difference([1, 2, 3], [2, 4]))
    assert table.smd_after.iloc[0] == pytest.approx(table.smd_before.iloc[0])
    assert table.mean_treated.iloc[1] == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    "rr, expected",
    [
        (3.9, 3.9 + math.sqrt(3.9 * 2.9)),  # VanderWeele & Ding 2017: RR 3.9 -> E-value 7.26
        (1.0, 1.0),
        (0.5, 2 + math.sqrt(2 * 1)),  # protective: use 1/RR
    ],
)
def test_e_value_formula(rr, expected):
    assert e_value(rr)["estimate"] == pytest.approx(expected)


def test_e_value_published_example_and_interval():
    ev = e_value(3.9, 1.8, 8.7)
    assert round(ev["estimate"], 2) == 7.26
    assert ev["ci"] == pytest.approx(1.8 + math.sqrt(1.8 * 0.8))  # limit closest to 1: 3.0
    assert e_value(1.2, 0.9, 1.6)["ci"] == 1.0  # interval crosses the null
    assert e_value(0.8, 0.7, 0.9)["ci"] == pytest.approx(1 / 0.9 + math.sqrt(1 / 0.9 * (1 / 0.9 - 1)))
    assert math.isnan(e_value(float("nan"))["estimate"])


def test_preference_score_and_equipoise_by_hand():
    ps = np.array([0.2, 0.5, 0.8])
    # prevalence 0.5: preference score equals the propensity score
    np.testing.assert_allclose(preference_score(ps, prevalence=0.5), ps)
    # prevalence 0.2: logit F = logit(ps) - logit(0.2); ps 0.2 -> 0.5
    f = preference_score(ps, prevalence=0.2)
    assert f[0] == pytest.approx(0.5)
    assert f[1] == pytest.approx(1 / (1 + math.exp(-(0 - math.log(0.25)))))
    treated = np.array([1, 0, 0, 0, 1])
    assert equipoise([0.4, 0.4, 0.2, 0.9, 0.5], treated, (0.3, 0.7)) == pytest.approx(
        np.mean((lambda x: (x >= 0.3) & (x <= 0.7))(preference_score([0.4, 0.4, 0.2, 0.9, 0.5], treated)))
    )


def test_effective_sample_size_and_summary():
    assert effective_sample_size([1, 1, 1, 1]) == pytest.approx(4)
    assert effective_sample_size([1, 3]) == pytest.approx(16 / 10)
    s = weight_summary(np.array([1.0, 2, 3, np.nan]))
    assert s["n"] == 3 and s["max"] == 3 and s["ess"] == pytest.approx(36 / 14)


def test_pass_fail_table():
    t = diagnostics_table(0.05, 0.19, smd_threshold=0.1, equipoise_threshold=0.2)
    assert list(t.passed) == [True, False]
    t = diagnostics_table(float("nan"), 0.5)
    assert list(t.passed) == [False, True] and t.note.iloc[0] == "not computable"


def test_effective_sample_share_checks_by_hand():
    """One person of weight 100 among three of weight 1: Kish ESS 103^2 / 10,003 = 1.0606, a share of 0.265 of
    the four weighted clones, which fails a 0.3 bar; four equal weights use every clone (share 1)."""
    t = effective_sample_checks(
        {"early": np.ones(4), "delayed": np.array([1.0, 1, 1, 100]), "late": np.array([])}, min_share=0.3, analysis="primary"
    )
    assert list(t.diagnostic) == [
        "early strategy effective sample share",
        "delayed strategy effective sample share",
        "late strategy effective sample share",
    ]
    assert t.value.iloc[0] == pytest.approx(1.0)
    assert t.value.iloc[1] == pytest.approx(103**2 / 10_003 / 4)
    assert list(t.passed) == [True, False, False]
    assert list(t.note) == [
        "",
        "a few heavily weighted persons carry this strategy's estimate",
        "not computable: no weighted clones",
    ]
    assert set(t.analysis) == {"primary"}
    assert t.threshold.iloc[0] == "Kish effective sample size >= 30% of the strategy's weighted clones"


def test_histogram_counts():
    h = histogram([0.1, 0.2, 0.6, 0.9], ["a", "a", "b", "a"], [0, 0.5, 1])
    assert h[h.group == "a"]["count"].tolist() == [2, 1]
    assert h[h.group == "b"]["count"].tolist() == [0, 1]
