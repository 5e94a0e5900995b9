"""The generator's costs (issue 16): in the follow-up year allowed amounts come from a cost process that
runs until death or day 365 whatever the enrolment, the truth per strategy is its expectation, the
planted effect has the direction of the truth, the null setting plants none, and nothing else in the
extract changes."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from ipm_outcomes import synth
from ipm_outcomes.errors import IpmError

N, SEED = 6000, 11


def _world(effects):
    w = synth._simulate_world(N, SEED, 1.5, 3.0)
    w.secondary = synth._simulate_secondary(w, synth.SECONDARY_EFFECTS)
    w.cost_effects = effects
    w.cost_day0 = np.zeros((2, w.n)) if effects is not None else None
    return w


def _table(w, name):
    rng = synth._rng(SEED, synth._STREAMS[name], 0)
    return synth._TABLE_BUILDERS[name](w, 0, w.n, rng, 0)


def _rows(table, date_col):
    p = pc.utf8_slice_codeunits(table["person_id"], 1).cast(pa.int64()).to_numpy() - 1
    day = table[date_col].to_numpy().astype("datetime64[D]").astype(np.int64)
    return p, day


@pytest.fixture(scope="module")
def planted():
    w = _world(synth.COST_EFFECTS)
    tables = {name: _table(w, name) for name in ("medical_claim", "pharmacy_claim")}
    return w, tables, synth._cost_truth(w)


@pytest.fixture(scope="module")
def null():
    w = _world(synth.NULL_COST_EFFECTS)
    tables = {name: _table(w, name) for name in ("medical_claim", "pharmacy_claim")}
    return w, tables, synth._cost_truth(w)


@pytest.fixture(scope="module")
def without():
    """The same world with no cost process: the tables as the generator wrote them before issue 16."""
    w = _world(None)
    return {name: _table(w, name) for name in ("medical_claim", "pharmacy_claim")}


def test_truth_has_the_planted_direction(planted):
    _, _, truth = planted
    for outcome in ("cost_total_365", "cost_lbp_365"):
        entry = truth[outcome]
        early, delayed = entry["mean"]["early"], entry["mean"]["delayed"]
        assert entry["difference"] == pytest.approx(early - delayed, abs=2e-6)
        # early IPM halves the back-pain claim rate; the referral's own cost does not make up for it
        assert entry["difference"] + 3 * entry["monte_carlo_se"]["difference"] < -100
    # the effect runs through back-pain care only: the same difference in both outcomes
    assert truth["cost_total_365"]["difference"] == pytest.approx(truth["cost_lbp_365"]["difference"], abs=1e-6)
    assert truth["cost_lbp_365"]["mean"]["delayed"] < truth["cost_total_365"]["mean"]["delayed"]
    # the sicker cost more and are referred early: the naive contrast leans to harm
    assert truth["cost_total_365"]["naive_difference"] > truth["cost_total_365"]["difference"] + 300


def test_null_setting_differs_only_by_an_ipm_contact_on_day_0(null):
    """With no effect the process gives exactly the same expected cost under both strategies; what is
    left is the day-0 IPM contact (kept with its written amount), about 3% of early referrals."""
    w, _, truth = null
    contact = synth._ipm_contact_mean_cost(w.ref_kind[w.eligible])
    for outcome in ("cost_total_365", "cost_lbp_365"):
        diff = truth[outcome]["difference"]
        assert 0 < diff < 0.06 * contact.mean()


def test_other_rows_are_unchanged_and_follow_up_amounts_come_from_the_process(planted, without):
    w, tables, _ = planted
    for name, date_col in (("medical_claim", "claim_start_date"), ("pharmacy_claim", "dispensing_date")):
        table, before = tables[name], without[name]
        process = pc.starts_with(table["claim_id"], "CP").to_numpy(zero_copy_only=False)
        kept = table.filter(pa.array(~process))
        assert kept.num_rows == before.num_rows
        for col in before.column_names:
            if col not in ("allowed_amount", "paid_amount"):
                assert kept[col].equals(before[col]), (name, col)
        p, day = _rows(kept, date_col)
        rel = day - w.I[p]
        follow = w.eligible[p] & (rel >= 1) & (rel <= synth.FOLLOWUP_DAYS)
        now = kept["allowed_amount"].to_numpy(zero_copy_only=False)
        then = before["allowed_amount"].to_numpy(zero_copy_only=False)
        np.testing.assert_array_equal(now[~follow], then[~follow])  # day 0, baseline, other persons: as before
        assert np.all((now[follow] == 0) | np.isnan(then[follow]))
        assert np.array_equal(np.isnan(now), np.isnan(then))
        if name == "medical_claim":
            assert process.sum() > 5 * w.eligible.sum()


def test_day0_amounts_are_added_up_as_written(planted):
    w, tables, _ = planted
    total = np.zeros(w.n)
    for name, date_col in (("medical_claim", "claim_start_date"), ("pharmacy_claim", "dispensing_date")):
        p, day = _rows(tables[name], date_col)
        amount = np.nan_to_num(tables[name]["allowed_amount"].to_numpy(zero_copy_only=False))
        at = w.eligible[p] & (day == w.I[p])
        np.add.at(total, p[at], amount[at])
    np.testing.assert_allclose(w.cost_day0[0], total, rtol=1e-12)
    assert 0 < w.cost_day0[1][w.eligible].mean() < w.cost_day0[0][w.eligible].mean()


def test_written_costs_match_the_expectation_the_truth_uses(planted):
    """Persons followed through their whole year (or to death) show the process in full: the mean of
    what is written on days 1..365 equals the mean expected cost given the referral they had."""
    w, tables, _ = planted
    full = w.eligible & ((w.censor_day >= synth.FOLLOWUP_DAYS) | (w.d_death <= w.censor_day))
    table = tables["medical_claim"]
    p, day = _rows(table, "claim_start_date")
    amount = np.nan_to_num(table["allowed_amount"].to_numpy(zero_copy_only=False))
    rel = day - w.I[p]
    written = np.bincount(p, weights=amount * ((rel >= 1) & (rel <= synth.FOLLOWUP_DAYS)), minlength=w.n)
    expected, _ = synth._expected_process_cost(w, np.arange(w.n), w.r_effect, w.cost_effects)
    diff = written[full] - expected[full]
    se = diff.std(ddof=1) / np.sqrt(full.sum())
    assert full.sum() > 1500
    assert abs(diff.mean()) < 3 * se, (diff.mean(), se)


def test_disenrolment_hides_claims_but_does_not_stop_costs(planted):
    w, tables, _ = planted
    table = tables["medical_claim"]
    process = pc.starts_with(table["claim_id"], "CP").to_numpy(zero_copy_only=False)
    p, day = _rows(table.filter(pa.array(process)), "claim_start_date")
    assert synth._enrolled(w, p, day).all()
    assert np.all(w.eligible[p]) and np.all((day - w.I[p] >= 1) & (day - w.I[p] <= synth.FOLLOWUP_DAYS))
    lost = w.eligible & (w.censor_day < 200) & (w.d_death > synth.FOLLOWUP_DAYS)
    assert lost.sum() > 100
    amount = table.filter(pa.array(process))["allowed_amount"].to_numpy()
    written = np.bincount(p, weights=amount, minlength=w.n)
    expected, _ = synth._expected_process_cost(w, np.arange(w.n), w.r_effect, w.cost_effects)
    # what the extract shows of those lost early is a fraction of the cost the truth counts
    assert written[lost].mean() < 0.8 * expected[lost].mean()
    full = w.eligible & (w.censor_day >= synth.FOLLOWUP_DAYS) & (w.d_death > synth.FOLLOWUP_DAYS)
    assert written[full].mean() == pytest.approx(expected[full].mean(), rel=0.05)


def test_generate_writes_the_cost_truth_and_refuses_bad_effects(tmp_path):
    synth.generate(tmp_path / "x", persons=300, seed=3, file_format="parquet", cost_effects=synth.NULL_COST_EFFECTS)
    truth = json.loads((tmp_path / "x" / "truth.json").read_text())["costs"]
    assert truth["effects"] == synth.NULL_COST_EFFECTS
    assert truth["currency"] == "USD"
    assert set(truth["cost_total_365"]["mean"]) == {"early", "delayed"}
    with pytest.raises(IpmError, match="give lbp_rate_ratio and referral_cost"):
        synth.generate(tmp_path / "y", persons=10, seed=3, cost_effects={"lbp_rate_ratio": 0.5})
    with pytest.raises(IpmError, match=r"lbp_rate_ratio must be > 0"):
        synth.generate(tmp_path / "y", persons=10, seed=3, cost_effects={"lbp_rate_ratio": 0.0, "referral_cost": 1.0})
    assert synth.cost_effects_for_ratio(1) == synth.NULL_COST_EFFECTS
    assert synth.cost_effects_for_ratio(0.8) == {"lbp_rate_ratio": 0.8, "referral_cost": synth.COST_EFFECTS["referral_cost"]}
