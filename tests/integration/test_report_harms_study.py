"""The section "Other harms of delay" on real runs: a small synthetic study, and the same extract without pharmacy
claims and without allowed amounts.

On the 300-person study of seed 5 (10 bootstrap replicates) every estimate the section's table shows is its row of
``secondary_estimates`` (to the shown decimals), its figure is drawn from ``secondary_curves`` at exactly the points the
table shows, and the attacker (:mod:`_attack`) recovers nothing from the whole report (most of this study's event
counts are 1 to 10). Without pharmacy claims long-term opioid therapy is unavailable, without allowed amounts both
costs are, each with the analysis's reason on the first screen and in the section.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest

from _attack import SMALL, attack, read_report


def _study(root: Path, *, pharmacy: bool = True, amounts: bool = True):
    from ipm_outcomes import analysis, cohort, ingest, synth
    from ipm_outcomes.spec import load_spec

    spec_file = root / "spec.toml"
    spec_file.write_text('extends = "default"\n[analysis]\nbootstrap_replicates = 10\n')
    spec = load_spec(spec_file)
    extract = root / "extract"
    synth.generate(extract, persons=300, seed=5)
    if not pharmacy:
        for name in ("pharmacy_claim.csv", "ndc_reference.csv"):
            (extract / name).unlink()
    if not amounts:
        path = extract / "medical_claim.csv"
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        for row in rows:
            row["allowed_amount"] = ""
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    ingest.load_extract(extract, root / "db.duckdb")
    cohort.build(spec, root / "db.duckdb")
    analysis.run(spec, root / "db.duckdb", root / "results", workers=1)
    return root / "results"


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    from ipm_outcomes import plots
    from ipm_outcomes.report import render

    root = tmp_path_factory.mktemp("harms300")
    results = _study(root)
    calls = {}
    with pytest.MonkeyPatch.context() as mp:
        real = plots.secondary_incidence

        def record(points, **kwargs):
            calls["points"] = points
            return real(points, **kwargs)

        mp.setattr(plots, "secondary_incidence", record)
        summary = render(results, root / "report", pdf=False)
    return results, summary, calls


def test_the_table_shows_the_results_and_the_figure_the_curves(study):
    results, summary, calls = study
    se = pd.read_parquet(results / "secondary_estimates.parquet")
    curves = pd.read_parquet(results / "secondary_curves.parquet")
    ids = {i["label"]: i["id"] for i in json.loads((results / "results.json").read_text())["plan"]}
    table = _rows(summary.out_dir / "tables" / "harms_incidence.csv")
    assert {r["outcome"] for r in table} == {"New depression or anxiety diagnosis", "New sleep-disorder diagnosis",
                                             "Long-term opioid therapy", "Long-term opioid therapy (opioid-naive at baseline)",
                                             "Lumbar spine surgery", "Emergency visit for low back pain"}
    shown_points = []
    for r in table:
        aid, h = ids[r["outcome"]], int(r["horizon_days"])
        for column, measure, arm in (("early", "cumulative_incidence", "early"), ("delayed", "cumulative_incidence", "delayed"),
                                     ("risk_difference", "risk_difference", None)):
            if r[column] in ("\u2014", "not estimable"):
                continue
            row = se[(se["analysis"] == aid) & (se["measure"] == measure) & (se["horizon_days"] == h)
                     & (se["arm"].isna() if arm is None else se["arm"] == arm)].iloc[0]
            assert float(r[column].split(" ")[0].rstrip("%")) == pytest.approx(100 * row["estimate"], abs=0.05)
            if arm is not None:
                c = curves[(curves["analysis"] == aid) & (curves["arm"] == arm) & (curves["day"] == h)].iloc[0]
                shown_points.append((aid, h, arm, c["estimate"], c["ci_low"], c["ci_high"]))
        for arm in ("early", "delayed"):
            # an events count is shown only as 0 or 11+ (else "<11" or "*")
            text = r[f"events_{arm}"]
            assert text in (SMALL, "*", "0") or int(text.replace(",", "")) >= 11
    drawn = [(p.analysis, p.horizon_days, p.arm, p.estimate, p.ci_low, p.ci_high)
             for p in calls["points"].itertuples(index=False)]
    assert sorted(drawn) == sorted(shown_points)


def test_attack_recovers_nothing_from_the_study_with_its_harms_section(study):
    _results, summary, _ = study
    problem = read_report(summary.out_dir)
    assert any(k[0] == "harms" and v == SMALL for k, v in problem.labels.items()), "the section must withhold counts"
    recovered, inconsistent = attack(problem)
    assert inconsistent == []
    assert recovered == {}, "\n".join(f"{w}: {v}" for w, v in recovered.values())


def test_without_pharmacy_claims_and_allowed_amounts(tmp_path):
    from ipm_outcomes.report import render

    results = _study(tmp_path, pharmacy=False, amounts=False)
    summary = render(results, tmp_path / "report", pdf=False)
    html = summary.html.read_text(encoding="utf-8")
    from test_report_harms import _outcomes

    yes, no = _outcomes(html)
    assert no == ("Long-term opioid therapy (the extract has no pharmacy_claim rows); Long-term opioid therapy "
                  "(opioid-naive at baseline) (the extract has no pharmacy_claim rows); Total allowed cost, days 0-365 "
                  "(no medical_claim line has an allowed_amount); Back-pain related allowed cost, days 0-365 (no "
                  "medical_claim line has an allowed_amount)")
    assert "Lumbar spine surgery" in yes.split(", ")
    section = html[html.index('id="harms"'):html.index('id="diagnostics"')]
    assert "Long-term opioid therapy (opioid-naive at baseline): not available: the extract has no pharmacy_claim rows." in section
    assert "Back-pain related allowed cost, days 0-365: not available: no medical_claim line has an allowed_amount." in section
    assert not (summary.out_dir / "tables" / "harms_costs.csv").exists()
    outcomes = {r["outcome"] for r in _rows(summary.out_dir / "tables" / "harms_incidence.csv")}
    assert "Long-term opioid therapy" not in outcomes and "Lumbar spine surgery" in outcomes
