"""Return-to-work population, events, competing events and censoring, case by case.

Every person: enrolled BASE-500..BASE+500, index on day 0, data end at BASE+1000 (sentinel), so
the administrative censoring day is 365 unless the case says otherwise.
"""

from __future__ import annotations

import pytest
from miniature import BASE, Extract

LBP = "M54.50"


def _extract() -> Extract:
    ex = Extract()
    ex.person("sentinel").claim("sentinel", 1000, "Z00.00")

    def indexed(person_id: str, *statuses: tuple[int, str], **person) -> None:
        ex.person(person_id, **person).claim(person_id, 0, LBP)
        for on, status in statuses:
            ex.work(person_id, on, status)

    # population window: day -7 .. 14
    indexed("pop_m7", (-7, "off_work"), (30, "working"))
    ex.claim("pop_m7", 20, LBP, hcpcs="64483")
    indexed("pop_m8", (-8, "off_work"), (30, "working"))
    indexed("pop_14", (14, "disability_short_term"), (20, "working"))
    indexed("pop_15", (15, "off_work"), (30, "working"))
    indexed("working_at_index", (0, "working"))
    # events
    indexed("rtw_day0", (-3, "off_work"), (0, "working"), (45, "working"))
    indexed("death_first", (0, "off_work"), (80, "working"), death=50)
    indexed("death_index", (-2, "off_work"), death=0)
    indexed("enrol_first", (0, "off_work"), (150, "working"), spans=((-500, 100),))
    indexed("retired", (0, "off_work"), (60, "retired"), (90, "working"))
    indexed("ltd_tie", (0, "off_work"), (70, "disability_long_term"), (70, "working"))
    indexed("never_back", (0, "off_work"))
    indexed("late_back", (0, "off_work"), (400, "working"))
    indexed("back_365", (1, "off_work"), (365, "working"))
    indexed("modified", (0, "disability_short_term"), (25, "modified_duty"))
    indexed("unemployed", (0, "off_work"), (10, "unemployed"), (40, "working"))
    return ex


@pytest.fixture(scope="module")
def marts(tmp_path_factory):
    return _extract().build(tmp_path_factory.mktemp("rtw"))


COLUMNS = ("time_days", "event", "event_type", "referral_day", "censor_day", "censor_reason")

EXPECTED = {
    "pop_m7": (30, 1, "rtw", 20, 365, "followup_end"),
    "pop_14": (20, 1, "rtw", None, 365, "followup_end"),
    # a 'working' record at the index visit is not a return; the one on day 45 is
    "rtw_day0": (45, 1, "rtw", None, 365, "followup_end"),
    "death_first": (50, 2, "death", None, 365, "followup_end"),
    "death_index": (0, 2, "death", None, 365, "followup_end"),
    "enrol_first": (100, 0, "censored", None, 100, "enrollment_end"),
    "retired": (60, 2, "retired", None, 365, "followup_end"),
    "ltd_tie": (70, 1, "rtw", None, 365, "followup_end"),
    "never_back": (365, 0, "censored", None, 365, "followup_end"),
    "late_back": (365, 0, "censored", None, 365, "followup_end"),
    "back_365": (365, 1, "rtw", None, 365, "followup_end"),
    "modified": (25, 1, "rtw", None, 365, "followup_end"),
    "unemployed": (40, 1, "rtw", None, 365, "followup_end"),
}


def test_rtw_population_is_exactly_the_persons_off_work_at_index(marts):
    assert set(marts.rtw.person_id) == set(EXPECTED)
    flags = dict(zip(marts.cohort.person_id, marts.cohort.in_rtw_population, strict=True))
    assert {p for p, flag in flags.items() if flag} == set(EXPECTED)


@pytest.mark.parametrize("person_id", sorted(EXPECTED))
def test_time_to_event_row(marts, person_id):
    row = marts.rtw_row(person_id)
    assert tuple(row[c] for c in COLUMNS) == EXPECTED[person_id]


def test_rtw_attrition(marts):
    rtw = marts.attrition[marts.attrition.population == "rtw"]
    assert list(zip(rtw.rule, rtw.remaining, rtw.excluded, strict=True)) == [
        ("cohort", 16, 0),
        ("off_work_at_index", 13, 3),
    ]


def test_summary_counts_events(marts):
    assert marts.summary.rtw_population == 13
    assert marts.summary.rtw_events == {"censored": 3, "death": 2, "retired": 1, "rtw": 7}


def test_end_of_data_censors(tmp_path):
    ex = Extract()
    ex.person("p").claim("p", 0, LBP).work("p", 0, "off_work").work("p", 250, "working")
    marts = ex.build(tmp_path, overrides={"cohort.data_end_date": BASE.replace(month=12, day=31)})
    # 2022-06-15 -> 2022-12-31 is day 199
    assert tuple(marts.rtw_row("p")[c] for c in COLUMNS) == (199, 0, "censored", None, 199, "data_end")
    assert marts.cohort_row("p")["followup_end_day"] == 199


def test_death_censors_when_it_is_not_a_competing_event(tmp_path):
    ex = Extract()
    ex.person("sentinel").claim("sentinel", 1000, "Z00.00")
    ex.person("p", death=50).claim("p", 0, LBP).work("p", 0, "off_work").work("p", 80, "working")
    marts = ex.build(tmp_path, overrides={"outcomes.rtw.death_is_competing": False})
    assert tuple(marts.rtw_row("p")[c] for c in COLUMNS) == (50, 0, "censored", None, 50, "death")
