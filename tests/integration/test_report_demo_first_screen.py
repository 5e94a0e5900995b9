"""The demo's own report: its first screen in the browser, and the disclosure attacker (slow: the demo study
itself, about 5 minutes on 2 cores).

The fixture-based first-screen test (test_report_render.py) proves the page's layout; this one proves
that the demo a new user runs (`make demo`: 20,000 generated persons, the shipped spec and seed) answers
in both units on its first screen. On the demo, too few early-referred persons are still followed at one
year for the year's days off work to pass the disclosure gate, so the answer is given within the longest
horizon both strategies reach.
"""

from __future__ import annotations

import json
import re

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from ipm_outcomes import analysis, cohort, ingest, synth
    from ipm_outcomes.report import render
    from ipm_outcomes.spec import load_spec

    root = tmp_path_factory.mktemp("demo")
    spec = load_spec()
    # as `ipm-outcomes run` does without --extract (pipelines/flows.py: synthesize_task)
    synth.generate(root / "extract", persons=20_000, seed=spec.study.seed, file_format="parquet")
    ingest.load_extract(root / "extract", root / "db.duckdb")
    cohort.build(spec, root / "db.duckdb")
    analysis.run(spec, root / "db.duckdb", root / "results")
    return root, render(root / "results", root / "report", pdf=False)


def test_demo_first_screen_answers_in_points_and_days(demo):
    from test_report_render import CHROMIUM, FIRST_SCREEN, _cdp_load

    root, summary = demo
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium)")
    result = _cdp_load(summary.html.as_uri(), summary.out_dir / "first_screen.png", width=1280, height=800,
                       probe=FIRST_SCREEN)
    assert result["errors"] == []
    seen = result["probe"]
    assert all(v is not None and v["visible"] for v in seen.values()), seen
    assert "Synthetic data" in seen["#source-banner"]["text"]
    assert re.search(r"a difference of \d+(\.\d)? percentage points", seen["#answer .finding"]["text"])
    days = seen["#answer .days-off"]["text"]
    match = re.search(r"about (\d+) (fewer|more) days off work per patient with early referral", days)
    assert match, days
    verdict = seen["#reliability"]["text"]
    assert verdict.count(".") <= 2 and len(verdict) < 200, verdict
    # the days quoted are the analysis's own estimate at the horizon the sentence names
    results = json.loads((root / "results" / "results.json").read_text())
    within = re.search(r"in the first (\d+) days", days)
    horizon = int(within.group(1)) if within else 365
    rm = next(e for e in results["estimates"] if e["method"] == "ccw" and e["measure"] == "rmst_difference"
              and e["horizon_days"] == horizon)
    assert int(match.group(1)) == round(abs(rm["estimate"]))


def test_attack_recovers_nothing_from_the_demo(demo):
    """The attacker of test_disclosure_attack.py on the demo report itself (20,000 persons, 200 replicates)."""
    from test_disclosure_attack import _assert_safe

    _assert_safe(demo[1], min_hidden=1)
