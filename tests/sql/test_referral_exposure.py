"""Referral date, exposure and delay category at every boundary, and the three referral sources.

Every person: enrolled BASE-500..BASE+500, index on day 0 (BASE), data end at BASE+1000 (sentinel),
so follow-up ends on day 365 unless the case shortens it.
"""

from __future__ import annotations

import pytest
from miniature import BASE, Extract, day

LBP = "M54.59"


def _extract() -> Extract:
    ex = Extract()
    ex.person("sentinel").claim("sentinel", 1000, "Z00.00")

    def indexed(person_id: str, **person) -> None:
        ex.person(person_id, **person).claim(person_id, 0, LBP)

    for referral_day in (0, 14, 15, 42, 43, 90, 91, 180, 181, 365, 366):
        indexed(f"ref{referral_day}")
        ex.claim(f"ref{referral_day}", referral_day, LBP, hcpcs="64493")
    indexed("never")
    ex.claim("never", 20, LBP, hcpcs="99213")  # an office visit code is not an IPM procedure
    # follow-up ends with enrollment on day 100: a contact on day 100 counts, day 101 is unseen
    indexed("enrol_end_100", spans=((-500, 100),))
    ex.claim("enrol_end_100", 100, LBP, hcpcs="64635")
    indexed("enrol_end_101", spans=((-500, 100),))
    ex.claim("enrol_end_101", 101, LBP, hcpcs="64635")
    # death on day 50 ends follow-up: a later contact (a data error, but possible) is not a referral
    indexed("dead", death=50)
    ex.claim("dead", 60, LBP, hcpcs="27096")
    # sources
    indexed("tax_professional")
    ex.claim("tax_professional", 20, LBP, taxonomy="208VP0014X")
    indexed("tax_institutional")
    ex.claim("tax_institutional", 20, LBP, taxonomy="208VP0014X", claim_type="institutional")
    indexed("tax_ehr")
    ex.encounter("tax_ehr", 30, taxonomy="2081P2900X")
    indexed("tax_other")
    ex.encounter("tax_other", 30, taxonomy="207Q00000X")  # family medicine
    indexed("mixed")
    ex.encounter("mixed", 5, taxonomy="208VP0000X")
    ex.claim("mixed", 50, LBP, hcpcs="G0260")
    indexed("same_day")
    ex.encounter("same_day", 7, taxonomy="208VP0000X")
    ex.claim("same_day", 7, LBP, hcpcs="64451", taxonomy="208VP0014X")
    return ex


@pytest.fixture(scope="module")
def marts(tmp_path_factory):
    return _extract().build(tmp_path_factory.mktemp("referral"))


COLUMNS = ("days_to_referral", "exposure", "delay_category")


@pytest.mark.parametrize(
    "person_id, expected",
    [
        ("ref0", (0, "early", "0-14")),
        ("ref14", (14, "early", "0-14")),
        ("ref15", (15, "early", "15-42")),
        ("ref42", (42, "early", "15-42")),
        ("ref43", (43, "delayed", "43-90")),
        ("ref90", (90, "delayed", "43-90")),
        ("ref91", (91, "delayed", "91-180")),
        ("ref180", (180, "delayed", "91-180")),
        ("ref181", (181, "delayed", ">180")),
        ("ref365", (365, "delayed", ">180")),
        ("ref366", (None, "delayed", "never")),
        ("never", (None, "delayed", "never")),
        ("enrol_end_100", (100, "delayed", "91-180")),
        ("enrol_end_101", (None, "delayed", "never")),
        ("dead", (None, "delayed", "never")),
    ],
)
def test_days_to_referral_exposure_and_delay_category(marts, person_id, expected):
    row = marts.cohort_row(person_id)
    assert tuple(row[c] for c in COLUMNS) == expected


def test_referral_date_matches_days_to_referral(marts):
    assert marts.cohort_row("ref43")["referral_date"] == day(43)
    assert marts.cohort_row("never")["referral_date"] is None


def test_follow_up_end_day_and_reason(marts):
    got = {
        p: (
            marts.cohort_row(p)["followup_end_day"],
            marts.cohort_row(p)["censor_day"],
            marts.cohort_row(p)["censor_reason"],
        )
        for p in ("ref0", "enrol_end_100", "dead")
    }
    assert got == {
        "ref0": (365, 365, "followup_end"),
        "enrol_end_100": (100, 100, "enrollment_end"),
        "dead": (50, 365, "followup_end"),  # death ends follow-up; it is not administrative censoring
    }


SOURCE_COLUMNS = ("days_to_referral", "days_to_referral_procedure_only", "referral_source", "exposure")


@pytest.mark.parametrize(
    "person_id, expected",
    [
        ("tax_professional", (20, None, "claim_taxonomy", "early")),
        ("tax_institutional", (None, None, None, "delayed")),
        ("tax_ehr", (30, None, "ehr_taxonomy", "early")),
        ("tax_other", (None, None, None, "delayed")),
        ("mixed", (5, 50, "ehr_taxonomy", "early")),
        ("same_day", (7, 7, "procedure", "early")),
    ],
)
def test_referral_sources_and_procedure_only_definition(marts, person_id, expected):
    row = marts.cohort_row(person_id)
    assert tuple(row[c] for c in SOURCE_COLUMNS) == expected


def test_summary_counts_exposure_and_delay_bands(marts):
    s = marts.summary
    assert (s.cohort, s.early, s.delayed) == (21, 8, 13)
    assert s.delay_categories == {"0-14": 4, "15-42": 4, "43-90": 2, "91-180": 3, ">180": 2, "never": 6}


def test_grace_period_comes_from_the_spec(tmp_path):
    ex = Extract()
    ex.person("sentinel").claim("sentinel", 1000, "Z00.00")
    for referral_day in (28, 29, 42):
        ex.person(f"ref{referral_day}").claim(f"ref{referral_day}", 0, LBP)
        ex.claim(f"ref{referral_day}", referral_day, LBP, hcpcs="64483")
    marts = ex.build(tmp_path, overrides={"exposure.grace_period_days": 28, "exposure.delay_categories": [28, 60]})
    got = {r.person_id: (r.exposure, r.delay_category) for r in marts.cohort.itertuples()}
    assert got == {"ref28": ("early", "0-28"), "ref29": ("delayed", "29-60"), "ref42": ("delayed", "29-60")}
    assert marts.cohort_row("ref28")["index_date"] == BASE
