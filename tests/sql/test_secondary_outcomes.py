"""Secondary and negative-control outcomes, and costs, on hand-made miniatures with exact expected rows.

Every boundary of each definition is pinned: day 0 (index) vs day 1, the "new" baseline window
(index - 365 .. index), the 180-day opioid window and the opioid-naive look-back, death before the
event, censoring at the end of enrollment, the ED place of service, and the cost window (days 0..365,
stopped by censoring or death). Unavailable inputs are reported, never read as zero.
"""

from __future__ import annotations

import pytest
from miniature import Extract, _plain

from ipm_outcomes.errors import IpmError

LBP = "M54.50"
OXY = "00406055201"
DEPRESSION, ANXIETY, SLEEP = "F32.9", "F41.1", "G47.00"
OTHER = "J06.9"


def _indexed(ex: Extract, pid: str, **person) -> Extract:
    """A person with index on day 0 (an lbp claim without an allowed amount)."""
    return ex.person(pid, **person).claim(pid, 0, LBP)


def _clock(ex: Extract) -> Extract:
    # a claim on day 480 (of a person outside the cohort) moves the end of the data past day 365, so
    # follow-up ends at day 365
    return ex.person("zz_clock").claim("zz_clock", 480, OTHER)


def _rows(marts, mart: str, outcome: str, columns: tuple[str, ...]) -> dict[str, tuple]:
    frame = marts.mart(mart)
    frame = frame[frame.outcome == outcome]
    return {r["person_id"]: tuple(r[c] for c in columns) for r in (_plain(x) for x in frame.to_dict("records"))}


EVENT = ("in_population", "time_days", "event", "event_type")


# -- new depression or anxiety, new sleep disorder -----------------------------------------------


@pytest.fixture(scope="module")
def diagnosis_marts(tmp_path_factory):
    ex = Extract()
    _clock(ex)
    _indexed(ex, "d0_index_day").claim("d0_index_day", 0, DEPRESSION)
    _indexed(ex, "d1_day_one").claim("d1_day_one", 1, DEPRESSION)
    _indexed(ex, "d2_baseline_edge").claim("d2_baseline_edge", -365, DEPRESSION).claim("d2_baseline_edge", 90, ANXIETY)
    _indexed(ex, "d3_before_window").claim("d3_before_window", -366, DEPRESSION).claim("d3_before_window", 90, ANXIETY)
    _indexed(ex, "d4_second_position").claim("d4_second_position", 30, OTHER, OTHER, ANXIETY)
    _indexed(ex, "d5_ehr").encounter("d5_ehr", 40, diagnosis=DEPRESSION)
    _indexed(ex, "d6_death_first", death=50).claim("d6_death_first", 60, DEPRESSION)
    _indexed(ex, "d7_death_same_day", death=70).claim("d7_death_same_day", 70, DEPRESSION)
    _indexed(ex, "d8_censored", spans=((-500, 100),)).claim("d8_censored", 150, DEPRESSION)
    _indexed(ex, "d9_on_censor_day", spans=((-500, 100),)).claim("d9_on_censor_day", 100, DEPRESSION)
    _indexed(ex, "d10_day_365").claim("d10_day_365", 365, SLEEP).claim("d10_day_365", 366, DEPRESSION)
    _indexed(ex, "d11_sleep").claim("d11_sleep", 10, SLEEP).claim("d11_sleep", -20, DEPRESSION)
    _indexed(ex, "d12_nothing")
    return ex.build(tmp_path_factory.mktemp("diagnosis"))


def test_new_depression_anxiety_rows_exactly(diagnosis_marts):
    got = _rows(diagnosis_marts, "secondary_outcome", "new_depression_anxiety", EVENT)
    assert got == {
        "d0_index_day": (False, 365, 0, "censored"),  # a diagnosis on the index day is baseline
        "d1_day_one": (True, 1, 1, "event"),
        "d2_baseline_edge": (False, 90, 1, "event"),  # day -365 is inside the baseline window
        "d3_before_window": (True, 90, 1, "event"),  # day -366 is not
        "d4_second_position": (True, 30, 1, "event"),
        "d5_ehr": (True, 40, 1, "event"),
        "d6_death_first": (True, 50, 2, "death"),
        "d7_death_same_day": (True, 70, 1, "event"),
        "d8_censored": (True, 100, 0, "censored"),
        "d9_on_censor_day": (True, 100, 1, "event"),
        "d10_day_365": (True, 365, 0, "censored"),  # day 366 is after follow-up
        "d11_sleep": (False, 365, 0, "censored"),
        "d12_nothing": (True, 365, 0, "censored"),
    }


def test_new_sleep_disorder_rows(diagnosis_marts):
    got = _rows(diagnosis_marts, "secondary_outcome", "new_sleep_disorder", EVENT)
    assert got["d10_day_365"] == (True, 365, 1, "event")
    assert got["d11_sleep"] == (True, 10, 1, "event")
    assert got["d1_day_one"] == (True, 365, 0, "censored")
    assert got["d8_censored"] == (True, 100, 0, "censored")
    censored = _rows(diagnosis_marts, "secondary_outcome", "new_sleep_disorder", ("censor_day", "censor_reason"))
    assert censored["d8_censored"] == (100, "enrollment_end")
    assert censored["d12_nothing"] == (365, "followup_end")


def test_every_cohort_person_has_one_row_per_available_outcome(diagnosis_marts):
    frame = diagnosis_marts.mart("secondary_outcome")
    cohort = set(diagnosis_marts.cohort.person_id)
    assert set(frame.person_id) == cohort
    # no pharmacy rows in this extract: long-term opioid therapy is unavailable and has no rows
    assert sorted(frame.outcome.unique()) == ["ed_visit_lbp", "lumbar_surgery", "new_depression_anxiety", "new_sleep_disorder"]
    assert len(frame) == 4 * len(cohort)
    assert frame.opioid_naive.isna().all()


# -- long-term opioid therapy ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def opioid_marts(tmp_path_factory):
    ex = Extract().drug(OXY, "oxycodone", 5.0, True, 1.5).drug("53746046401", "ibuprofen", 800.0, False, None)
    _clock(ex)
    _indexed(ex, "o1_window_180").fill("o1_window_180", 1, OXY, 120, 30).fill("o1_window_180", 60, OXY, 120, 30)
    ex.fill("o1_window_180", 180, OXY, 120, 30)
    _indexed(ex, "o2_window_181").fill("o2_window_181", 1, OXY, 120, 30).fill("o2_window_181", 60, OXY, 120, 30)
    ex.fill("o2_window_181", 181, OXY, 120, 30)
    _indexed(ex, "o3_index_day_fill").fill("o3_index_day_fill", 0, OXY, 120, 30).fill("o3_index_day_fill", 60, OXY, 120, 30)
    ex.fill("o3_index_day_fill", 100, OXY, 120, 30)
    _indexed(ex, "o4_one_fill").fill("o4_one_fill", 5, OXY, 360, 90).fill("o4_one_fill", -365, OXY, 20, 5)
    _indexed(ex, "o5_not_opioid").fill("o5_not_opioid", 5, "53746046401", 270, 90).fill("o5_not_opioid", -366, OXY, 20, 5)
    _indexed(ex, "o6_death", death=100).fill("o6_death", 10, OXY, 240, 60).fill("o6_death", 99, OXY, 240, 60)
    ex.fill("o6_death", 101, OXY, 240, 60).fill("o6_death", -1, OXY, 20, 5)
    _indexed(ex, "o7_same_day").fill("o7_same_day", 20, OXY, 240, 60).fill("o7_same_day", 20, OXY, 120, 30)
    return ex.build(tmp_path_factory.mktemp("opioid"))


def test_long_term_opioid_rows_exactly(opioid_marts):
    got = _rows(opioid_marts, "secondary_outcome", "long_term_opioid", (*EVENT, "opioid_naive"))
    assert got == {
        "o1_window_180": (True, 180, 1, "event", True),  # days 1..180: 90 days' supply
        "o2_window_181": (True, 365, 0, "censored", True),  # day 181's window starts on day 2
        "o3_index_day_fill": (True, 365, 0, "censored", True),  # the index-day fill is not follow-up
        "o4_one_fill": (True, 5, 1, "event", False),  # a fill on day -365 is in the naive look-back
        "o5_not_opioid": (True, 365, 0, "censored", True),  # day -366 is not; ibuprofen is no opioid
        "o6_death": (True, 99, 1, "event", False),
        "o7_same_day": (True, 20, 1, "event", True),
    }
    availability = opioid_marts.mart("outcome_availability").set_index("outcome")
    assert bool(availability.loc["long_term_opioid", "available"])


def test_death_before_the_opioid_threshold_is_competing(tmp_path):
    ex = Extract().drug(OXY, "oxycodone", 5.0, True, 1.5)
    _clock(ex)
    _indexed(ex, "p", death=100).fill("p", 10, OXY, 240, 60).fill("p", 101, OXY, 240, 60)
    marts = ex.build(tmp_path)
    assert _rows(marts, "secondary_outcome", "long_term_opioid", EVENT) == {"p": (True, 100, 2, "death")}


# -- lumbar surgery and ED visits for low back pain ----------------------------------------------


@pytest.fixture(scope="module")
def care_marts(tmp_path_factory):
    ex = Extract()
    _clock(ex)
    _indexed(ex, "s0_index_day").claim("s0_index_day", 0, LBP, hcpcs="63030")
    _indexed(ex, "s1_fusion").claim("s1_fusion", 200, LBP, hcpcs="22612").claim("s1_fusion", 250, LBP, hcpcs="63047")
    _indexed(ex, "s2_not_lumbar").claim("s2_not_lumbar", 50, LBP, hcpcs="64483")
    _indexed(ex, "e0_index_ed").claim("e0_index_ed", 0, LBP, pos="23")
    _indexed(ex, "e1_ed_claim").claim("e1_ed_claim", 20, OTHER, LBP, pos="23").claim("e1_ed_claim", 10, OTHER, pos="23")
    _indexed(ex, "e2_office").claim("e2_office", 5, LBP, pos="11").claim("e2_office", 6, OTHER, pos="23")
    _indexed(ex, "e3_ehr_ed").encounter("e3_ehr_ed", 30, diagnosis=LBP, encounter_type="ed")
    ex.encounter("e3_ehr_ed", 25, diagnosis=LBP, encounter_type="office")
    _indexed(ex, "e4_ehr_other_dx").encounter("e4_ehr_other_dx", 30, diagnosis=OTHER, encounter_type="ed")
    return ex.build(tmp_path_factory.mktemp("care"))


def test_lumbar_surgery_rows(care_marts):
    got = _rows(care_marts, "secondary_outcome", "lumbar_surgery", EVENT)
    assert got["s0_index_day"] == (True, 365, 0, "censored")
    assert got["s1_fusion"] == (True, 200, 1, "event")
    assert got["s2_not_lumbar"] == (True, 365, 0, "censored")  # an IPM injection is not surgery
    assert sum(event for _, _, event, _ in got.values()) == 1


def test_ed_visit_lbp_rows(care_marts):
    got = _rows(care_marts, "secondary_outcome", "ed_visit_lbp", EVENT)
    assert got == {
        "s0_index_day": (True, 365, 0, "censored"),
        "s1_fusion": (True, 365, 0, "censored"),
        "s2_not_lumbar": (True, 365, 0, "censored"),
        "e0_index_ed": (True, 365, 0, "censored"),  # the index ED visit is day 0
        "e1_ed_claim": (True, 20, 1, "event"),  # lbp anywhere on the POS 23 claim; day 10 had none
        "e2_office": (True, 365, 0, "censored"),  # lbp in the office, not in the ED
        "e3_ehr_ed": (True, 30, 1, "event"),
        "e4_ehr_other_dx": (True, 365, 0, "censored"),
    }


# -- costs ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cost_marts(tmp_path_factory):
    ex = Extract().drug(OXY, "oxycodone", 5.0, True, 1.5)
    _clock(ex)
    c1 = "c1_full"
    _indexed(ex, c1).claim(c1, 0, LBP, allowed=100.0).claim(c1, -1, OTHER, allowed=1000.0)
    ex.claim(c1, 365, OTHER, hcpcs="97110", allowed=50.0).claim(c1, 366, LBP, allowed=70.0)
    ex.claim(c1, 30, OTHER, allowed=7.0).fill(c1, 3, OXY, 20, 5, allowed=20.0).fill(c1, 400, OXY, 20, 5, allowed=9.0)
    c2 = "c2_censored"
    _indexed(ex, c2, spans=((-500, 200),)).claim(c2, 200, LBP, allowed=40.0).claim(c2, 201, LBP, allowed=400.0)
    c3 = "c3_died"
    _indexed(ex, c3, death=100).claim(c3, 100, OTHER, hcpcs="72148", allowed=300.0).claim(c3, 101, LBP, allowed=5.0)
    return ex.build(tmp_path_factory.mktemp("cost"))


COST = ("allowed_amount", "observed_day", "complete", "end_reason", "censor_day")


def test_cost_total_rows_exactly(cost_marts):
    got = _rows(cost_marts, "cost_outcome", "cost_total_365", COST)
    assert got == {
        "c1_full": (177.0, 365, True, "followup_end", 365),  # 100 + 50 + 7 + 20 (days 0..365)
        "c2_censored": (40.0, 200, False, "enrollment_end", 200),  # stops at the end of enrollment
        "c3_died": (300.0, 100, True, "death", 365),  # no costs after death; complete
    }


def test_cost_lbp_rows_exactly(cost_marts):
    got = _rows(cost_marts, "cost_outcome", "cost_lbp_365", ("allowed_amount",))
    # c1: the index lbp claim (100) and physical therapy (50); not the day-30 visit nor the pharmacy fill
    assert got == {"c1_full": (150.0,), "c2_censored": (40.0,), "c3_died": (300.0,)}


def _daily(marts, outcome: str) -> dict[tuple[str, int], float]:
    frame = marts.mart("cost_daily")
    frame = frame[frame.outcome == outcome]
    return {(r["person_id"], r["day"]): r["allowed_amount"] for r in (_plain(x) for x in frame.to_dict("records"))}


def test_cost_daily_rows_exactly(cost_marts):
    """The day-by-day history behind the totals: the same claims, one row per day with an amount."""
    assert _daily(cost_marts, "cost_total_365") == {
        ("c1_full", 0): 100.0,  # the lbp claim without an amount on day 0 adds nothing
        ("c1_full", 3): 20.0,  # the pharmacy fill
        ("c1_full", 30): 7.0,
        ("c1_full", 365): 50.0,
        ("c2_censored", 200): 40.0,  # not day 201, after the end of enrollment
        ("c3_died", 100): 300.0,  # not day 101, after death
    }
    assert _daily(cost_marts, "cost_lbp_365") == {
        ("c1_full", 0): 100.0,
        ("c1_full", 365): 50.0,
        ("c2_censored", 200): 40.0,
        ("c3_died", 100): 300.0,
    }
    totals = cost_marts.mart("cost_daily").groupby(["person_id", "outcome"]).allowed_amount.sum()
    costs = cost_marts.mart("cost_outcome").set_index(["person_id", "outcome"]).allowed_amount
    assert totals.to_dict() == costs.to_dict()


def test_all_outcomes_available_with_full_inputs(cost_marts):
    availability = cost_marts.mart("outcome_availability")
    assert availability.available.all()
    assert availability.detail.isna().all()
    assert sorted(availability.outcome) == sorted(
        [
            "cost_lbp_365",
            "cost_total_365",
            "ed_visit_lbp",
            "long_term_opioid",
            "lumbar_surgery",
            "negative_controls",
            "new_depression_anxiety",
            "new_sleep_disorder",
        ]
    )


# -- unavailable inputs -------------------------------------------------------------------------------


def _availability(marts) -> dict[str, tuple]:
    frame = marts.mart("outcome_availability")
    return {r["outcome"]: (r["available"], r["detail"]) for r in (_plain(x) for x in frame.to_dict("records"))}


def test_no_pharmacy_and_no_allowed_amounts_are_unavailable_not_zero(tmp_path):
    ex = Extract()
    _indexed(ex, "p").claim("p", 10, DEPRESSION, pos="23")
    marts = ex.build(tmp_path)
    got = _availability(marts)
    assert got["long_term_opioid"] == (False, "the extract has no pharmacy_claim rows")
    assert got["cost_total_365"] == (False, "no medical_claim line has an allowed_amount")
    assert got["cost_lbp_365"] == (False, "no medical_claim line has an allowed_amount")
    assert got["new_depression_anxiety"] == (True, None)
    assert marts.mart("cost_outcome").empty
    assert marts.mart("cost_daily").empty
    assert "long_term_opioid" not in set(marts.mart("secondary_outcome").outcome)


def test_pharmacy_without_allowed_amounts_makes_total_cost_unavailable(tmp_path):
    ex = Extract().drug(OXY, "oxycodone", 5.0, True, 1.5)
    _indexed(ex, "p").claim("p", 10, OTHER, allowed=10.0).fill("p", 10, OXY, 20, 5)
    got = _availability(ex.build(tmp_path))
    assert got["cost_total_365"] == (False, "no pharmacy_claim line has an allowed_amount")
    assert got["cost_lbp_365"] == (True, None)
    assert got["long_term_opioid"] == (True, None)


def test_medical_costs_without_pharmacy_claims_say_so(tmp_path):
    ex = Extract()
    _indexed(ex, "p").claim("p", 10, OTHER, allowed=10.0)
    marts = ex.build(tmp_path)
    got = _availability(marts)
    assert got["cost_total_365"] == (True, "medical claims only: the extract has no pharmacy_claim rows")
    assert got["long_term_opioid"] == (False, "the extract has no pharmacy_claim rows")
    assert _rows(marts, "cost_outcome", "cost_total_365", ("allowed_amount",)) == {"p": (10.0,)}


def test_no_place_of_service_and_no_encounters_makes_ed_visits_unavailable(tmp_path):
    ex = Extract()
    ex.person("q").claim("q", 0, LBP, pos=None).claim("q", 20, LBP, pos=None)
    marts = ex.build(tmp_path)
    assert _availability(marts)["ed_visit_lbp"] == (
        False,
        "no medical_claim line has a place_of_service_code and the extract has no ehr_encounter rows",
    )
    assert "ed_visit_lbp" not in set(marts.mart("secondary_outcome").outcome)
    with_encounters = Extract()
    with_encounters.person("q").claim("q", 0, LBP, pos=None).encounter("q", 5)
    assert _availability(with_encounters.build(tmp_path, name="enc.duckdb"))["ed_visit_lbp"] == (True, None)


# -- negative controls ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def control_marts(tmp_path_factory):
    ex = Extract()
    _clock(ex)
    _indexed(ex, "n1").claim("n1", 15, "L60.0").claim("n1", -100, "H60.1").claim("n1", 20, "H60.1")
    _indexed(ex, "n2").claim("n2", 0, "L60.0").claim("n2", 1, "H26.9", "B86")
    _indexed(ex, "n3", death=30).claim("n3", 40, "L60.0")
    return ex.build(tmp_path_factory.mktemp("controls"))


def test_negative_control_rows_exactly(control_marts):
    nail = _rows(control_marts, "negative_control_outcome", "ingrown_nail", EVENT)
    assert nail == {
        "n1": (True, 15, 1, "event"),
        "n2": (False, 365, 0, "censored"),  # the index day is baseline
        "n3": (True, 30, 2, "death"),
    }
    assert _rows(control_marts, "negative_control_outcome", "otitis_externa", EVENT)["n1"] == (False, 20, 1, "event")
    assert _rows(control_marts, "negative_control_outcome", "cataract", EVENT)["n2"] == (True, 1, 1, "event")
    assert _rows(control_marts, "negative_control_outcome", "scabies_pediculosis", EVENT)["n2"] == (True, 1, 1, "event")


def test_one_row_per_person_per_negative_control(control_marts):
    frame = control_marts.mart("negative_control_outcome")
    outcomes = set(frame.outcome)
    assert len(outcomes) >= 20
    assert len(frame) == len(outcomes) * len(control_marts.cohort)
    assert not frame.outcome.isin(["new_depression_anxiety", "negative_controls"]).any()


def test_a_negative_control_code_without_group_is_refused_before_the_build(tmp_path):
    path = tmp_path / "controls.csv"
    path.write_text("code,system,description,source,group\nL600,icd10cm,x,y,ingrown_nail\nH60*,icd10cm,x,y,\n")
    ex = Extract()
    _indexed(ex, "p")
    with pytest.raises(IpmError, match=r"controls\.csv: code H60\* has no group"):
        ex.build(tmp_path, overrides={"valuesets.negative_controls": str(path)})


def test_the_build_summary_names_unavailable_outcomes(tmp_path):
    ex = Extract()
    _indexed(ex, "p")
    summary = ex.build(tmp_path).summary
    assert summary.secondary_unavailable == {
        "cost_lbp_365": "no medical_claim line has an allowed_amount",
        "cost_total_365": "no medical_claim line has an allowed_amount",
        "long_term_opioid": "the extract has no pharmacy_claim rows",
    }
    text = summary.describe()
    assert "  long_term_opioid: unavailable (the extract has no pharmacy_claim rows)" in text.splitlines()
