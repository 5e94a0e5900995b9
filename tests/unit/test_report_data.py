"""Reading an analysis results directory into the report's view (ipm_outcomes.report_data)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ipm_outcomes.errors import IpmError
from ipm_outcomes.report_data import ESTIMATE_COLUMNS, load_results, spec_as_toml

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture()
def results(tmp_path) -> Path:
    target = tmp_path / "results"
    shutil.copytree(FIXTURES / "results_small", target)
    return target


def _edit(folder: Path, change) -> None:
    path = folder / "results.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_load_fixture():
    d = load_results(FIXTURES / "results_small")
    assert d.study == "ipm-early-referral-lbp"
    assert (d.cohort.n, d.cohort.n_early, d.cohort.n_delayed, d.cohort.n_rtw_population) == (3560, 1365, 2195, 2180)
    assert d.min_cell_size == 11 and d.grace_period_days == 42
    assert d.horizons == [90, 180, 365] and d.primary_horizon == 180
    assert d.mcid["promis_pf"] == 5.0
    assert [s.step for s in d.attrition["cohort"]][0] == "Persons in the extract"
    assert [s.remaining for s in d.attrition["cohort"]] == [5000, 4410, 4101, 3654, 3648, 3560]
    assert list(d.estimates.columns) == ESTIMATE_COLUMNS
    e = d.estimate("rtw", "ccw", "risk_difference", 180)
    assert (e.estimate, e.ci_low, e.ci_high, e.n, e.arm) == (0.09422, 0.05148, 0.13697, 2180, None)
    early = d.estimate("rtw", "ccw", "cumulative_incidence", 180, "early")
    assert early.arm == "early" and early.estimate == 0.74523
    hr = d.estimate("rtw", "ccw", "hazard_ratio")
    assert hr.horizon_days is None and hr.estimate == 1.33
    assert d.estimate("rtw", "ccw", "risk_difference", 999) is None
    assert {"rtw_curves", "table1", "smd", "subgroups", "overlap", "weights"} <= set(d.tables)
    assert d.table("nonexistent") is None
    assert [c.name for c in d.checks] == ["balance", "equipoise"] and all(c.passed for c in d.checks)
    assert d.spec_get("exposure", "grace_period_days") == 42
    assert d.spec_get("exposure", "nope", default="x") == "x"
    assert not d.empty


def test_missing_results_json_names_the_folder_and_the_fix(tmp_path):
    with pytest.raises(IpmError, match=r"no results.json here; give --results the folder written by `ipm-outcomes analyze"):
        load_results(tmp_path)


def test_invalid_json_names_the_line(results):
    (results / "results.json").write_text('{"study": "x",\n  "cohort": }')
    with pytest.raises(IpmError, match=r"results.json: not valid JSON \(line 2"):
        load_results(results)


def test_missing_key(results):
    _edit(results, lambda d: d.pop("estimates"))
    with pytest.raises(IpmError, match=r"missing key 'estimates'"):
        load_results(results)


def test_listed_table_file_missing(results):
    (results / "table1.parquet").unlink()
    with pytest.raises(IpmError, match=r"table1.parquet: table 'table1' is listed in results.json but its file is missing"):
        load_results(results)


def test_unlisted_absent_table_is_simply_unavailable(results):
    (results / "table1.parquet").unlink()
    _edit(results, lambda d: d["tables"].pop("table1"))
    assert load_results(results).table("table1") is None


def test_table_without_required_column(results):
    import pandas as pd

    df = pd.read_parquet(results / "rtw_curves.parquet").drop(columns=["n_at_risk"])
    df.to_parquet(results / "rtw_curves.parquet")
    with pytest.raises(IpmError, match=r"table 'rtw_curves' lacks column\(s\) n_at_risk"):
        load_results(results)


def test_min_cell_size_and_spec_from_results(results):
    def change(d):
        d["min_cell_size"] = 20
        d["spec"]["exposure"]["grace_period_days"] = 28

    _edit(results, change)
    d = load_results(results)
    assert d.min_cell_size == 20 and d.grace_period_days == 28


def test_spec_may_be_a_path(results, tmp_path):
    spec_file = tmp_path / "study.toml"
    spec_file.write_text('[study]\nname = "s"\nseed = 3\n[exposure]\ngrace_period_days = 90\n[report]\nmin_cell_size = 5\n')
    def change(d):
        d["spec"] = str(spec_file)
        d.pop("min_cell_size", None)
        d.pop("grace_period_days", None)

    _edit(results, change)
    d = load_results(results)
    assert (d.grace_period_days, d.min_cell_size) == (90, 5)
    assert d.spec["study"]["seed"] == 3


def test_attrition_as_mapping_and_float_counts(results):
    def change(d):
        d["attrition"] = {"cohort": [{"step": "all", "remaining": 10.0, "excluded": None},
                                     {"step": "adults", "remaining": 8.0, "excluded": 2.0}]}

    _edit(results, change)
    steps = load_results(results).attrition["cohort"]
    assert [(s.step, s.remaining, s.excluded) for s in steps] == [("all", 10, None), ("adults", 8, 2)]


def test_spec_as_toml_round_trips():
    import tomllib

    spec = load_results(FIXTURES / "results_small").spec
    assert tomllib.loads(spec_as_toml(spec)) == spec
