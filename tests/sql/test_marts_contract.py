"""The marts as a contract: keys, columns, attrition, export, empty cohorts, transactions, SQL hygiene."""

from __future__ import annotations

import json
import re
from importlib import resources

import duckdb
import pandas as pd
import pytest
from miniature import Extract, read_marts, spec_with

from ipm_outcomes import cohort, contract, db
from ipm_outcomes.marts import COHORT_COLUMNS
from ipm_outcomes.errors import IpmError
from ipm_outcomes.portable_sql import build_order

LBP = "M54.50"


def _extract() -> Extract:
    """One person stopped at each rule, two eligible (one off work at index), with every kind of event."""
    ex = Extract()
    ex.drug("00406055201", "oxycodone", 5.0, True, 1.5)
    ex.person("a0_no_lbp").claim("a0_no_lbp", 0, "J06.9")
    ex.person("a1_short", spans=((-100, 500),)).claim("a1_short", 0, LBP)
    ex.person("a2_old", birth_year=1950).claim("a2_old", 0, LBP)
    ex.person("a3_red_flag").claim("a3_red_flag", 0, LBP, "G83.4")
    ex.person("a4_prior_ipm").claim("a4_prior_ipm", -30, "M79.1", hcpcs="20553").claim("a4_prior_ipm", 0, LBP)
    ex.person("a5_off_work").claim("a5_off_work", 0, LBP, "M54.16").claim("a5_off_work", 12, LBP, hcpcs="64483", allowed=240.0)
    ex.work("a5_off_work", 0, "off_work").work("a5_off_work", 61, "working")
    ex.pro("a5_off_work", 0, "odi", 44.0).pro("a5_off_work", 92, "odi", 30.0).fill(
        "a5_off_work", -20, "00406055201", 30, 10
    )
    # two new episodes; the first is eligible, so index stays on day 0
    ex.person("a6_working", spans=((-500, 900),)).claim("a6_working", 0, LBP).claim("a6_working", 500, LBP)
    ex.work("a6_working", 0, "working")
    return ex


@pytest.fixture(scope="module")
def marts(tmp_path_factory):
    return _extract().build(tmp_path_factory.mktemp("contract"))


def test_attrition_table_exactly(marts):
    got = [
        tuple(r)
        for r in marts.attrition[["population", "step_order", "rule", "remaining", "excluded"]].itertuples(index=False)
    ]
    assert got == [
        ("cohort", 0, "enrolled_person", 7, 0),
        ("cohort", 1, "lbp_claim", 6, 1),
        ("cohort", 2, "new_episode", 6, 0),
        ("cohort", 3, "enrollment", 5, 1),
        ("cohort", 4, "age", 4, 1),
        ("cohort", 5, "red_flags", 3, 1),
        ("cohort", 6, "prior_ipm", 2, 1),
        ("rtw", 0, "cohort", 2, 0),
        ("rtw", 1, "off_work_at_index", 1, 1),
    ]
    steps = dict(zip(marts.attrition.rule, marts.attrition.step, strict=True))
    assert steps["age"] == "Aged 18 to 64 at index"
    assert (
        steps["off_work_at_index"]
        == "Off work at index: off_work, disability_short_term recorded from day -7 to day 14"
    )


def test_summary_attrition_matches_the_mart(marts):
    from_summary = [(r["population"], r["step_order"], r["remaining"], r["excluded"]) for r in marts.summary.attrition]
    from_mart = [
        tuple(r) for r in marts.attrition[["population", "step_order", "remaining", "excluded"]].itertuples(index=False)
    ]
    assert from_summary == from_mart


@pytest.mark.parametrize("mart, key", sorted(cohort.MART_KEYS.items()))
def test_every_mart_key_is_unique_and_not_null(marts, mart, key):
    con = db.connect(marts.db_path, read_only=True)
    try:
        columns = ", ".join(key)
        nulls = con.execute(
            f"select count(*) from marts.{mart} where " + " or ".join(f"{c} is null" for c in key)
        ).fetchone()[0]
        duplicates = con.execute(
            f"select count(*) from (select {columns} from marts.{mart} group by {columns} having count(*) > 1)"
        ).fetchone()[0]
        rows = con.execute(f"select count(*) from marts.{mart}").fetchone()[0]
    finally:
        con.close()
    assert (nulls, duplicates) == (0, 0)
    assert rows > 0  # the check must see rows to mean anything


def test_cohort_columns_and_types(marts):
    assert tuple(marts.cohort.columns) == COHORT_COLUMNS
    con = db.connect(marts.db_path, read_only=True)
    try:
        types = dict(
            con.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = 'marts' and table_name = 'cohort'"
            ).fetchall()
        )
    finally:
        con.close()
    assert types["index_date"] == "DATE"
    assert types["referral_date"] == "DATE"
    assert types["in_rtw_population"] == "BOOLEAN"
    assert types["days_to_referral"] in ("BIGINT", "INTEGER")
    assert types["prior_year_allowed"] == "DOUBLE"


def test_outcome_mart_columns(marts):
    assert list(marts.rtw.columns)[:6] == [
        "person_id",
        "time_days",
        "event",
        "event_type",
        "referral_day",
        "censor_day",
    ]
    assert list(marts.qol.columns) == [
        "person_id",
        "instrument",
        "horizon_days",
        "baseline_day",
        "baseline_score",
        "followup_day",
        "followup_score",
    ]
    assert list(marts.attrition.columns) == ["population", "step_order", "rule", "step", "remaining", "excluded"]


def test_secondary_outcome_mart_columns(marts):
    """The contract the secondary-outcome analyses are built on (issue 16)."""
    event = ["person_id", "outcome", "in_population", "time_days", "event", "event_type", "censor_day", "censor_reason"]
    assert list(marts.mart("secondary_outcome").columns) == [*event, "opioid_naive"]
    assert list(marts.mart("negative_control_outcome").columns) == event
    assert list(marts.mart("cost_outcome").columns) == [
        "person_id",
        "outcome",
        "allowed_amount",
        "observed_day",
        "complete",
        "end_reason",
        "censor_day",
    ]
    assert list(marts.mart("outcome_availability").columns) == ["outcome", "kind", "available", "detail"]
    a5 = marts.mart("cost_outcome").query("person_id == 'a5_off_work'").set_index("outcome").allowed_amount
    # the extract's pharmacy fill has no allowed amount: total costs are unavailable, not medical-only
    assert a5.to_dict() == {"cost_lbp_365": 240.0}
    availability = marts.mart("outcome_availability").set_index("outcome")
    assert availability.loc["cost_total_365", "detail"] == "no pharmacy_claim line has an allowed_amount"


def test_eligible_rows(marts):
    a5 = marts.cohort_row("a5_off_work")
    assert (a5["radiculopathy"], a5["opioid_use"], a5["baseline_odi"], a5["days_to_referral"]) == (1, 1, 44.0, 12)
    assert a5["mean_daily_mme"] == pytest.approx(30 * 5 * 1.5 / 90)
    assert marts.rtw_row("a5_off_work")["time_days"] == 61
    assert marts.cohort_row("a6_working")["index_date"].isoformat() == "2022-06-15"
    assert marts.rtw_row("a6_working") is None


def test_export_writes_each_mart_to_parquet(marts, tmp_path):
    con = db.connect(marts.db_path)
    try:
        written = cohort.export_marts(con, tmp_path / "processed")
        for mart, key in cohort.MART_KEYS.items():
            order = ", ".join(key)
            want = con.execute(f"select * from marts.{mart} order by {order}").df()
            path = str(tmp_path / "processed" / f"{mart}.parquet")
            got = con.execute("select * from read_parquet(?)", [path]).df()
            pd.testing.assert_frame_equal(got, want)
            assert len(pd.read_parquet(path)) == len(want)
    finally:
        con.close()
    assert sorted(p.name for p in written) == sorted(f"{m}.parquet" for m in cohort.MART_KEYS)


def test_build_exports_when_asked_and_records_provenance(tmp_path):
    db_path = _extract().write(tmp_path / "x.duckdb")
    spec = spec_with()
    summary = cohort.build(spec, db_path, export_dir=tmp_path / "out", progress=True)
    assert [p.name for p in summary.exported] == [
        "cohort.parquet",
        "rtw_outcome.parquet",
        "qol_outcome.parquet",
        "attrition.parquet",
        "outcome_availability.parquet",
        "secondary_outcome.parquet",
        "negative_control_outcome.parquet",
        "cost_outcome.parquet",
        "cost_daily.parquet",
        "cohort_build.json",
    ]
    record = json.loads((tmp_path / "out" / "cohort_build.json").read_text())
    assert record["spec"]["exposure"] == spec.to_toml_dict()["exposure"]
    assert record["load"]["extract_path"] == "raw tables written without ingest"
    assert "wrote" in summary.describe()
    con = db.connect(db_path, read_only=True)
    try:
        study, sha = con.execute("select study, spec_sha256 from meta.cohort_build").fetchone()
        files = con.execute("select count(*), min(length(sha256)) from ref.valueset_file").fetchone()
    finally:
        con.close()
    assert (study, sha) == (spec.study.name, summary.spec_sha256)
    assert files == (29, 64)


def test_rebuilding_gives_identical_marts(marts, tmp_path):
    again = read_marts(marts.db_path, cohort.build(spec_with(), marts.db_path))
    for name in ("cohort", "rtw", "qol", "attrition"):
        pd.testing.assert_frame_equal(getattr(again, name), getattr(marts, name))


def test_empty_cohort_is_a_finding_not_a_crash(tmp_path):
    ex = Extract()
    ex.person("p").claim("p", 0, "J06.9")
    marts = ex.build(tmp_path)
    assert marts.cohort.empty and marts.rtw.empty and marts.qol.empty
    assert list(marts.attrition.remaining) == [1, 0, 0, 0, 0, 0, 0, 0, 0]
    assert marts.summary.cohort == 0
    assert "the cohort is empty" in marts.summary.describe()


def test_failed_build_leaves_the_previous_marts(tmp_path, monkeypatch):
    db_path = _extract().write(tmp_path / "x.duckdb")
    cohort.build(spec_with(), db_path)

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(cohort.lineage, "record_cohort_build", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        cohort.build(spec_with({"exposure.grace_period_days": 10, "exposure.delay_categories": [10, 40]}), db_path)
    con = db.connect(db_path, read_only=True)
    try:
        exposure = con.execute("select exposure from marts.cohort where person_id = 'a5_off_work'").fetchone()[0]
        bands = con.execute("select count(*) from ref.delay_category").fetchone()[0]
    finally:
        con.close()
    assert (exposure, bands) == ("early", 5)  # grace 42 still; referral on day 12


def test_missing_database_or_extract_is_a_clear_error(tmp_path):
    with pytest.raises(IpmError, match="no such database"):
        cohort.build(spec_with(), tmp_path / "absent.duckdb")
    duckdb.connect(str(tmp_path / "blank.duckdb")).close()
    with pytest.raises(IpmError, match=r"no loaded extract .*run `ipm-outcomes ingest"):
        cohort.build(spec_with(), tmp_path / "blank.duckdb")


# -- the SQL files themselves ---------------------------------------------------------------------


def _sql_files():
    for layer in db.SQL_LAYERS:
        for name, text in db.sql_files(layer):
            yield layer, name, text


def _code(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))


def test_every_sql_file_is_built_and_every_built_table_has_a_file():
    on_disk = {(layer, name) for layer, name, _ in _sql_files()}
    ordered = {(layer, name) for layer, names in build_order(db.SQL_LAYERS).items() for name in names}
    assert on_disk == ordered


@pytest.mark.parametrize(
    "layer, name, text", list(_sql_files()), ids=lambda v: v if isinstance(v, str) and len(v) < 40 else ""
)
def test_sql_file_states_its_grain_and_holds_one_select(layer, name, text):
    assert text.startswith("-- grain: one row"), f"{layer}/{name}.sql must start with a grain comment"
    code = _code(text)
    assert ";" not in code
    assert re.match(r"\s*(with|select)\b", code, re.IGNORECASE)
    # comments must not name parameters the code does not bind (DuckDB rejects unused parameters)
    assert db.sql_parameters(text) == db.sql_parameters(code)


def test_sql_parameters_all_come_from_the_spec():
    used = set().union(*(db.sql_parameters(text) for _, _, text in _sql_files()))
    provided = set(spec_with().sql_params()) | {"pharmacy_available"}
    assert used == provided


def test_sql_reads_only_earlier_tables():
    built: set[str] = {f"raw.{t.name}" for t in contract.TABLES} | {"raw.medical_claim_diagnosis"}
    built |= {
        f"ref.{name}"
        for name in (
            "valueset",
            "delay_category",
            "qol_instrument",
            "qol_horizon",
            "work_status_role",
            "charlson_weight",
            "attrition_step",
            "secondary_outcome",
            "outcome_valueset",
            "outcome_setting",
        )
    }
    for layer, names in build_order(db.SQL_LAYERS).items():
        for name in names:
            text = (resources.files("ipm_outcomes") / "sql" / layer / f"{name}.sql").read_text()
            refs = set(re.findall(r"\b(raw|ref|staging|intermediate|marts)\.([a-z_]+)", _code(text)))
            unknown = {f"{s}.{t}" for s, t in refs} - built
            assert not unknown, f"{layer}/{name}.sql reads {unknown} before they exist"
            built.add(f"{layer}.{name}")
