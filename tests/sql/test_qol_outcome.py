"""Quality-of-life follow-up: closest assessment within +-30 days of 90/180/365, missing kept missing."""

from __future__ import annotations

import pandas as pd
import pytest
from miniature import Extract

from ipm_outcomes.spec import PRO_INSTRUMENTS

LBP = "M54.50"


def _extract() -> Extract:
    ex = Extract()
    ex.person("q").claim("q", 0, LBP)
    ex.pro("q", -10, "promis_pf", 40.0)
    ex.pro("q", 59, "promis_pf", 41.0)  # outside 90 +- 30
    ex.pro("q", 60, "promis_pf", 42.0)
    ex.pro("q", 95, "promis_pf", 43.0)  # closest to 90
    ex.pro("q", 150, "promis_pf", 44.0)  # 150 and 210 tie for 180: the earlier wins
    ex.pro("q", 210, "promis_pf", 46.0)
    ex.pro("q", 396, "promis_pf", 47.0)  # 31 days after 365: outside
    ex.pro("q", 120, "odi", 20.0)  # edge of the 90 window
    ex.pro("q", 335, "odi", 18.0)  # edge of the 365 window
    ex.pro("q", 180, "nrs_pain", 3.0).pro("q", 180, "nrs_pain", 4.0)  # same day: averaged
    ex.person("empty").claim("empty", 0, LBP)
    return ex


@pytest.fixture(scope="module")
def marts(tmp_path_factory):
    return _extract().build(tmp_path_factory.mktemp("qol"))


COLUMNS = ("horizon_days", "baseline_day", "baseline_score", "followup_day", "followup_score")


def _rows(marts, person_id, instrument):
    return [tuple(r[c] for c in COLUMNS) for r in marts.qol_rows(person_id, instrument)]


def test_one_row_per_person_instrument_and_horizon(marts):
    assert len(marts.qol) == 2 * len(PRO_INSTRUMENTS) * 3
    assert set(marts.qol.instrument) == set(PRO_INSTRUMENTS)


def test_closest_assessment_within_the_window(marts):
    assert _rows(marts, "q", "promis_pf") == [
        (90, -10, 40.0, 95, 43.0),
        (180, -10, 40.0, 150, 44.0),
        (365, -10, 40.0, None, None),
    ]


def test_window_edges_are_inclusive(marts):
    assert _rows(marts, "q", "odi") == [
        (90, None, None, 120, 20.0),
        (180, None, None, None, None),
        (365, None, None, 335, 18.0),
    ]


def test_same_day_scores_are_averaged(marts):
    assert _rows(marts, "q", "nrs_pain")[1] == (180, None, None, 180, 3.5)


def test_person_without_assessments_keeps_every_row_missing(marts):
    rows = marts.qol[marts.qol.person_id == "empty"]
    assert len(rows) == len(PRO_INSTRUMENTS) * 3
    assert rows[["baseline_score", "followup_score", "followup_day"]].isna().all().all()


def test_missing_follow_up_is_counted(marts):
    counts = {(r["instrument"], r["horizon_days"]): (r["observed"], r["missing"]) for r in marts.summary.qol_observed}
    assert counts[("promis_pf", 90)] == (1, 1)
    assert counts[("promis_pf", 365)] == (0, 2)
    assert counts[("odi", 365)] == (1, 1)
    assert counts[("phq9", 180)] == (0, 2)


def test_horizons_and_window_come_from_the_spec(tmp_path):
    marts = _extract().build(
        tmp_path, overrides={"outcomes.qol.horizons_days": [100, 200], "outcomes.qol.horizon_window_days": 5}
    )
    assert _rows(marts, "q", "promis_pf") == [(100, -10, 40.0, 95, 43.0), (200, -10, 40.0, None, None)]


def _baseline_extract() -> Extract:
    """Scores around index and an early IPM contact whose intake questionnaire records the scores again."""
    ex = Extract()
    ex.person("intake").claim("intake", 0, LBP)
    ex.pro("intake", -12, "promis_pf", 38.0).pro("intake", -12, "nrs_pain", 8.0)
    ex.claim("intake", 3, LBP, hcpcs="99204", taxonomy="208VP0014X")  # first IPM contact on day 3
    ex.pro("intake", 3, "promis_pf", 45.0).pro("intake", 3, "nrs_pain", 5.0)  # closer to index, but after it
    ex.person("index_day").claim("index_day", 0, LBP)
    ex.pro("index_day", -20, "promis_pf", 30.0).pro("index_day", 0, "promis_pf", 33.0)  # day 0 is baseline
    ex.person("only_after").claim("only_after", 0, LBP)
    ex.pro("only_after", 1, "promis_pf", 50.0)  # the day after index: not a baseline
    ex.person("too_early").claim("too_early", 0, LBP)
    ex.pro("too_early", -31, "promis_pf", 20.0).pro("too_early", -30, "odi", 40.0)
    return ex


def test_the_baseline_score_is_measured_on_or_before_index(tmp_path):
    """Issue 19: a baseline score is a confounder of the referral, so it must be measured before the
    referral can act on or be seen in it (time zero, the index day). Up to now the window ran to day 14
    and the closest assessment won: an early IPM contact's intake questionnaire (day 3) replaced the
    pre-index score the referral was decided on, for referred persons only."""
    marts = _baseline_extract().build(tmp_path)
    assert _rows(marts, "intake", "promis_pf")[0][1:3] == (-12, 38.0)
    assert _rows(marts, "intake", "nrs_pain")[0][1:3] == (-12, 8.0)
    assert _rows(marts, "index_day", "promis_pf")[0][1:3] == (0, 33.0)
    assert _rows(marts, "only_after", "promis_pf")[0][1:3] == (None, None)
    assert _rows(marts, "too_early", "promis_pf")[0][1:3] == (None, None)
    assert _rows(marts, "too_early", "odi")[0][1:3] == (-30, 40.0)
    cohort = {p: marts.cohort_row(p) for p in ("intake", "index_day", "only_after")}
    assert (cohort["intake"]["baseline_promis_pf"], cohort["intake"]["baseline_nrs_pain"]) == (38.0, 8.0)
    assert cohort["index_day"]["baseline_promis_pf"] == 33.0
    assert pd.isna(cohort["only_after"]["baseline_promis_pf"])
