"""End to end against the synthetic generator's truth: synth -> ingest -> cohort -> analysis.

The truth (truth.json) is the generator's own simulation of the same population under each strategy:
"IPM within 42 days" = referral day drawn from the person's natural referral-time distribution
restricted to days 0..42; "no IPM within 42 days" = natural referral switched off until day 43. That
is the estimand of the clone-censor-weight analysis (see ipm_outcomes.estimators.ccw).

Sizes and tolerances (tolerances are about three bootstrap standard errors at that size):

* default run: 8,000 persons (about 1,100 in the return-to-work population), 40 bootstrap replicates;
  primary 95% CI covers the true risk difference at day 180, the point within 0.06 of it; naive
  biased the way truth.json says.
* slow (``-m slow``): 20,000 persons (about 2,700 in the RTW population), 50 bootstrap replicates;
  point within 0.035, arm levels at day 180 within 0.03 of the per-strategy truth, QoL ANCOVA CI covers
  the true PROMIS-PF difference; and a null scenario (effect 1.0 / 0.0; the generator's confounding by
  indication unchanged) where the primary CI covers 0 and the naive one does not; and the extended
  generator (``synth.EXTENDED``, issue 19), where the primary point and arm levels are checked the same way.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ipm_outcomes import analysis, cohort, ingest, synth
from ipm_outcomes.spec import load_spec


def _run(root: Path, persons: int, seed: int, replicates: int, **effects):
    spec_file = root / "spec.toml"
    spec_file.write_text(f'extends = "default"\n[analysis]\nbootstrap_replicates = {replicates}\n')
    spec = load_spec(spec_file)
    synth.generate(root / "extract", persons=persons, seed=seed, file_format="parquet", **effects)
    ingest.load_extract(root / "extract", root / "db.duckdb")
    cohort.build(spec, root / "db.duckdb")
    analysis.run(spec, root / "db.duckdb", root / "results", workers=2)
    truth = json.loads((root / "extract" / "truth.json").read_text())
    results = json.loads((root / "results" / "results.json").read_text())
    return truth, results


def _get(results, outcome="rtw", method="ccw", measure="risk_difference", horizon=180, arm=None):
    rows = [
        e
        for e in results["estimates"]
        if e["outcome"] == outcome
        and e["method"] == method
        and e["measure"] == measure
        and e["horizon_days"] == horizon
        and e["arm"] == arm
    ]
    assert len(rows) == 1, (outcome, method, measure, horizon, arm)
    return rows[0]


def _naive_direction_holds(truth, results):
    naive = _get(results, method="naive")["estimate"]
    true_rd = truth["rtw"]["risk_difference"]["180"]
    direction = truth["naive_bias_direction"]
    assert direction in ("toward_harm", "toward_benefit")
    return naive < true_rd if direction == "toward_harm" else naive > true_rd


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("truth_small"), persons=8_000, seed=20261128, replicates=40)


def test_primary_interval_covers_truth_small(small):
    truth, results = small
    rd = _get(results)
    true_rd = truth["rtw"]["risk_difference"]["180"]
    assert rd["ci_low"] < true_rd < rd["ci_high"]
    assert rd["estimate"] == pytest.approx(true_rd, abs=0.06)


def test_naive_is_biased_as_the_generator_induces_small(small):
    truth, results = small
    assert _naive_direction_holds(truth, results)


@pytest.fixture(scope="module")
def effect(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("truth_effect"), persons=20_000, seed=20261128, replicates=50)


@pytest.mark.slow
def test_primary_estimate_against_truth(effect):
    truth, results = effect
    rd = _get(results)
    true_rd = truth["rtw"]["risk_difference"]["180"]
    assert rd["ci_low"] < true_rd < rd["ci_high"]
    assert rd["estimate"] == pytest.approx(true_rd, abs=0.035)


@pytest.mark.slow
def test_arm_levels_against_per_strategy_truth(effect):
    truth, results = effect
    for arm in ("early", "delayed"):
        level = _get(results, measure="cumulative_incidence", arm=arm)
        target = truth["rtw"]["cumulative_incidence"][arm]["180"]
        assert level["estimate"] == pytest.approx(target, abs=0.03), arm
        assert level["ci_low"] < level["estimate"] < level["ci_high"]


@pytest.mark.slow
def test_qol_ancova_covers_true_promis_pf_difference(effect):
    truth, results = effect
    md = _get(results, outcome="promis_pf", method="ancova_iptw", measure="mean_difference")
    target = truth["promis_pf_180"]["difference"]
    assert md["ci_low"] < target < md["ci_high"]


@pytest.mark.slow
def test_naive_is_biased_as_the_generator_induces(effect):
    truth, results = effect
    assert _naive_direction_holds(truth, results)
    naive = _get(results, method="naive")
    assert not naive["ci_low"] < truth["rtw"]["risk_difference"]["180"] < naive["ci_high"]


@pytest.fixture(scope="module")
def null(tmp_path_factory):
    return _run(
        tmp_path_factory.mktemp("truth_null"),
        persons=20_000,
        seed=20261128,
        replicates=50,
        effect_rtw_hr=1.0,
        effect_promis_pf=0.0,
    )


@pytest.mark.slow
def test_null_effect_primary_covers_zero_naive_does_not(null):
    truth, results = null
    assert truth["rtw"]["risk_difference"]["180"] == pytest.approx(0.0, abs=0.002)
    rd = _get(results)
    naive = _get(results, method="naive")
    assert rd["ci_low"] < 0 < rd["ci_high"]
    assert naive["ci_high"] < 0 or naive["ci_low"] > 0
    pf = _get(results, outcome="promis_pf", method="ancova_iptw", measure="mean_difference")
    assert pf["ci_low"] < 0 < pf["ci_high"]


@pytest.fixture(scope="module")
def extended(tmp_path_factory):
    # issue 19's referral mechanisms: referral after RTW at 0.3x the rate, the hazard halving after
    # four months, a quarter of first contacts EHR-only, logistic-linear daily referral, more
    # competing events and disenrolment
    return _run(
        tmp_path_factory.mktemp("truth_extended"), persons=20_000, seed=20261206, replicates=50, mechanisms=synth.EXTENDED
    )


@pytest.mark.slow
def test_primary_estimate_and_arm_levels_against_truth_with_real_referral_mechanisms(extended):
    truth, results = extended
    rd = _get(results)
    true_rd = truth["rtw"]["risk_difference"]["180"]
    assert rd["ci_low"] < true_rd < rd["ci_high"]
    assert rd["estimate"] == pytest.approx(true_rd, abs=0.035)
    for arm in ("early", "delayed"):
        level = _get(results, measure="cumulative_incidence", arm=arm)
        assert level["estimate"] == pytest.approx(truth["rtw"]["cumulative_incidence"][arm]["180"], abs=0.03), arm
