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

from ipm_outcomes.report import render

TINY = Path(__file__).resolve().parents[1] / "fixtures" / "results_tiny"


def test_the_cohort_checks_are_gated_under_the_plan_id(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(TINY, results, ignore=shutil.ignore_patterns("*.py"))
    data = json.loads((results / "results.json").read_text())
    description = next(p["id"] for p in data["plan"] if p["role"] == "description")
    assert description == "cohort_description"
    data["diagnostics"]["checks"] = [
        {"name": f"{description}:covariate_balance", "label": "Covariate balance (cohort propensity model)",
         "value": 0.0463, "threshold": "max |SMD| after weighting < 0.1", "passed": True, "analysis": description},
        {"name": f"{description}:equipoise", "label": "Equipoise (cohort propensity model)",
         "value": 0.7568, "threshold": ">= 20% of persons with preference score in [0.3, 0.7]", "passed": True,
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
