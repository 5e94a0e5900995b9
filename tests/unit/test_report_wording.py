"""The executive summary reads correctly for a beneficial, a harmful, a null and an empty result."""

from __future__ import annotations

import json
import re
import shutil
from html import unescape
from pathlib import Path

import pytest

from ipm_outcomes.disclosure import DisclosurePolicy
from ipm_outcomes.report import (
    classify,
    days_in_words,
    diagnostics_sentence,
    primary_finding,
    qol_finding,
    render,
)
from ipm_outcomes.report_data import DiagnosticCheck, Estimate

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
POLICY = DisclosurePolicy(11)


def rd(est, lo, hi, n=2000):
    return Estimate("rtw", "ccw", "risk_difference", None, 180, est, lo, hi, n)


def ci(arm, est, n=1000):
    return Estimate("rtw", "ccw", "cumulative_incidence", arm, 180, est, est - 0.03, est + 0.03, n)


@pytest.mark.parametrize(
    ("days", "words"),
    [(42, "six weeks"), (28, "four weeks"), (7, "one week"), (90, "three months"), (180, "six months"),
     (365, "one year"), (45, "45 days"), (100, "100 days")],
)
def test_days_in_words(days, words):
    assert days_in_words(days) == words


def test_classify():
    assert classify(0.07, 0.15) == "beneficial"
    assert classify(-0.15, -0.07) == "harmful"
    assert classify(-0.02, 0.09) == "null"
    assert classify(0.0, 0.09) == "null"  # touching zero is not excluding it
    # Lower is better (pain): a negative difference is a benefit.
    assert classify(-3.0, -1.0, higher_is_better=False) == "beneficial"
    assert classify(0.5, 2.0, higher_is_better=False) == "harmful"


def test_beneficial_sentence_matches_the_issue_example():
    f = primary_finding(rd(0.11, 0.07, 0.15), ci("early", 0.62), ci("delayed", 0.51),
                        grace_days=42, horizon_days=180, policy=POLICY)
    assert f.verdict == "beneficial"
    assert f.sentence == (
        "Patients first seen by IPM within six weeks returned to work sooner: 62% vs 51% were back at work by "
        "six months, a difference of 11 percentage points (95% CI 7 to 15)."
    )
    assert f.headline == "Early IPM referral: faster return to work"


def test_harmful_sentence():
    f = primary_finding(rd(-0.08, -0.13, -0.03), ci("early", 0.47), ci("delayed", 0.55),
                        grace_days=42, horizon_days=180, policy=POLICY)
    assert f.verdict == "harmful"
    assert f.sentence == (
        "Patients first seen by IPM within six weeks returned to work more slowly: 47% vs 55% were back at work "
        "by six months, 8 percentage points fewer (95% CI -13 to -3)."
    )
    assert "slower" in f.headline


def test_null_sentence_when_the_interval_crosses_zero():
    f = primary_finding(rd(0.02, -0.03, 0.07), ci("early", 0.57), ci("delayed", 0.55),
                        grace_days=42, horizon_days=180, policy=POLICY)
    assert f.verdict == "null"
    assert f.sentence == (
        "The study found no clear difference in return to work between patients first seen by IPM within six "
        "weeks and those seen later: 57% vs 55% were back at work by six months, a difference of 2 percentage "
        "points (95% CI -3 to 7). The interval includes zero, so the data are compatible with early referral "
        "helping by up to 7 points or hindering by up to 3 points."
    )
    assert "no clear difference" in f.headline


def test_null_wording_does_not_depend_on_the_sign_of_the_point_estimate():
    f = primary_finding(rd(-0.02, -0.07, 0.03), ci("early", 0.53), ci("delayed", 0.55),
                        grace_days=42, horizon_days=180, policy=POLICY)
    assert f.verdict == "null"
    assert "a difference of -2 percentage points (95% CI -7 to 3)" in f.sentence
    assert "helping by up to 3 points or hindering by up to 7 points" in f.sentence


def test_rounding_switches_to_one_decimal_when_whole_numbers_would_disagree():
    # 74.5% vs 65.1% = 9.4 points: "75% vs 65%, a difference of 9" would not add up.
    f = primary_finding(rd(0.0942, 0.0515, 0.1370), ci("early", 0.7452), ci("delayed", 0.6510),
                        grace_days=42, horizon_days=180, policy=POLICY)
    assert "74.5% vs 65.1% were back at work by six months, a difference of 9.4 percentage points (95% CI 5.1 to 13.7)" in f.sentence


def test_arm_levels_from_fewer_than_eleven_persons_are_not_quoted():
    f = primary_finding(rd(0.11, 0.07, 0.15), ci("early", 0.62, n=9), ci("delayed", 0.51),
                        grace_days=42, horizon_days=180, policy=POLICY)
    assert f.verdict == "beneficial"
    assert "62%" not in f.sentence and "51%" not in f.sentence
    assert f.sentence == ("Patients first seen by IPM within six weeks returned to work sooner: by six months, "
                          "11 percentage points more were back at work (95% CI 7 to 15).")


def test_missing_or_tiny_primary_estimate_is_unavailable():
    assert primary_finding(None, None, None, grace_days=42, horizon_days=180, policy=POLICY).verdict == "unavailable"
    f = primary_finding(rd(0.11, 0.07, 0.15, n=8), None, None, grace_days=42, horizon_days=180, policy=POLICY)
    assert f.verdict == "unavailable" and f.sentence.startswith("Too few patients followed one of the two strategies")


def test_qol_wording_follows_the_direction_of_benefit():
    pf = Estimate("promis_pf", "ancova_iptw", "mean_difference", None, 180, 2.1, 0.9, 3.3, 1500)
    assert qol_finding(pf, instrument="promis_pf", horizon_days=180, mcid=5, policy=POLICY) == (
        "On PROMIS physical function (higher is better) at six months, early referral was followed by better "
        "scores: 2.1 points higher (95% CI 0.9 to 3.3). The smallest change patients notice is about 5 points, "
        "so the difference is smaller than that."
    )
    odi = Estimate("odi", "ancova_iptw", "mean_difference", None, 180, -11.0, -14.0, -8.0, 1500)
    assert qol_finding(odi, instrument="odi", horizon_days=180, mcid=10, policy=POLICY).startswith(
        "On Oswestry Disability Index (lower is better) at six months, early referral was followed by better "
        "scores: 11.0 points lower (95% CI -14.0 to -8.0). The smallest change patients notice is about 10 points, "
        "so the difference is at least that."
    )
    worse = Estimate("nrs_pain", "ancova_iptw", "mean_difference", None, 90, 0.8, 0.2, 1.4, 1500)
    assert "followed by worse scores: 0.8 points higher" in qol_finding(
        worse, instrument="nrs_pain", horizon_days=90, mcid=2, policy=POLICY)
    null = Estimate("eq5d_index", "ancova_iptw", "mean_difference", None, 365, 0.01, -0.02, 0.04, 1500)
    assert qol_finding(null, instrument="eq5d_index", horizon_days=365, mcid=0.08, policy=POLICY).startswith(
        "On EQ-5D index (higher is better) at one year, there was no clear difference between the groups: "
        "+0.01 points (95% CI -0.02 to 0.04).")


def test_diagnostics_sentence():
    ok = [DiagnosticCheck("balance", "Covariate balance after weighting (max |SMD|)", 0.04, "< 0.1", True),
          DiagnosticCheck("equipoise", "Preference-score equipoise", 0.62, ">= 0.2", True)]
    shown = lambda c: f"{c.value:.3g}"  # noqa: E731  (the report passes its disclosure gate here)
    text, passed = diagnostics_sentence(ok, shown)
    assert passed is True and text.startswith("All 2 study diagnostics passed (covariate balance")
    bad = [ok[0], DiagnosticCheck("equipoise", "Preference-score equipoise", 0.12, ">= 0.2", False)]
    text, passed = diagnostics_sentence(bad, shown)
    assert passed is False
    assert text.startswith("1 of 2 study diagnostics failed (Preference-score equipoise: 0.12 (threshold >= 0.2))")
    assert diagnostics_sentence([], shown) == ("Study diagnostics were not available in these results.", None)


# -- end to end: the wording lands in the report ---------------------------------------------------


def _variant(tmp_path: Path, name: str, edit) -> Path:
    target = tmp_path / name
    shutil.copytree(FIXTURES / "results_small", target)
    path = target / "results.json"
    results = json.loads(path.read_text())
    edit(results)
    path.write_text(json.dumps(results))
    return target


def _set_primary(results, d, lo, hi, early, delayed):
    for e in results["estimates"]:
        if e["outcome"] == "rtw" and e["method"] == "ccw" and e["horizon_days"] == 180:
            if e["measure"] == "risk_difference":
                e.update(estimate=d, ci_low=lo, ci_high=hi)
            elif e["measure"] == "cumulative_incidence":
                level = early if e["arm"] == "early" else delayed
                e.update(estimate=level, ci_low=level - 0.03, ci_high=level + 0.03)


def _summary_text(summary) -> str:
    html = unescape(summary.html.read_text(encoding="utf-8"))
    return html[html.index('id="summary"'): html.index('id="population"')]


def test_report_states_a_harmful_result(tmp_path):
    results = _variant(tmp_path, "harm", lambda r: _set_primary(r, -0.08, -0.13, -0.03, 0.47, 0.55))
    summary = render(results, tmp_path / "out", pdf=False)
    text = _summary_text(summary)
    assert summary.verdict == "harmful"
    assert "returned to work more slowly: 47% vs 55% were back at work by six months, 8 percentage points fewer (95% CI -13 to -3)." in text
    assert 'class="callout harmful"' in text


def test_report_states_the_fixture_result_and_diagnostics(tmp_path):
    summary = render(FIXTURES / "results_small", tmp_path / "out", pdf=False)
    text = _summary_text(summary)
    assert summary.verdict == "beneficial"
    assert ("Patients first seen by IPM within six weeks returned to work sooner: 74.5% vs 65.1% were back at work "
            "by six months, a difference of 9.4 percentage points (95% CI 5.1 to 13.7).") in text
    # one line in the summary; the diagnostics in detail stay in section 9
    assert "How reliable: All study checks passed" in re.sub(r"<[^>]+>", "", text)
    assert "All 2 study diagnostics passed" not in text
    assert "The study followed 3,560 adults aged 18-64" in text


def test_empty_cohort_is_a_finding_not_a_crash(tmp_path):
    def empty(r):
        r["cohort"] = {"n": 0, "n_early": 0, "n_delayed": 0, "n_rtw_population": 0}
        r["estimates"] = []
        steps = [a for a in r["attrition"] if a["population"] == "cohort"]
        steps[-1]["excluded"] += steps[-1]["remaining"]
        steps[-1]["remaining"] = 0
        r["attrition"] = steps
        r["diagnostics"] = {}
        r["tables"] = {}

    results = _variant(tmp_path, "empty", empty)
    for parquet in results.glob("*.parquet"):
        parquet.unlink()
    summary = render(results, tmp_path / "out", pdf=True)
    assert summary.verdict == "empty"
    text = _summary_text(summary)
    assert "No persons met the cohort criteria" in text
    html = unescape(summary.html.read_text(encoding="utf-8"))
    assert "No persons met the cohort criteria: return to work could not be estimated." in html
    assert (tmp_path / "out" / "figures" / "attrition.png").exists()
    assert summary.pdf is not None and summary.pdf_pages >= 3
