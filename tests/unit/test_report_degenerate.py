"""Reports rendered from degenerate results: no nan, no impossible value, no claim over an empty figure.

Each case starts from the hand-made ``results_small`` fixture and breaks it the way a small or unlucky
study does: every bootstrap replicate failing (no intervals), no early persons, no events, an early arm
of a handful of persons, estimates outside their parameter space (a responder share of 110%, an
interval to -38.6%). The rendered outputs (HTML text, every CSV cell, every text drawn in a figure) are
then read back.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from html import unescape
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ipm_outcomes.report import render

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "results_small"
NAN = re.compile(r"(?<![A-Za-z])[+-]?(nan|inf)(?![A-Za-z])", re.IGNORECASE)
PERCENT = re.compile(r"(-?\d+(?:\.\d+)?)%")
#: Sentences that state a finding: a figure whose title says one must show the numbers behind it.
CLAIMS = re.compile(r"may differ|falls|rises|holds across|point the same way|overstates|understates|trend|"
                    r"depends on|returned to work (sooner|more slowly)", re.IGNORECASE)


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "results"
    shutil.copytree(FIXTURE, target)
    return target


def _edit(results: Path, fn_json=None, tables: dict | None = None) -> Path:
    data = json.loads((results / "results.json").read_text())
    if fn_json:
        fn_json(data)
    (results / "results.json").write_text(json.dumps(data))
    for name, fn in (tables or {}).items():
        path = results / f"{name}.parquet"
        fn(pd.read_parquet(path)).to_parquet(path, index=False)
    return results


def _no_intervals(data):
    for e in data["estimates"]:
        e["ci_low"] = e["ci_high"] = None
    data["diagnostics"]["e_value"] = {"estimate": data["diagnostics"]["e_value"]["estimate"], "ci_bound": None}


def _nan_ci(frame):
    for c in ("ci_low", "ci_high"):
        if c in frame:
            frame[c] = np.nan
    return frame


def _no_early(data):
    for e in data["estimates"]:
        if e["arm"] == "early" or e["arm"] is None:
            e["estimate"] = e["ci_low"] = e["ci_high"] = None
        if e["arm"] == "early":
            e["n"] = 0


def _nan_estimates(frame):
    frame["estimate"] = np.nan
    return frame


def _no_events(data):
    for e in data["estimates"]:
        if e["outcome"] == "rtw":
            if e["measure"] == "cumulative_incidence":
                e.update(estimate=0.0, ci_low=0.0, ci_high=0.0)
            elif e["measure"] in ("risk_ratio", "hazard_ratio"):
                e.update(estimate=None, ci_low=None, ci_high=None)
            elif e["measure"] == "risk_difference":
                e.update(estimate=0.0, ci_low=0.0, ci_high=0.0)
    data["diagnostics"]["e_value"] = {"estimate": None, "ci_bound": None}


def _zero_curves(frame):
    for c in ("estimate", "ci_low", "ci_high"):
        frame[c] = 0.0
    return frame


def _tiny_early(data):
    for e in data["estimates"]:
        if e["arm"] == "early":
            e["n"] = 6


def _impossible(data):
    for e in data["estimates"]:
        if e["measure"] == "responder_proportion":
            e.update(estimate=1.102, ci_low=-0.386, ci_high=1.289)
        if e["measure"] == "cumulative_incidence" and e["arm"] == "delayed":
            e.update(ci_low=-0.05, ci_high=1.2)


CASES = {
    "bootstrap_failed": dict(fn_json=_no_intervals, tables={t: _nan_ci for t in ("sensitivity", "subgroups", "dose_response", "rtw_curves")}),
    "no_early": dict(fn_json=_no_early, tables={"sensitivity": _nan_estimates, "subgroups": _nan_estimates, "dose_response": _nan_estimates}),
    "no_events": dict(fn_json=_no_events, tables={"rtw_curves": _zero_curves}),
    "tiny_early_arm": dict(fn_json=_tiny_early),
    "impossible_values": dict(fn_json=_impossible),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def degenerate(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(request.param)
    results = _edit(_copy(tmp), **CASES[request.param])
    return request.param, render(results, tmp / "report", pdf=False)


def _html_text(summary) -> str:
    html = summary.html.read_text(encoding="utf-8")
    html = re.sub(r"<(style|script|pre)\b.*?</\1>", " ", html, flags=re.S)
    html = re.sub(r'src="data:[^"]+"', "", html)
    return unescape(re.sub(r"<[^>]+>", " ", html))


def _csv_cells(summary):
    for path in summary.tables:
        with open(path, newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                for column, value in row.items():
                    yield path.name, column, value or ""


def test_no_nan_anywhere(degenerate):
    name, summary = degenerate
    assert not NAN.findall(_html_text(summary)), name
    bad = [(f, c, v) for f, c, v in _csv_cells(summary) if NAN.search(v) and c != "sha256"]
    assert bad == []
    drawn = [(fig, t) for fig, texts in summary.figure_text.items() for t, _ in texts if NAN.search(t)]
    assert drawn == []


def test_no_impossible_percentages(degenerate):
    """Every share and its interval lies in 0-100%, wherever it is printed."""
    name, summary = degenerate
    values = [float(m) for m in PERCENT.findall(_html_text(summary))]
    for _, column, value in _csv_cells(summary):
        if column in ("early", "delayed", "responders", "estimate", "pct") or column.endswith("_pct"):
            values += [float(m) for m in PERCENT.findall(value)]
            # "% (lo to hi)": the bounds of a share carry no % sign
            m = re.fullmatch(r"\s*\d+(?:\.\d+)?% \((-?\d+(?:\.\d+)?) to (-?\d+(?:\.\d+)?)\)", value)
            if m:
                values += [float(m.group(1)), float(m.group(2))]
    assert values, "the scan must see percentages"
    assert all(0.0 <= v <= 100.0 for v in values), (name, sorted(v for v in values if not 0 <= v <= 100))


def test_no_claim_over_an_empty_figure(tmp_path):
    """No early persons, and a subgroup test at p = 0.021: the subgroup, dose-response and sensitivity
    figures would be empty, so none is drawn and no title claims a finding ("The effect may differ by sex",
    "no steady trend", "depends on the grace period"); the report says why in words."""

    def small_p(frame):
        frame = _nan_estimates(frame)
        frame["p_interaction"] = 0.021
        return frame

    results = _edit(_copy(tmp_path), fn_json=_no_early,
                    tables={"sensitivity": _nan_estimates, "subgroups": small_p, "dose_response": _nan_estimates})
    summary = render(results, tmp_path / "r", pdf=False)
    assert not {"forest_subgroups", "dose_response", "forest_sensitivity"} & set(summary.figure_text)
    claims = [t for texts in summary.figure_text.values() for t, _ in texts if CLAIMS.search(t)]
    assert claims == []
    text = _html_text(summary)
    assert "may differ by" not in text
    assert len(re.findall(r"Too few persons", text)) >= 3


MISSING = "\u2014"


def test_e_value_sentence_when_the_interval_includes_no_effect(tmp_path):
    results = _edit(_copy(tmp_path), fn_json=lambda d: d["diagnostics"].update(
        e_value={"estimate": 1.31, "ci_bound": 1.0, "ci_low": 0.76, "ci_high": 1.68}))
    text = _html_text(render(results, tmp_path / "r", pdf=False))
    assert "1.00 to move" not in text
    assert "already includes no effect" in text


def test_summary_line_says_the_result_in_words(tmp_path):
    summary = render(FIXTURE, tmp_path / "r", pdf=False)
    line = next(x for x in summary.describe().splitlines() if "primary result" in x)
    assert summary.verdict in ("beneficial", "harmful", "null")
    assert re.search(r"primary result: (early referral|no clear difference)", line), line


def test_a_study_with_too_few_early_persons_says_so(tmp_path):
    """The real 300-person study: the primary estimate rests on 8 early persons; the report says it cannot
    estimate it, in words, and quotes no arm level at a day its curve does not reach."""
    results = _edit(_copy(tmp_path), fn_json=_tiny_early)
    summary = render(results, tmp_path / "r", pdf=False)
    text = _html_text(summary)
    assert summary.verdict == "unavailable"
    assert re.search(r"[Tt]oo few (persons|patients)", text)


def test_summary_falls_back_to_the_latest_day_shown(tmp_path):
    """The six-month estimate withheld (fewer than 11 early patients still followed and off work by then), the
    three-month one shown: the summary answers at three months and says why not at six."""

    def cut_early_curve(frame):
        early = (frame["method"] == "ccw") & (frame["arm"] == "early") & (frame["day"] >= 120)
        frame.loc[early, "n_at_risk"] = 5
        return frame

    results = _edit(_copy(tmp_path), tables={"rtw_curves": cut_early_curve})
    summary = render(results, tmp_path / "r", pdf=False)
    text = _html_text(summary)
    assert summary.verdict == "beneficial"
    assert "by three months" in text
    assert "The estimate at six months is not shown" in text
