"""The report's section "Other harms of delay" and the first screen's list of available outcomes.

On the hand-made ``harms`` case of ``tests/fixtures/report_golden/make_report_golden.py`` (the small fixture with
three secondary outcomes, their naive comparisons, two costs, six negative controls and the calibration; its
numbers are chosen so that every rule of the disclosure gate applies somewhere, see ``HARMS_OUTCOMES``): what is
shown equals the results, what the gate withholds is withheld, and an attacker who reads everything cannot work a
count of 1 to 10 back. Variants of it: costs unavailable (no allowed amounts), calibration skipped.
"""

from __future__ import annotations

import csv
import json
import math
import re
import sys
from html import unescape
from pathlib import Path

import pandas as pd
import pytest

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "report_golden"
sys.path.insert(0, str(GOLDEN))
import make_report_golden  # noqa: E402
from _attack import SMALL, attack, read_report  # noqa: E402

from ipm_outcomes import plots  # noqa: E402
from ipm_outcomes.report import counts, render  # noqa: E402


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _render(results: Path, out: Path, monkeypatch=None):
    """Render ``results``; with ``monkeypatch``, also the arguments of the section's two plotting calls."""
    calls: dict = {}
    if monkeypatch is not None:
        for name in ("secondary_incidence", "calibration_effect"):
            real = getattr(plots, name)

            def record(*args, _name=name, _real=real, **kwargs):
                calls[_name] = (args, kwargs)
                return _real(*args, **kwargs)

            monkeypatch.setattr(plots, name, record)
    return render(results, out, pdf=False), calls


@pytest.fixture(scope="module")
def harms_results(tmp_path_factory) -> Path:
    return make_report_golden.results_for("harms", tmp_path_factory.mktemp("harms"))


@pytest.fixture(scope="module")
def harms(harms_results, tmp_path_factory):
    """The harms case rendered once (a report is immutable once written): the summary and the plotting calls."""
    with pytest.MonkeyPatch.context() as mp:
        return _render(harms_results, tmp_path_factory.mktemp("harms_report") / "report", mp)


def _edit(results: Path, tmp: Path, change) -> Path:
    """A copy of ``results`` with ``change(results.json as a dict, folder)`` applied."""
    import shutil

    target = tmp / "edited"
    shutil.copytree(results, target)
    r = json.loads((target / "results.json").read_text())
    change(r, target)
    (target / "results.json").write_text(json.dumps(r))
    return target


# -- the table and the figure show the results, where the gate lets them --------------------------------


def test_the_incidence_table_shows_the_results_where_the_gate_allows(harms):
    summary, _ = harms
    rows = {(r["outcome"], r["horizon_days"]): r for r in _rows(summary.out_dir / "tables" / "harms_incidence.csv")}
    # every count and estimate of the sleep-disorder outcome is large: all shown, equal to the results
    sleep = rows[("New sleep-disorder diagnosis", "365")]
    assert sleep == {
        "outcome": "New sleep-disorder diagnosis", "horizon_days": "365",
        "early": "8.8% (7.8 to 9.8)", "delayed": "11.8% (10.8 to 12.8)",      # 120 / 1,365 and 260 / 2,195
        "risk_difference": "-3.1 (-5.1 to -1.1)", "risk_ratio": "0.74 (0.72 to 0.76)",
        "naive_risk_difference": "-1.4 (-3.4 to 0.6)",                       # 130 / 1,365 - 240 / 2,195
        "n_early": "1,365", "n_delayed": "2,195", "events_early": "120", "events_delayed": "260",
    }
    # lumbar surgery: no early event by day 90 (0% shown), 5 by day 180 (withheld, and so the contrasts)
    assert rows[("Lumbar spine surgery", "90")]["early"] == "0.0% (0.0 to 1.0)"
    assert rows[("Lumbar spine surgery", "90")]["events_early"] == "0"
    day180 = rows[("Lumbar spine surgery", "180")]
    assert (day180["early"], day180["events_early"], day180["risk_difference"], day180["risk_ratio"]) == ("\u2014", SMALL, "\u2014", "\u2014")
    # 40 delayed events by day 180 and 47 by day 365 would give 7 back: the one withheld is day 365's
    day365 = rows[("Lumbar spine surgery", "365")]
    assert (day180["events_delayed"], day365["events_delayed"], day365["delayed"]) == ("40", "*", "\u2014")
    assert day365["early"] == "1.0% (0.0 to 2.0)" and day365["risk_difference"] == "\u2014"
    # new depression or anxiety: its population leaves out 5 of the 2,195 delayed, so its 2,190 is withheld
    # and with it every delayed estimate; only 9 early clones still at risk on day 365: that point withheld
    dep = [rows[("New depression or anxiety diagnosis", h)] for h in ("90", "180", "365")]
    assert {r["n_delayed"] for r in dep} == {"*"} and {r["delayed"] for r in dep} == {"\u2014"}
    assert [r["early"] for r in dep] == ["2.3% (1.3 to 3.3)", "4.6% (3.6 to 5.6)", "\u2014"]
    assert [r["n_early"] for r in dep] == ["1,300"] * 3


def test_every_shown_estimate_is_the_results_value(harms, harms_results):
    """Each estimate the table shows, read back, is its row of secondary_estimates (to the shown decimals)."""
    summary, _ = harms
    se = pd.read_parquet(harms_results / "secondary_estimates.parquet")
    labels = {i["label"]: i["id"] for i in json.loads((harms_results / "results.json").read_text())["plan"]}
    checked = 0
    for r in _rows(summary.out_dir / "tables" / "harms_incidence.csv"):
        aid, h = labels[r["outcome"]], int(r["horizon_days"])
        for column, measure, arm, scale in (("early", "cumulative_incidence", "early", 100),
                                            ("delayed", "cumulative_incidence", "delayed", 100),
                                            ("risk_difference", "risk_difference", None, 100),
                                            ("risk_ratio", "risk_ratio", None, 1)):
            text = r[column]
            if text in ("\u2014", "not estimable"):
                continue
            row = se[(se["analysis"] == aid) & (se["measure"] == measure) & (se["horizon_days"] == h)
                     & (se["arm"].isna() if arm is None else se["arm"] == arm)].iloc[0]
            shown = float(text.split(" ")[0].rstrip("%"))
            digits = 2 if measure == "risk_ratio" else 1
            assert shown == pytest.approx(round(scale * row["estimate"], digits), abs=10 ** -digits / 2), (aid, column, h)
            checked += 1
    assert checked == 19


def test_the_figure_is_drawn_from_secondary_curves_at_the_points_the_table_shows(harms, harms_results):
    summary, calls = harms
    (points,), kwargs = calls["secondary_incidence"]
    curves = pd.read_parquet(harms_results / "secondary_curves.parquet")
    table = _rows(summary.out_dir / "tables" / "harms_incidence.csv")
    labels = {i["label"]: i["id"] for i in json.loads((harms_results / "results.json").read_text())["plan"]}
    expected = []
    for r in table:
        for arm in ("early", "delayed"):
            if r[arm] != "\u2014":
                c = curves[(curves["analysis"] == labels[r["outcome"]]) & (curves["arm"] == arm)
                           & (curves["day"] == int(r["horizon_days"]))].iloc[0]
                expected.append((labels[r["outcome"]], int(r["horizon_days"]), arm, c["estimate"], c["ci_low"], c["ci_high"]))
    drawn = [(p.analysis, p.horizon_days, p.arm, p.estimate, p.ci_low, p.ci_high) for p in points.itertuples(index=False)]
    assert sorted(drawn) == sorted(expected)
    assert len(drawn) == 12  # lumbar surgery 4, depression 2, sleep disorder 6
    assert kwargs["horizons"] == [90, 180, 365]


def test_costs_in_currency_with_units(harms):
    summary, _ = harms
    rows = _rows(summary.out_dir / "tables" / "harms_costs.csv")
    assert rows[0] == {"outcome": "Total allowed cost, days 0-365", "method": "Clone-censor-weight (primary)",
                       "early": "5,200 (4,800 to 5,601)", "delayed": "6,100 (5,800 to 6,400)",
                       "difference": "-900 (-1,400 to -400)", "units": "USD (allowed amounts, per person)",
                       "n_early": "1,365", "n_delayed": "2,195"}
    assert [r["method"] for r in rows] == ["Clone-censor-weight (primary)", "Naive (biased: immortal time)"] * 2


def test_calibrated_beside_uncalibrated_and_ease_as_a_diagnostic(harms):
    summary, calls = harms
    rows = _rows(summary.out_dir / "tables" / "calibrated_estimates.csv")
    assert rows[0] == {"outcome": "Return to work (primary)", "horizon_days": "180", "risk_ratio": "1.14 (1.07 to 1.22)",
                       "p": "<0.001", "calibrated_risk_ratio": "1.08 (0.89 to 1.31)", "calibrated_p": "0.427"}
    # only the secondary contrasts the incidence table shows (sleep disorder); not lumbar surgery or depression
    assert [(r["outcome"], r["horizon_days"]) for r in rows[1:]] == [("New sleep-disorder diagnosis", h) for h in ("90", "180", "365")]
    html = summary.html.read_text(encoding="utf-8")
    assert "Expected absolute systematic error (EASE) 0.09, below OHDSI&#39;s threshold of 0.25" in html
    assert "estimated in the whole cohort" in html and "under the assumption that its systematic error is the same" in html
    # the calibration plot: the fitted null, and only the controls with 11+ persons with the event in each group
    (controls,), kwargs = calls["calibration_effect"]
    assert sorted(controls["log_rr"].round(6)) == [-0.05, 0.02, 0.10, 0.20]  # sunburn (5 early events) withheld
    assert (kwargs["null_mean"], kwargs["null_sd"], kwargs["ease"]) == (0.06, 0.08, 0.094)
    assert len(kwargs["estimates"]) == 4
    assert "The plot shows 4 of them; 1 is withheld from it (fewer than 11 persons with the event in a group" in html


def _outcomes(html: str) -> tuple[str, str]:
    """The first screen's sentence on the outcomes: (what follows "Available:", what follows "Not available:")."""
    text = re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", "", html[html.index('id="outcomes-available"'):])))
    text = text[:text.index("The question.")]
    yes = re.search(r"Available: (.*?)\.(?: Not available|\s*$)", text)
    no = re.search(r"Not available: (.*)\.", text)
    return (yes.group(1) if yes else ""), (no.group(1) if no else "")


def test_the_first_screen_names_the_available_outcomes_and_why_not(harms):
    summary, _ = harms
    html = summary.html.read_text(encoding="utf-8")
    assert html.index('id="outcomes-available"') < html.index('id="population"')  # in the executive summary
    yes, no = _outcomes(html)
    assert yes == ("Return to work, Quality of life, Lumbar spine surgery, New depression or anxiety diagnosis, "
                   "New sleep-disorder diagnosis, Total allowed cost, days 0-365, Back-pain related allowed cost, days 0-365")
    assert no == ("Long-term opioid therapy (the extract has no pharmacy_claim rows); Long-term opioid therapy "
                  "(opioid-naive at baseline) (the extract has no pharmacy_claim rows)")
    section = html[html.index('id="harms"'):html.index('id="diagnostics"')]
    assert "Long-term opioid therapy: not available: the extract has no pharmacy_claim rows." in section


def test_costs_unavailable_and_calibration_skipped(harms_results, tmp_path):
    """No allowed amounts in the extract (both costs unavailable, as the analysis words it) and too few negative
    controls with events (calibration skipped): each says why, on the first screen and in the section."""
    no_amounts = "no medical_claim line has an allowed_amount"
    too_few = "too few negative controls with events in both arms (3 of 6 usable; at least 5 needed)"

    def degrade(r, folder):
        r["unavailable"].update({"cost/cost_total_365": no_amounts, "cost/cost_lbp_365": no_amounts,
                                 "empirical_calibration": too_few})
        (folder / "cost_estimates.parquet").unlink()
        del r["tables"]["cost_estimates"]
        r["diagnostics"]["empirical_calibration"].update(calibrated=False, reason=too_few, null=None, ease=None)
        r["diagnostics"]["checks"] = [c for c in r["diagnostics"]["checks"] if c["name"] != "empirical_calibration:ease"]
        cal = pd.read_parquet(folder / "calibrated_estimates.parquet")
        for c in ("calibrated_estimate", "calibrated_ci_low", "calibrated_ci_high", "calibrated_p"):
            cal[c] = math.nan
        cal["calibrated"] = False
        cal.to_parquet(folder / "calibrated_estimates.parquet", index=False)

    summary, _ = _render(_edit(harms_results, tmp_path, degrade), tmp_path / "report")
    html = summary.html.read_text(encoding="utf-8")
    assert not (summary.out_dir / "tables" / "harms_costs.csv").exists()
    assert f"Total allowed cost, days 0-365 ({no_amounts}); Back-pain related allowed cost, days 0-365 ({no_amounts})" in _outcomes(html)[1]
    assert f"Back-pain related allowed cost, days 0-365: not available: {no_amounts}." in html
    assert f"Calibration skipped: {too_few}." in html
    assert "Expected absolute systematic error" not in html
    rows = _rows(summary.out_dir / "tables" / "calibrated_estimates.csv")
    assert rows[0]["risk_ratio"] == "1.14 (1.07 to 1.22)"
    assert {(r["calibrated_risk_ratio"], r["calibrated_p"]) for r in rows} == {("not calibrated", "\u2014")}
    # the incidence table does not depend on either
    assert _rows(summary.out_dir / "tables" / "harms_incidence.csv")[0]["early"] == "0.0% (0.0 to 1.0)"


def test_results_without_the_section_say_so():
    """Results of before the secondary outcomes (the small fixture, schema 3), as the golden copy stores them: the
    section says they are not in these results, and so does the first screen."""
    html = (GOLDEN / "small.html").read_text(encoding="utf-8")
    assert "The secondary outcomes, costs and empirical calibration are not in these results." in html
    assert _outcomes(html) == ("Return to work, Quality of life", "Other harms of delay (not part of these results)")


# -- disclosure: nothing 1-10 shown or computable ----------------------------------------------------


def test_attack_recovers_nothing_from_the_harms_report(harms):
    summary, _ = harms
    problem = read_report(summary.out_dir, subgroups_of="N", exact_smd=False)
    withheld = {v for k, v in problem.labels.items() if k[0] == "harms"}
    assert withheld == {SMALL, "*"}, "the attacker must see withheld counts of the section (else it proves nothing)"
    assert len([k for k in problem.derived if k[0] == "harms"]) >= 20
    recovered, inconsistent = attack(problem)
    assert inconsistent == []
    assert recovered == {}, "\n".join(f"{w}: {v}" for w, v in recovered.values())


def test_the_attack_finds_what_the_section_would_give_away_unprotected(harms_results, tmp_path, monkeypatch):
    """The same report with the section's counts registered without what they give away together (no identities):
    the attacker works back the 7 delayed lumbar-surgery events between days 180 and 365, and the 5 delayed
    persons left out of the depression population."""
    real = counts._secondary

    def unprotected(ledger, data):
        ledger.add_identity = lambda *a, **k: False  # this step only
        try:
            return real(ledger, data)
        finally:
            del ledger.add_identity

    monkeypatch.setattr(counts, "_secondary", unprotected)
    summary, _ = _render(harms_results, tmp_path / "report")
    recovered, _ = attack(read_report(summary.out_dir, subgroups_of="N", exact_smd=False))
    found = {what: value for what, value in recovered.values()}
    assert found.get("harms Lumbar spine surgery: delayed events up to day 365 since the day before") == 7
    assert found.get("harms New depression or anxiety diagnosis: delayed left out") == 5


def test_analyses_of_one_population_with_different_arm_sizes_keep_a_count_each(harms_results, tmp_path):
    """The naive comparison of an outcome counting other persons than its clone-censor-weight analysis (2,191
    delayed against 2,190) gets a count of its own, tied to the group like the other (it crashed the first pass,
    which registered both under the population's one key)."""
    from ipm_outcomes.disclosure import DisclosurePolicy
    from ipm_outcomes.report.context import build_context
    from ipm_outcomes.report.counts import DELAYED
    from ipm_outcomes.report_data import load_results

    def other_size(r, folder):
        se = pd.read_parquet(folder / "secondary_estimates.parquet")
        naive = (se["analysis"] == "naive_new_depression_anxiety") & (se["arm"] == "delayed")
        se.loc[naive, "n"] = 2191
        se.to_parquet(folder / "secondary_estimates.parquet", index=False)

    ctx = build_context(load_results(_edit(harms_results, tmp_path, other_size)), DisclosurePolicy(11))
    ccw = ctx.counts.secondary[("secondary_new_depression_anxiety", "delayed")]
    naive = ctx.counts.secondary[("naive_new_depression_anxiety", "delayed")]
    assert ccw != naive
    assert (ctx.true_count(ccw), ctx.true_count(naive)) == (2190, 2191)
    ledger = ctx.counts.ledger
    for key, left_out in ((ccw, 5), (naive, 4)):
        assert (DELAYED, (key, key + ("left_out",))) in ledger.identities
        assert ctx.true_count(key + ("left_out",)) == left_out
        assert ledger.status(key) == "complement"  # shown, it would give the 4 or 5 left out back
