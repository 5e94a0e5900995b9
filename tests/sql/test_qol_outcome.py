"""Quality-of-life follow-up: closest assessment within +-30 days of 90/180/365, missing kept missing."""

from __future__ import annotations

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
