"""The vocabulary is declared once and every module reads it from there."""

from __future__ import annotations

from ipm_outcomes import contract, synth, vocabulary
from ipm_outcomes.spec import load_spec


def test_every_instrument_is_complete_and_the_contract_checks_its_range():
    for name, inst in vocabulary.INSTRUMENTS.items():
        assert inst.name == name and inst.label and inst.short and inst.units
        lo, hi = inst.range
        assert lo < hi
        assert contract.PRO_RANGES[name] == inst.range
    assert vocabulary.OUTCOMES["odi"].higher_is_better is False
    assert vocabulary.OUTCOMES["promis_pf"].higher_is_better is True
    assert "phq9" not in vocabulary.QOL_OUTCOMES and "phq9" in vocabulary.OUTCOMES


def test_the_spec_names_only_known_instruments_methods_and_measures():
    spec = load_spec()
    assert set(spec.analysis.mcid.model_dump()) <= set(vocabulary.QOL_OUTCOMES)
    assert set(spec.outcomes.qol.instruments) <= set(vocabulary.INSTRUMENTS)
    assert spec.analysis.severity_instrument in vocabulary.INSTRUMENTS
    for m in vocabulary.MEASURES.values():
        assert (m.null is not None) == m.contrast


def test_synth_builds_around_the_shipped_spec_not_a_copy_of_it():
    spec = load_spec()
    assert synth.GRACE_DAYS == spec.exposure.grace_period_days
    assert synth.FOLLOWUP_DAYS == spec.cohort.followup_days
    assert synth.WASHOUT_DAYS == spec.cohort.washout_days
    assert synth.GAP_BRIDGE_DAYS == spec.cohort.enrollment_gap_days
    assert (synth.AGE_MIN, synth.AGE_MAX) == (spec.cohort.age_min, spec.cohort.age_max)
    assert synth.RTW_WINDOW == tuple(spec.outcomes.rtw.population_window_days)
    assert synth.HORIZONS == tuple(spec.analysis.horizons_days)
    assert synth.INSTRUMENTS[: len(vocabulary.INSTRUMENTS)] == tuple(vocabulary.INSTRUMENTS)
