"""Reading an analysis results directory into the report's view (ipm_outcomes.report_data)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from ipm_outcomes.errors import IpmError
from ipm_outcomes.report_data import ESTIMATE_COLUMNS, TABLES, load_results, spec_as_toml

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
    e = d.estimate("primary", "rtw", "risk_difference", 180)
    assert (e.estimate, e.ci_low, e.ci_high, e.n, e.arm) == (0.09422, 0.05148, 0.13697, 2180, None)
    early = d.estimate("primary", "rtw", "cumulative_incidence", 180, "early")
    assert early.arm == "early" and early.estimate == 0.74523
    hr = d.estimate("primary", "rtw", "hazard_ratio")
    assert hr.horizon_days is None and hr.estimate == 1.33
    assert d.estimate("primary", "rtw", "risk_difference", 999) is None
    assert d.estimate("landmark_iptw", "rtw", "risk_difference", 180).estimate != e.estimate
    assert d.primary_analysis.id == "primary" and [a.id for a in d.analyses("rtw", ("secondary",))] == ["landmark_iptw", "tv_cox"]
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


# -- the results data model: validated when read (and, with the same code, when written) -------------


def test_delay_categories_carry_their_first_and_last_day():
    cats = load_results(FIXTURES / "results_small").table("delay_categories")
    rows = [(r["delay_category"], r["first_day"], r["last_day"]) for r in cats.to_dict("records")]
    assert [(c, None if pd.isna(f) else f, None if pd.isna(la) else la) for c, f, la in rows] == [
        ("0-14", 0, 14), ("15-42", 15, 42), ("43-90", 43, 90), ("91-180", 91, 180), (">180", 181, None), ("never", None, None),
    ]


def test_results_of_another_schema_version_are_refused_in_one_line(results):
    _edit(results, lambda d: d.update(schema_version=2))
    with pytest.raises(IpmError, match=r"results schema 2; this version reads schema 3 or 4: re-run `ipm-outcomes analyze") as exc:
        load_results(results)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d["estimates"][5].update(horizon_days="day 90"), r"estimates column 'horizon_days' row 5: 'day 90' is not"),
        (lambda d: d["estimates"].append(dict(d["estimates"][0])), r"estimates row \d+: a second row with the key"),
        (lambda d: d["estimates"][0].update(analysis="grace_7"), r"estimates of analysis 'grace_7', which the plan does not list"),
        (lambda d: d["estimates"][0].pop("analysis"), r"estimates column 'analysis' row 0: no value \(required\)"),
        (lambda d: d["plan"].append(dict(d["plan"][1])), r"the plan lists an analysis id twice"),
        (lambda d: d["tables"].update(extra={"file": "extra.parquet"}), r"table 'extra' is not part of results schema 4"),
        (lambda d: d.update(primary_horizon_days="180"), r"'primary_horizon_days' is not a int"),
    ],
)
def test_a_results_file_that_breaks_the_data_model_is_refused_naming_where(results, change, message):
    _edit(results, change)
    with pytest.raises(IpmError, match=message):
        load_results(results)


def test_a_table_with_a_wrong_type_or_an_undeclared_column_is_refused(results):
    df = pd.read_parquet(results / "delay_categories.parquet")
    df.assign(n=df["n"].astype(str)).to_parquet(results / "delay_categories.parquet")
    with pytest.raises(IpmError, match=r"delay_categories.parquet: table 'delay_categories' column 'n' row 0: '\d+' is not int"):
        load_results(results)
    df.assign(note="x").to_parquet(results / "delay_categories.parquet")
    with pytest.raises(IpmError, match=r"has column\(s\) note that results schema 4 does not declare"):
        load_results(results)


def test_every_table_declares_grain_key_and_person_counts():
    for name, table in TABLES.items():
        assert table.grain.startswith("one row per"), name
        assert set(table.key) <= set(table.column_names), name
        assert all(c.type in ("str", "int", "float", "bool") for c in table.columns), name
        assert all(table.columns[table.column_names.index(c)].type == "int" for c in table.person_counts), name
    assert TABLES["estimates"].key == ("analysis", "outcome", "measure", "arm", "horizon_days")
    assert TABLES["subgroups"].person_counts == ("n", "n_early", "n_delayed")


def test_a_table_the_model_does_not_declare_cannot_be_written():
    from ipm_outcomes.report_data import conform_table

    with pytest.raises(IpmError, match=r"out/rmst.parquet: table 'rmst' is not part of results schema 4; declare it"):
        conform_table("rmst", pd.DataFrame({"x": [1]}), "out/rmst.parquet")
    frame = pd.DataFrame({"n": [3, 12], "day": [1, 2]})
    assert list(conform_table("referral_timing", frame, "x").columns) == ["day", "n"]  # the declared order
