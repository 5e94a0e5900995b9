"""End to end on the synthetic study: synth -> ingest -> cohort -> analyze -> report (slow: about a minute).

Checks that the report renders from real analysis output (not only from the hand-made fixtures), passes
the disclosure scans, states the primary estimate from results.json, and loads cleanly in Chromium.
"""

from __future__ import annotations

import json
import re
from html import unescape

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    from ipm_outcomes import analysis, cohort, ingest, synth
    from ipm_outcomes.report import render
    from ipm_outcomes.spec import load_spec

    root = tmp_path_factory.mktemp("real")
    spec_file = root / "spec.toml"
    spec_file.write_text('extends = "default"\n[analysis]\nbootstrap_replicates = 20\n')
    spec = load_spec(spec_file)
    synth.generate(root / "extract", persons=5000, seed=7)
    ingest.load_extract(root / "extract", root / "db.duckdb")
    cohort.build(spec, root / "db.duckdb")
    analysis.run(spec, root / "db.duckdb", root / "results", workers=1)
    summary = render(root / "results", root / "report", pdf=True)
    return root, summary


def test_report_states_the_analysis_result(real):
    root, summary = real
    results = json.loads((root / "results" / "results.json").read_text())
    rd = next(e for e in results["estimates"] if e["outcome"] == "rtw" and e["method"] == "ccw"
              and e["measure"] == "risk_difference" and e["horizon_days"] == 180)
    html = unescape(summary.html.read_text(encoding="utf-8"))
    text = html[html.index('id="summary"'): html.index('id="population"')]
    expected = "beneficial" if rd["ci_low"] > 0 else "harmful" if rd["ci_high"] < 0 else "null"
    assert summary.verdict == expected
    for bound in (rd["ci_low"], rd["ci_high"]):
        assert re.search(rf"95% CI [^)]*{abs(100 * bound):.1f}|95% CI [^)]*{abs(100 * bound):.0f}\b", text)
    assert f"{results['cohort']['n']:,} adults" in text


def test_real_report_passes_the_disclosure_scans(real):
    from test_disclosure_report import _scan_csvs, _scan_figures, _scan_html

    _, summary = real
    assert _scan_csvs(summary)[1] == []
    assert _scan_html(summary)[1] == []
    assert _scan_figures(summary)[1] == []


def test_real_report_in_the_browser_and_pdf(real):
    from test_report_render import CHROMIUM, _cdp_load

    _, summary = real
    assert 12 <= summary.pdf_pages <= 45
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium)")
    result = _cdp_load(summary.html.as_uri(), summary.out_dir / "screenshot.png")
    assert result["errors"] == []
    assert result["page"]["broken"] == 0 and result["page"]["imgs"] == len(summary.figures)
