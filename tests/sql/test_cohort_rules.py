"""Eligibility rules at their boundaries: one miniature person per case, one build for the module.

Every person is enrolled from BASE-500 to BASE+500, born 1980 (age 42 in 2022) and has an lbp
diagnosis on day 0 unless the case says otherwise; the person 'sentinel' fixes the end of the data
at BASE+1000.
"""

from __future__ import annotations

import datetime as dt

import pytest
from miniature import BASE, Extract, day

LBP = "M54.50"
RED_FLAG = "C50.911"  # malignant neoplasm of breast


def _extract() -> Extract:
    ex = Extract()
    ex.person("sentinel").claim("sentinel", 1000, "Z00.00")
    ex.person("no_lbp").claim("no_lbp", 0, "J06.9")
    # a basic eligible person, referred on day 10
    ex.person("basic", birth_year=1980, gender="male").claim("basic", 0, LBP).claim("basic", 10, LBP, hcpcs="64483")
    # washout: an lbp diagnosis 365 days before keeps day 0 inside the old episode; 366 days starts a new one
    ex.person("wash365").claim("wash365", -365, LBP).claim("wash365", 0, LBP)
    ex.person("wash366").claim("wash366", -366, LBP).claim("wash366", 0, LBP)
    # continuous enrollment: a gap of 30 uncovered days is bridged, 31 is not
    ex.person("gap30", spans=((-500, -200), (-169, 500))).claim("gap30", 0, LBP)
    ex.person("gap31", spans=((-500, -200), (-168, 500))).claim("gap31", 0, LBP)
    ex.person("enrolled365", spans=((-365, 500),)).claim("enrolled365", 0, LBP)
    ex.person("enrolled364", spans=((-364, 500),)).claim("enrolled364", 0, LBP)
    # age at index (2022) = 2022 - birth year
    for age in (17, 18, 64, 65):
        ex.person(f"age{age}", birth_year=2022 - age).claim(f"age{age}", 0, LBP)
    # red flags from index - 365 through index
    ex.person("rf_minus1").claim("rf_minus1", -1, RED_FLAG).claim("rf_minus1", 0, LBP)
    ex.person("rf_day0").claim("rf_day0", 0, LBP, "S32.010A")  # lumbar fracture as a secondary diagnosis
    ex.person("rf_minus365").claim("rf_minus365", -365, "O26.891").claim("rf_minus365", 0, LBP)
    ex.person("rf_minus366").claim("rf_minus366", -366, RED_FLAG).claim("rf_minus366", 0, LBP)
    ex.person("rf_day1").claim("rf_day1", 0, LBP).claim("rf_day1", 1, "G83.4")  # after index: not a rule
    # prior IPM contact in the 365 days before index (day 0 is the referral, not a prior contact)
    ex.person("ipm_minus1").claim("ipm_minus1", -1, "M79.1", hcpcs="20552").claim("ipm_minus1", 0, LBP)
    ex.person("ipm_minus365").encounter("ipm_minus365", -365, taxonomy="207LP2900X").claim("ipm_minus365", 0, LBP)
    ex.person("ipm_minus366").claim("ipm_minus366", -366, "M79.1", taxonomy="208VP0014X").claim("ipm_minus366", 0, LBP)
    ex.person("ipm_day0").claim("ipm_day0", 0, LBP, hcpcs="62323")
    # legacy M54.5: an lbp code for service dates through 2021-09-30 only
    legacy_spans = ((dt.date(2019, 1, 1), dt.date(2023, 12, 31)),)
    ex.person("legacy_before", spans=legacy_spans).claim("legacy_before", dt.date(2021, 9, 30), "M54.5")
    ex.person("legacy_after", spans=legacy_spans).claim("legacy_after", dt.date(2021, 10, 1), "M54.5")
    # lbp in a secondary position, on an institutional claim
    ex.person("secondary").claim("secondary", 0, "Z00.00", "M51.362", claim_type="institutional")
    # the first episode fails (red flag 10 days before); a new episode 400 days later is eligible
    ex.person("second_episode", spans=((-1200, 500),))
    ex.claim("second_episode", -410, RED_FLAG).claim("second_episode", -400, LBP).claim("second_episode", 0, LBP)
    # first episode eligible: later episodes do not move the index
    ex.person("first_wins", spans=((-500, 900),)).claim("first_wins", 0, LBP).claim("first_wins", 400, LBP)
    # claims but no enrollment record at all
    ex.claim("ghost", 0, LBP)
    return ex


@pytest.fixture(scope="module")
def marts(tmp_path_factory):
    return _extract().build(tmp_path_factory.mktemp("rules"))


ELIGIBLE = {
    "basic": BASE,
    "wash366": BASE,
    "gap30": BASE,
    "enrolled365": BASE,
    "age18": BASE,
    "age64": BASE,
    "rf_minus366": BASE,
    "rf_day1": BASE,
    "ipm_minus366": BASE,
    "ipm_day0": BASE,
    "legacy_before": dt.date(2021, 9, 30),
    "secondary": BASE,
    "second_episode": BASE,
    "first_wins": BASE,
}

EXCLUDED = {
    "wash365": "enrollment",  # its only new episode (day -365) lacks 365 days of enrollment before it
    "gap31": "enrollment",
    "enrolled364": "enrollment",
    "age17": "age",
    "age65": "age",
    "rf_minus1": "red_flags",
    "rf_day0": "red_flags",
    "rf_minus365": "red_flags",
    "ipm_minus1": "prior_ipm",
    "ipm_minus365": "prior_ipm",
}


def test_cohort_is_exactly_the_eligible_persons_with_their_index_dates(marts):
    got = {row.person_id: row.index_date.date() for row in marts.cohort.itertuples()}
    assert got == ELIGIBLE


@pytest.mark.parametrize("person_id, rule", sorted(EXCLUDED.items()))
def test_excluded_person_is_stopped_by_the_expected_rule(marts, person_id, rule):
    assert not marts.in_cohort(person_id)
    assert marts.excluded_by(person_id) == rule


def test_eligible_persons_have_no_exclusion(marts):
    for person_id in ELIGIBLE:
        assert marts.excluded_by(person_id) is None


def test_persons_without_an_lbp_diagnosis_or_enrollment_never_enter(marts):
    lbp_persons = set(marts.eligibility.person_id)
    assert "no_lbp" not in lbp_persons
    assert "legacy_after" not in lbp_persons  # M54.5 on 2021-10-01 is no longer an lbp code
    assert "ghost" not in lbp_persons
    assert lbp_persons == set(ELIGIBLE) | set(EXCLUDED)


def test_basic_person_row(marts):
    row = marts.cohort_row("basic")
    expected = {
        "person_id": "basic",
        "index_date": BASE,
        "age": 42,
        "sex": "male",
        "payer_type": "commercial",
        "index_year": 2022,
        "referral_date": day(10),
        "days_to_referral": 10,
        "days_to_referral_procedure_only": 10,
        "referral_source": "procedure",
        "exposure": "early",
        "delay_category": "0-14",
        "in_rtw_population": False,
        "followup_end_day": 365,
        "censor_day": 365,
        "censor_reason": "followup_end",
        "enrollment_end_day": 500,
        "data_end_day": 1000,
        "death_day": None,
        "radiculopathy": 0,
        "charlson_index": 0,
    }
    assert {key: row[key] for key in expected} == expected


def test_gap_bridged_enrollment_runs_to_the_end_of_the_later_span(marts):
    assert marts.cohort_row("gap30")["enrollment_end_day"] == 500


def test_ipm_contact_on_index_day_is_a_day_zero_referral(marts):
    row = marts.cohort_row("ipm_day0")
    assert (row["days_to_referral"], row["exposure"], row["delay_category"]) == (0, "early", "0-14")


def test_ipm_contact_366_days_before_is_not_a_referral(marts):
    row = marts.cohort_row("ipm_minus366")
    assert (row["days_to_referral"], row["exposure"], row["delay_category"]) == (None, "delayed", "never")


def test_cohort_attrition_counts(marts):
    cohort = marts.attrition[marts.attrition.population == "cohort"]
    # 29 enrolled persons (ghost has no enrollment); no_lbp and legacy_after have no lbp diagnosis
    assert list(zip(cohort.rule, cohort.remaining, cohort.excluded, strict=True)) == [
        ("enrolled_person", 27, 0),
        ("lbp_claim", 24, 3),
        ("new_episode", 24, 0),
        ("enrollment", 21, 3),
        ("age", 19, 2),
        ("red_flags", 16, 3),
        ("prior_ipm", 14, 2),
    ]
