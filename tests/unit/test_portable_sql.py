"""The portability lint: every SQL file parses, translates to Spark in sqlglot's strict mode, and breaks
none of the project's rules; each rule and rewrite is shown to catch what it is for."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from ipm_outcomes import db, portable_sql
from ipm_outcomes.cli import app
from ipm_outcomes.errors import IpmError

COHORT_FILES = [(layer, name, sql) for layer in db.SQL_LAYERS for name, sql in db.sql_files(layer)]


@pytest.mark.parametrize(("layer", "name", "sql"), COHORT_FILES, ids=lambda v: v if isinstance(v, str) and "\n" not in v else "")
def test_every_cohort_sql_file_is_portable(layer, name, sql):
    assert portable_sql.lint(sql) == [], f"sql/{layer}/{name}.sql"
    spark = portable_sql.translate(sql, "spark", name=f"sql/{layer}/{name}.sql")
    assert "$" not in spark.replace("$$", "")  # every parameter became a Spark marker
    assert "materialized" not in spark.lower()


def test_every_build_order_table_has_its_file_and_every_file_is_built():
    assert {(layer, name) for layer, name, _ in COHORT_FILES} == {
        (layer, table) for layer, tables in portable_sql.build_order(db.SQL_LAYERS).items() for table in tables
    }


def test_omop_sql_files_parse_and_translate():
    for name, sql in db.sql_files("omop"):
        portable_sql.translate(sql, "spark", name=f"sql/omop/{name}.sql")


@pytest.mark.parametrize(
    ("sql", "rule"),
    [
        ("select greatest(a, b) as x from t", "nullable_greatest_least"),
        ("select least(a, coalesce(b, c)) as x from t", "nullable_greatest_least"),
        ("select * from t where code = '{code}'", "string_interpolation"),
        ("select * from raw.medical_claim", "select_star_from_raw"),
    ],
)
def test_each_rule_catches_its_construct(sql, rule):
    assert [found for found, _ in portable_sql.lint(sql)] == [rule]


@pytest.mark.parametrize(
    "sql",
    [
        "select greatest(coalesce(a, 0), 1) as x from t",
        "select least(coalesce(a, 0) + 1, $limit) - greatest(coalesce(b, 0), -1) as x from t",
        "select least(a, b) as x from t -- not null: both are key columns",
        "select regexp_matches(code, '[0-9]{5}') as x from t",
        "select * from staging.person",
    ],
)
def test_what_the_rules_allow(sql):
    assert portable_sql.lint(sql) == []


def test_the_materialized_hint_is_dropped_for_spark_and_kept_for_duckdb():
    sql = "with s as materialized (select 1 as a) select a from s"
    assert portable_sql.translate(sql, "duckdb") == sql
    assert "MATERIALIZED" not in portable_sql.translate(sql, "spark")
    assert "MATERIALIZED" in portable_sql.translate(sql, "duckdb", tables={"raw": "claims"}).upper()


def test_parameters_stay_bound_and_tables_are_renamed():
    sql = "with c as (select person_id from raw.eligibility) select * from c join staging.person p using (person_id) where p.age > $age_min"
    spark = portable_sql.translate(sql, "spark", tables={"raw": "claims_2026", "staging": "ipm_staging"})
    assert ":age_min" in spark and "claims_2026.eligibility" in spark and "ipm_staging.person" in spark
    assert "FROM c" in spark  # a CTE's name is never taken for a table


def test_sql_that_is_not_one_select_is_refused():
    with pytest.raises(IpmError, match=r"x.sql: holds 2 statements"):
        portable_sql.translate("select 1; select 2", "spark", name="x.sql")
    with pytest.raises(IpmError, match="unknown engine 'oracle'"):
        portable_sql.translate("select 1", "oracle")


def test_sql_command_prints_the_translation_for_review(tmp_path):
    printed = CliRunner().invoke(app, ["sql", "--engine", "spark", "--print", "--source-schema", "claims"])
    assert printed.exit_code == 0, printed.output
    assert "-- staging.extract_period" in printed.output and "FROM claims.medical_claim" in printed.output
    assert ":data_end_date" in printed.output
    written = CliRunner().invoke(app, ["sql", "--engine", "duckdb", "--out", str(tmp_path)])
    assert written.exit_code == 0, written.output
    assert (tmp_path / "marts" / "cohort.sql").read_text().rstrip() == dict(db.sql_files("marts"))["cohort"].rstrip()
    neither = CliRunner().invoke(app, ["sql", "--engine", "spark"])
    assert neither.exit_code == 1 and "give exactly one of --print or --out DIR" in neither.output


def test_cohort_refuses_spark_options_on_duckdb(tmp_path):
    result = CliRunner().invoke(app, ["cohort", "--db", str(tmp_path / "x.duckdb"), "--source-schema", "claims"])
    assert result.exit_code == 1 and "--source-schema applies only to --engine spark" in result.output


def test_duckdb_functions_that_spark_lacks_are_written_as_spark_equivalents():
    sql = (
        "select regexp_full_match(code, '[0-9]{5}') as a, regexp_full_match(code, $shape) as b, strlen(t) as c,"
        " isinf(x) as d, isfinite(x) as e, x <> trunc(x) as f from t"
    )
    spark = " ".join(portable_sql.translate(sql, "spark").split())
    assert "code RLIKE '^(?:[0-9]{5})$' AS a" in spark
    assert "code RLIKE CONCAT('^(?:', :shape, ')$') AS b" in spark
    assert "OCTET_LENGTH(t) AS c" in spark
    assert "ABS(x) = CAST('Infinity' AS DOUBLE) AS d" in spark
    assert "( NOT ( ISNAN(x) OR ABS(x) = CAST('Infinity' AS DOUBLE) ) ) AS e" in spark
    assert "x <> TRY_CAST(x AS BIGINT) AS f" in spark
    assert portable_sql.translate(sql, "duckdb") == sql
