"""The report finds the cohort's diagnostics by the plan's id of the cohort description, not a method name.

The pass/fail checks are keyed ``<analysis id>:<diagnostic>`` by the plan's ids (the balance and diagnostics
tables name the analysis, not the weighting model). The cohort's largest |SMD| is one Table 1 row's SMD and
its equipoise share a share of the cohort: both go through the disclosure gate, which must recognise them
under the plan's id.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from ipm_outcomes.report import render

TINY = Path(__file__).resolve().parents[1] / "fixtures" / "results_tiny"


@pytest.mark.parametrize("passed", [True, False])
def test_the_cohort_checks_are_gated_under_the_plan_id(tmp_path, passed):
    """Failed, the checks are also named with their values in the first screen's sentence on the diagnostics,
    which goes through the same gate."""
    results = tmp_path / "results"
    shutil.copytree(TINY, results, ignore=shutil.ignore_patterns("*.py"))
    data = json.loads((results / "results.json").read_text())
    description = next(p["id"] for p in data["plan"] if p["role"] == "description")
    assert description == "cohort_description"
    data["diagnostics"]["checks"] = [
        {"name": f"{description}:covariate_balance", "label": "Covariate balance (cohort propensity model)",
         "value": 0.0463, "threshold": "max |SMD| after weighting < 0.1", "passed": passed, "analysis": description},
        {"name": f"{description}:equipoise", "label": "Equipoise (cohort propensity model)",
         "value": 0.7568, "threshold": ">= 20% of persons with preference score in [0.3, 0.7]", "passed": passed,
         "analysis": description},
    ]
    (results / "results.json").write_text(json.dumps(data))
    summary = render(results, tmp_path / "report", pdf=False)
    with open(summary.out_dir / "tables" / "diagnostics.csv", newline="", encoding="utf-8") as handle:
        values = {r["check"]: r["value"] for r in csv.DictReader(handle)}
    # the tiny cohort withholds Table 1's small cells, so neither the SMD nor the cohort share may be shown
    assert values == {
        "Covariate balance (cohort propensity model)": "withheld (a characteristic with fewer than 11 persons in a group)",
        "Equipoise (cohort propensity model)": "withheld (would reveal fewer than 11 persons)",
    }
    html = summary.html.read_text(encoding="utf-8")
    assert "0.0463" not in html and "0.757" not in html


SMALL = Path(__file__).resolve().parents[1] / "fixtures" / "results_small"
#: The fixtures' reports as rendered (test_report_sections proves a fresh render equal to them).
STORED_REPORT = Path(__file__).resolve().parents[1] / "fixtures" / "report_golden"


@pytest.mark.parametrize("fixture, shown", [(TINY, set()), (SMALL, {"early", "delayed"})])
def test_a_strategy_effective_sample_share_is_shown_only_beside_its_effective_sample_size(tmp_path, fixture, shown):
    """The share is the effective sample size over the strategy's weighted clones: with the size it gives back
    the number of weighted clones, and alone it is a second route to the size. So it is shown exactly when the
    report shows that strategy's effective sample size: neither of the tiny fixture's (7.5 and 25.2, withheld
    there), both of the small one's. A share under another analysis's id (whose sizes are not in the disclosure
    ledger) is always withheld."""
    shares = {"early": 0.0417, "delayed": 0.0829}
    plain = (STORED_REPORT / f"{fixture.name.removeprefix('results_')}.html").read_text(encoding="utf-8")
    assert not any(f"{share:.3g}" in plain for share in shares.values())  # the attack below finds only what it adds
    results = tmp_path / "results"
    shutil.copytree(fixture, results, ignore=shutil.ignore_patterns("*.py"))
    data = json.loads((results / "results.json").read_text())
    data["diagnostics"]["checks"] = [
        {"name": f"{analysis}:{arm}_strategy_effective_sample_share",
         "label": f"{arm.capitalize()} strategy effective sample share ({analysis})", "value": share,
         "threshold": "Kish effective sample size >= 10% of the strategy's weighted clones", "passed": False,
         "analysis": analysis}
        for analysis in ("primary", "sensitivity_grace_28")
        for arm, share in shares.items()
    ]
    (results / "results.json").write_text(json.dumps(data))
    summary = render(results, tmp_path / "report", pdf=False)
    tables = summary.out_dir / "tables"
    with open(tables / "diagnostics_detail.csv", newline="", encoding="utf-8") as handle:
        detail = {r["quantity"]: r["value"] for r in csv.DictReader(handle)}
    ess_shown = {arm for arm, label in (("early", "Early IPM"), ("delayed", "Delayed or no IPM"))
                 if detail[f"Effective sample size after weighting, {label} group"].replace(",", "").isdigit()}
    assert ess_shown == shown
    with open(tables / "diagnostics.csv", newline="", encoding="utf-8") as handle:
        values = {r["check"]: r["value"] for r in csv.DictReader(handle)}
    withheld = "withheld (would reveal fewer than 11 persons)"
    assert values == {
        f"{arm.capitalize()} strategy effective sample share ({analysis})": (
            f"{share:.3g}" if analysis == "primary" and arm in shown else withheld
        )
        for analysis in ("primary", "sensitivity_grace_28")
        for arm, share in shares.items()
    }
    html = summary.html.read_text(encoding="utf-8")
    for arm, share in shares.items():
        # the diagnostics table and the first screen's sentence on the failed diagnostics
        assert html.count(f"{share:.3g}") == (2 if arm in shown else 0)
    # both strategies failed: the limitations say what that means, in words (no number)
    assert "In the early IPM and the delayed or no IPM groups, a few patients carry much of the weight" in html


# -- one gate for every released table -------------------------------------------------------------


def test_a_table_showing_a_person_count_column_directly_is_refused(tmp_path, monkeypatch):
    """The attack: a section shows the delay categories' person counts straight from the results table (not
    through the ledger), in a column it forgot to mark as counts. The tiny fixture's categories hold 3, 6 and 3
    persons. The results data model declares delay_categories.n a person count, so the gate refuses the table
    and nothing is written; before the gate, tables/leak.csv held "3" and "6"."""
    from ipm_outcomes.disclosure import DisclosureError
    from ipm_outcomes.report import DisplayTable, Section, document
    from ipm_outcomes.report.sections import SECTIONS

    def leak(ctx):
        cats = ctx.data.table("delay_categories")
        rows = [[str(r["delay_category"]), str(int(r["n"]))] for r in cats.to_dict("records")]
        return Section({}, {"leak": DisplayTable(columns=[("delay_category", "Band"), ("persons", "Persons")], rows=rows,
                                                 caption="Leak", sources={"persons": ("delay_categories", "n")})})

    monkeypatch.setattr(document, "SECTIONS", (*SECTIONS, ("leak", leak)))
    out = tmp_path / "report"
    try:
        render(TINY, out, pdf=False)
    except DisclosureError as exc:
        assert str(exc).startswith("report table 'leak' column 'persons' row 0: '3' is a count of 1 to 10 persons")
    leaked = out / "tables" / "leak.csv"
    assert not leaked.exists(), leaked.read_text()
    assert not (out / "report.html").exists()


def test_the_gate_reads_shown_counts_and_refuses_small_ones():
    import pandas as pd
    import pytest

    from ipm_outcomes.disclosure import DisclosureError, DisclosurePolicy, check_released_table

    policy = DisclosurePolicy(11)
    shown = pd.DataFrame({"n": ["0", "11", "1,234", "<11", "*", "\u2014", ""], "label": ["7"] * 7})
    check_released_table("t", shown, ["n"], policy)  # labels are not counts: "7" in them is not checked
    with pytest.raises(DisclosureError, match=r"report table 't' column 'n' row 1: '10' is a count of 1 to 10 persons"):
        check_released_table("t", pd.DataFrame({"n": ["12", "10"]}), ["n"], policy)


def test_schema_3_results_name_the_cohort_checks_by_the_weighting_and_are_still_gated(tmp_path):
    """Results written before the checks were keyed by plan id (schema 3) name the cohort's checks
    ``cohort_iptw:...``; read as they are, the gate would not know them and would show the withheld SMD."""
    results = tmp_path / "results"
    shutil.copytree(TINY, results, ignore=shutil.ignore_patterns("*.py"))
    data = json.loads((results / "results.json").read_text())
    assert data["schema_version"] == 3
    data["diagnostics"]["checks"] = [
        {"name": "cohort_iptw:covariate_balance", "label": "Covariate balance (cohort propensity model)",
         "value": 0.0463, "threshold": "max |SMD| after weighting < 0.1", "passed": True, "analysis": "cohort_iptw"},
        {"name": "cohort_iptw:equipoise", "label": "Equipoise (cohort propensity model)",
         "value": 0.7568, "threshold": ">= 20% of persons with preference score in [0.3, 0.7]", "passed": True,
         "analysis": "cohort_iptw"},
    ]
    (results / "results.json").write_text(json.dumps(data))
    summary = render(results, tmp_path / "report", pdf=False)
    html = summary.html.read_text(encoding="utf-8")
    assert "0.0463" not in html and "0.757" not in html
