"""The analysis computes the same numbers as before issue 15's refactor, to the last decimal.

``tests/fixtures/golden/`` holds the results of fixed-seed studies made with the code as it was before
the analysis plan, the results data model and the vocabulary were introduced
(``tests/fixtures/golden/make_golden.py``). Each test re-runs the same study with today's code and
compares every estimate, interval and count, and every estimate table, to the stored copy: floats
within 1e-12 (relative to their size), everything else exactly.

* the small study (3,000 persons, 10 bootstrap replicates, one worker): default suite;
* the demo (``ipm-outcomes run``: 20,000 persons, 200 replicates): marked slow.

Both copies were made again on 2026-12-06 (issue 19), because the study design changed: the baseline
PRO scores, which are covariates of every weighting model, are now taken from on or before the index
day (``outcomes.qol.baseline_window_days = [-30, 0]``, was ``[-30, 14]``). Nothing else moved: the new
copies were made by the same code that passed against the old ones with the old window.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden"
sys.path.insert(0, str(GOLDEN))
import make_golden  # noqa: E402

TOL = 1e-12


def _added_since_the_copy(measure: str, horizon) -> bool:
    """Estimates deliberately added after the copy was made (every other new estimate is a difference):
    days off work at every 30 days below the last horizon (issue 13: the first screen answers within the
    longest horizon both arms reach when the year is withheld)."""
    from ipm_outcomes.analysis import days_off_reading_horizons

    return measure in ("rmst_difference", "restricted_mean_days_off_work") and horizon in days_off_reading_horizons(365)


#: Analyses of the plan added after the copy was made, whose rows of the stored tables are deliberately new
#: (issue 16: empirical calibration's EASE check in the diagnostics table).
_ANALYSES_ADDED_SINCE_THE_COPY = ("empirical_calibration",)


def _close(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        if math.isnan(a) and math.isnan(b):
            return True
        return abs(a - b) <= TOL * max(1.0, abs(a), abs(b))
    return a == b


def _analysis_of(method: str, outcome: str) -> str:
    """The analysis plan's id of an estimate stored before estimates carried one (schema 2)."""
    if method == "ccw":
        return "primary"
    if method == "ancova_iptw":
        return f"qol_{outcome}"
    return method


def _estimates(results: dict) -> dict:
    """Estimates of a results.json by their key (analysis id, outcome, measure, arm, horizon)."""
    out = {}
    for e in results["estimates"]:
        analysis = e.get("analysis") or _analysis_of(e["method"], e["outcome"])
        key = (analysis, e["outcome"], e["method"], e["measure"], e["arm"], e["horizon_days"])
        assert key not in out, f"two estimates with the key {key}"
        out[key] = {k: e[k] for k in ("estimate", "ci_low", "ci_high", "n")}
    return out


def _diff_estimates(stored: dict, now: dict) -> list[str]:
    a, b = _estimates(stored), _estimates(now)
    added = {k for k in b.keys() - a.keys() if _added_since_the_copy(k[3], k[5])}
    problems = [f"missing now: {k}" for k in a.keys() - b.keys()]
    problems += [f"new: {k}" for k in b.keys() - a.keys() - added]
    for key in a.keys() & b.keys():
        for col, value in a[key].items():
            if not _close(value, b[key][col]):
                problems.append(f"{key} {col}: stored {value!r}, now {b[key][col]!r}")
    return problems


def _flatten(value, prefix=""):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _flatten(v, f"{prefix}/{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _flatten(v, f"{prefix}[{i}]")
    else:
        yield prefix, value


#: The plan's id of each weighting model named in the stored balance and diagnostics (issue 15: keyed by the
#: analysis, not the weighting model, since the copy was made).
_PLAN_ID_OF_WEIGHTING = {"ccw": "primary", "cohort_iptw": "cohort_description", "landmark_iptw": "landmark_iptw"}


def _stored_diagnostics_as_now(stored: dict) -> dict:
    """The stored diagnostics with their checks keyed by the plan's ids (values untouched)."""
    diagnostics = dict(stored["diagnostics"])
    checks = []
    for check in diagnostics.get("checks") or []:
        analysis = _PLAN_ID_OF_WEIGHTING.get(check["analysis"], check["analysis"])
        checks.append(dict(check, analysis=analysis, name=f"{analysis}:{check['name'].split(':', 1)[1]}"))
    diagnostics["checks"] = checks
    return diagnostics


def _diff_diagnostics(stored: dict, now: dict) -> list[str]:
    a, b = dict(_flatten(_stored_diagnostics_as_now(stored))), dict(_flatten(now["diagnostics"]))
    problems = [f"diagnostics{k}: missing now" for k in a.keys() - b.keys()]
    problems += [f"diagnostics{k}: stored {a[k]!r}, now {b[k]!r}" for k in a.keys() & b.keys() if not _close(a[k], b[k])]
    return problems


def _stored_as_now(name: str, frame: pd.DataFrame, stored: dict) -> pd.DataFrame:
    """A stored table in today's layout (the changes of layout since the copy was made; values untouched)."""
    if stored.get("schema_version") != 2:
        return frame
    if name == "sensitivity":  # rows keyed by the analysis plan's ids: the primary is "primary"
        primary = f"grace_{stored['grace_period_days']}"
        frame = frame.assign(analysis=frame["analysis"].replace({primary: "primary"}))
    if name in ("estimates", "rtw_curves"):  # the analysis id, first column
        outcome = frame["outcome"] if "outcome" in frame else "rtw"
        analysis = [_analysis_of(m, o) for m, o in zip(frame["method"], pd.Series(outcome, index=frame.index))]
        frame = pd.concat([pd.Series(analysis, index=frame.index, name="analysis"), frame], axis=1)
    if name in ("balance", "diagnostics"):  # keyed by the plan's analysis id, not the weighting model
        frame = frame.assign(analysis=frame["analysis"].replace(_PLAN_ID_OF_WEIGHTING))
    if name == "delay_categories":  # first and last day of each band (none stored: cohort description)
        raise AssertionError("delay_categories is not a stored golden table")
    return frame


def _diff_tables(stored_dir: Path, now_dir: Path) -> list[str]:
    problems = []
    stored = json.loads((stored_dir / "results.json").read_text())
    for path in sorted(stored_dir.glob("*.parquet")):
        a = _stored_as_now(path.stem, pd.read_parquet(path), stored)
        b_path = now_dir / path.name
        if not b_path.exists():
            problems.append(f"{path.name}: not written now")
            continue
        b = pd.read_parquet(b_path)
        # rows added since an older copy was made are left out of today's table; a copy made since has them
        if path.stem == "estimates":
            added = pd.Series([_added_since_the_copy(m, h) for m, h in zip(b["measure"], b["horizon_days"])], index=b.index)
            if not any(_added_since_the_copy(m, h) for m, h in zip(a["measure"], a["horizon_days"])):
                b = b[~added].reset_index(drop=True)
        if path.stem == "diagnostics" and not a["analysis"].isin(_ANALYSES_ADDED_SINCE_THE_COPY).any():
            b = b[~b["analysis"].isin(_ANALYSES_ADDED_SINCE_THE_COPY)].reset_index(drop=True)
        if list(a.columns) != list(b.columns) or len(a) != len(b):
            problems.append(f"{path.name}: columns/rows {list(a.columns)}x{len(a)} now {list(b.columns)}x{len(b)}")
            continue
        try:
            pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=TOL, atol=TOL, check_dtype=False)
        except AssertionError as exc:
            problems.append(f"{path.name}: {str(exc).splitlines()[0:6]}")
    return problems


def compare(stored_dir: Path, now_dir: Path) -> list[str]:
    stored = json.loads((stored_dir / "results.json").read_text())
    now = json.loads((now_dir / "results.json").read_text())
    problems = _diff_estimates(stored, now) + _diff_diagnostics(stored, now) + _diff_tables(stored_dir, now_dir)
    for key in ("cohort", "attrition", "primary_horizon_days", "grace_period_days", "unavailable"):
        if stored[key] != now[key]:
            problems.append(f"{key}: stored {stored[key]!r}, now {now[key]!r}")
    return problems


@pytest.fixture(scope="module")
def small_now(tmp_path_factory) -> Path:
    return make_golden.run_small(tmp_path_factory.mktemp("golden_small"))


def test_small_study_estimates_equal_the_stored_copy(small_now):
    problems = compare(GOLDEN / "small", small_now)
    assert problems == [], "\n".join(problems[:40])


def test_the_comparison_fails_on_a_changed_estimate(small_now, tmp_path):
    """The golden comparison is not blind: one estimate moved by 1e-9 is a difference."""
    changed = tmp_path / "changed"
    shutil.copytree(small_now, changed)
    results = json.loads((changed / "results.json").read_text())
    results["estimates"][3]["ci_high"] += 1e-9
    (changed / "results.json").write_text(json.dumps(results))
    problems = compare(GOLDEN / "small", changed)
    assert len(problems) == 1 and "ci_high" in problems[0]


@pytest.mark.slow
def test_demo_estimates_equal_the_stored_copy(tmp_path):
    """The demo study (20,000 persons, 200 replicates, about 5 minutes on two cores)."""
    from ipm_outcomes import analysis, cohort, ingest, synth
    from ipm_outcomes.spec import load_spec

    spec = load_spec()
    synth.generate(tmp_path / "extract", persons=20000, seed=spec.study.seed, file_format="parquet")
    ingest.load_extract(tmp_path / "extract", tmp_path / "db.duckdb")
    cohort.build(spec, tmp_path / "db.duckdb")
    analysis.run(spec, tmp_path / "db.duckdb", tmp_path / "results")
    problems = compare(GOLDEN / "demo", tmp_path / "results")
    assert problems == [], "\n".join(problems[:40])
