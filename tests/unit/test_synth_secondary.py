"""The generator's secondary outcomes and negative controls (issue 16): the planted effect has the
direction of the truth, the null setting gives exactly no effect, and the negative controls do not
depend on referral at all (but are confounded, as the secondary outcomes are)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ipm_outcomes import synth
from ipm_outcomes.errors import IpmError

N, SEED = 6000, 11


def _world(effects):
    w = synth._simulate_world(N, SEED, 1.5, 3.0)
    w.secondary = synth._simulate_secondary(w, effects)
    return w


@pytest.fixture(scope="module")
def planted():
    return _world(synth.SECONDARY_EFFECTS)


@pytest.fixture(scope="module")
def null():
    return _world(synth.NULL_SECONDARY_EFFECTS)


@pytest.fixture(scope="module")
def truth(planted):
    return synth._secondary_truth(planted)


@pytest.fixture(scope="module")
def null_truth(null):
    return synth._secondary_truth(null)


@pytest.mark.parametrize("outcome", [*synth.SECONDARY_EFFECTS, "long_term_opioid_opioid_naive"])
def test_true_contrasts_have_the_planted_direction(truth, outcome):
    entry = truth[outcome]
    assert entry["persons"] > 1000
    for t in ("90", "180", "365"):
        early, delayed = entry["cumulative_incidence"]["early"][t], entry["cumulative_incidence"]["delayed"][t]
        assert entry["risk_difference"][t] == pytest.approx(early - delayed, abs=2e-6)
        assert entry["risk_difference"][t] < 0  # every hazard ratio is < 1: early referral prevents the harm
        assert entry["risk_difference"][t] + 3 * entry["monte_carlo_se"][f"risk_difference_{t}"] < 0
        assert 0 < early < delayed < 0.5
    ci = entry["cumulative_incidence"]["delayed"]
    assert ci["90"] < ci["180"] < ci["365"]


@pytest.mark.parametrize("outcome", [*synth.SECONDARY_EFFECTS, "long_term_opioid_opioid_naive"])
def test_null_setting_gives_exactly_no_effect(null_truth, outcome):
    entry = null_truth[outcome]
    assert entry["risk_difference"] == {"90": 0.0, "180": 0.0, "365": 0.0}
    assert entry["risk_ratio"] == {"90": 1.0, "180": 1.0, "365": 1.0}


def test_planted_days_follow_the_effect_person_by_person(planted, null):
    """Common random numbers: a hazard ratio < 1 from the referral day can only postpone an outcome, and
    only for persons referred before day 180; everyone else has the same day in both worlds."""
    referred = planted.r_effect < synth.LATE_BENEFIT_END
    for outcome in synth.SECONDARY_EFFECTS:
        a, b = planted.secondary.days[outcome], null.secondary.days[outcome]
        assert np.all(a >= b), outcome
        assert np.array_equal(a[~referred], b[~referred]), outcome
        assert np.sum(a > b) > 20, outcome


def test_negative_controls_do_not_depend_on_referral(planted, null):
    np.testing.assert_array_equal(planted.secondary.nc_days, null.secondary.nc_days)
    eligible = planted.eligible
    assert planted.secondary.nc_days.shape == (len(synth.NEGATIVE_CONTROL_CODES), N)
    assert np.all(planted.secondary.nc_days[:, ~eligible] == synth.NEVER)


def test_negative_controls_are_confounded_and_their_truth_is_null(truth):
    controls = truth["negative_controls"]
    assert len(controls["outcomes"]) >= 20
    assert controls["risk_difference"] == {"90": 0.0, "180": 0.0, "365": 0.0}
    naive = np.array(list(controls["naive_risk_difference_180"].values()))
    # the sicker are referred early and have more of everything: the crude contrasts lean to harm
    assert np.mean(naive) > 0


def test_negative_control_codes_are_in_the_packaged_value_set():
    from ipm_outcomes.spec import load_spec
    from ipm_outcomes.valuesets import load_valuesets

    controls = load_valuesets(load_spec())["negative_controls"]
    for name, code in synth.NEGATIVE_CONTROL_CODES.items():
        groups = {e.group for e in controls.entries if e.matches(code.replace(".", ""))}
        assert groups == {name}, code


def test_generate_writes_the_secondary_truth_and_refuses_bad_effects(tmp_path):
    synth.generate(tmp_path / "x", persons=300, seed=3, file_format="parquet", secondary_effects=synth.NULL_SECONDARY_EFFECTS)
    truth = json.loads((tmp_path / "x" / "truth.json").read_text())["secondary_outcomes"]
    assert truth["effect_hazard_ratios"] == synth.NULL_SECONDARY_EFFECTS
    assert truth["lumbar_surgery"]["risk_difference"]["365"] == 0.0
    with pytest.raises(IpmError, match="give a hazard ratio for each of"):
        synth.generate(tmp_path / "y", persons=10, seed=3, secondary_effects={"lumbar_surgery": 0.5})
    bad = dict(synth.SECONDARY_EFFECTS, ed_visit_lbp=0.0)
    with pytest.raises(IpmError, match=r"secondary_effects\['ed_visit_lbp'\]=0.0: must be a positive"):
        synth.generate(tmp_path / "y", persons=10, seed=3, secondary_effects=bad)
