"""The contract's rules on Spark report what ingest reports: the same problems, file, column, rule and row.

Each case breaks the hand-made good extract (tests/fixtures/extract_good) as a test of
tests/unit/test_ingest_rules.py does, in the rules that scale with claim lines (null, types,
non-finite numbers, enumerations, code shapes, dates, ranges, identifier values, duplicate keys,
orphans, empty tables). Ingest's validation must find problems in the CSV (there it proves that the load
is refused or warns); the extract is then written as
Parquet, text as in the CSV, which is how a Spark site would hold a raw delivery, and
:func:`validate_on_spark` must give exactly the problems :func:`validate_extract` gives for that Parquet
(every field: severity, file, table, column, rule, message, rows, examples, count), and the same table,
column, rule and rows as for the CSV.

Marked ``spark`` (pyspark and Java 17; ``make test-spark``).
"""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import replace
from datetime import date
from pathlib import Path

import duckdb
import pytest

from ipm_outcomes.ingest import load_extract, validate_extract
from ipm_outcomes.validation import Problem

pytest.importorskip("pyspark")

from ipm_outcomes.spark_engine import SparkSource  # noqa: E402
from ipm_outcomes.spark_validation import validate_on_spark  # noqa: E402

pytestmark = pytest.mark.spark

TODAY = date(2025, 6, 30)
GOOD = Path(__file__).parents[1] / "fixtures" / "extract_good"


def _table(extract: Path, table: str) -> tuple[list[str], list[list[str]]]:
    with open(extract / f"{table}.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


def _write(extract: Path, table: str, header: list[str], rows: list[list[str]]) -> None:
    with open(extract / f"{table}.csv", "w", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows([header, *rows])


def cells(*edits: tuple[str, int, str, str]):
    """Set cells: (table, data row from 1, column, value)."""

    def edit(extract: Path) -> None:
        for table, row, column, value in edits:
            header, rows = _table(extract, table)
            rows[row - 1][header.index(column)] = value
            _write(extract, table, header, rows)

    return edit


def rows_of(table: str, change):
    """Replace a table's rows by ``change(rows)``."""

    def edit(extract: Path) -> None:
        header, rows = _table(extract, table)
        _write(extract, table, header, change(rows))

    return edit


def column(table: str, name: str, values: list[str]):
    def edit(extract: Path) -> None:
        header, rows = _table(extract, table)
        _write(extract, table, [*header, name], [[*r, v] for r, v in zip(rows, values, strict=True)])

    return edit


def drop(table: str, name: str):
    def edit(extract: Path) -> None:
        header, rows = _table(extract, table)
        i = header.index(name)
        _write(extract, table, header[:i] + header[i + 1 :], [r[:i] + r[i + 1 :] for r in rows])

    return edit


#: The bad inputs of tests/unit/test_ingest_rules.py in scope, by the test they come from.
CASES = {
    "null_in_required_column": [cells(("eligibility", 2, "person_id", "   "))],
    "first_diagnosis_or_procedure": [
        cells(("medical_claim", 5, "diagnosis_code_1", ""), ("medical_claim", 5, "hcpcs_code", ""))
    ],
    "types": [
        cells(
            ("eligibility", 4, "birth_year", "1990.0"),
            ("medical_claim", 3, "claim_line_number", "1.5"),
            ("medical_claim", 2, "claim_start_date", "2021/03/02"),
            ("medical_claim", 3, "claim_end_date", "2021-4-10"),
            ("medical_claim", 2, "allowed_amount", "1,200.00"),
            ("pharmacy_claim", 4, "claim_line_number", "99999999999"),
            ("pharmacy_claim", 1, "dispensing_date", "03/03/2021"),
            ("pharmacy_claim", 2, "days_supply", "five"),
            ("ndc_reference", 3, "is_opioid", "yes"),
            ("ndc_reference", 4, "mme_conversion_factor", "0x10"),
            ("ehr_pro", 1, "assessment_date", "2021-02-30"),
            ("ehr_pro", 2, "score", "nan"),
        )
    ],
    "numbers_must_be_finite": [
        cells(
            ("medical_claim", 2, "allowed_amount", "1e400"),
            ("pharmacy_claim", 3, "quantity", "-1E999"),
            ("ehr_pro", 4, "score", "1e309"),
            ("ndc_reference", 1, "strength_per_unit", "1e308"),
        )
    ],
    "allowed_values_after_lower_casing": [
        cells(
            ("eligibility", 1, "gender", "Female"),
            ("eligibility", 3, "gender", "M"),
            ("eligibility", 4, "payer_type", "self-pay"),
            ("ehr_work_status", 6, "work_status", "gone fishing"),
        )
    ],
    "code_shapes": [
        cells(
            ("medical_claim", 3, "place_of_service_code", "2"),
            ("medical_claim", 3, "rendering_npi", "132604521"),
            ("medical_claim", 3, "rendering_taxonomy_code", "208VP0014"),
            ("medical_claim", 2, "hcpcs_code", "7214"),
            ("medical_claim", 1, "diagnosis_code_1", "545.0"),
            ("medical_claim", 4, "diagnosis_code_2", "M5"),
            ("pharmacy_claim", 2, "ndc_code", "1234-567-89"),
            ("ndc_reference", 2, "ndc_code", "0406051201"),
            ("ehr_encounter", 1, "provider_taxonomy_code", "2O7Q00000X"),
            ("ehr_encounter", 2, "primary_diagnosis_code", "M54-5"),
            ("medical_claim", 5, "hcpcs_code", "j1030"),
            ("ndc_reference", 5, "ndc_code", "68180-0513-01"),
        )
    ],
    "future_dates": [
        cells(
            ("ehr_pro", 1, "assessment_date", "2025-07-01"),
            ("eligibility", 3, "death_date", "2030-01-01"),
            ("ehr_pro", 2, "assessment_date", "2025-06-30"),
        )
    ],
    "dates_before_1900": [
        cells(
            ("medical_claim", 3, "claim_start_date", "1899-12-31"),
            ("ehr_work_status", 2, "status_date", "0001-01-01"),
            ("ehr_pro", 1, "assessment_date", "1900-01-01"),
        )
    ],
    "date_order": [
        cells(
            ("eligibility", 3, "enrollment_end_date", "2021-07-31"),
            ("medical_claim", 4, "claim_end_date", "2021-02-14"),
            ("medical_claim", 1, "claim_end_date", "2021-03-02"),
        )
    ],
    "birth_year_range": [cells(("eligibility", 1, "birth_year", "1898"), ("eligibility", 4, "birth_year", "2026"))],
    "pro_score_ranges": [
        cells(
            ("ehr_pro", 3, "score", "120"),
            ("ehr_pro", 6, "score", "-0.7"),
            ("ehr_pro", 8, "score", "999"),
            ("ehr_pro", 7, "instrument", "PHQ9"),
        )
    ],
    "examples_are_the_first_five_and_count_is_all": [
        rows_of("ehr_pro", lambda rows: rows + [["P001", f"2021-07-{d:02d}", "nrs_pain", str(10 + d)] for d in range(1, 8)])
    ],
    "duplicate_keys": [
        cells(
            ("eligibility", 3, "enrollment_start_date", "2021-01-01"),
            ("eligibility", 3, "enrollment_end_date", "2021-12-31"),
            ("medical_claim", 2, "claim_line_number", "01"),
            ("pharmacy_claim", 3, "claim_id", " R002 "),
            ("ndc_reference", 4, "ndc_code", "00591-0385-01"),
            ("ehr_encounter", 4, "encounter_id", "E002"),
        )
    ],
    "duplicates_far_apart": [rows_of("ehr_encounter", lambda rows: rows + [list(r) for r in rows])],
    "orphan_persons": [
        cells(
            ("ehr_pro", 2, "person_id", "P999"),
            ("ehr_pro", 4, "person_id", "P999"),
            ("pharmacy_claim", 5, "person_id", "P777"),
        )
    ],
    "identifier_values": [
        column("ehr_encounter", "comment", ["", "call 555-123-4567 asap", "fine", "jane.doe@example.org"]),
        cells(("ehr_encounter", 3, "encounter_id", "123-45-6789")),
    ],
    "identifier_column_and_extra_column": [column("eligibility", "ssn", ["", "", "", ""]), column("ehr_pro", "note", [""] * 8)],
    "missing_column": [drop("medical_claim", "claim_start_date")],
    "required_table_without_rows": [rows_of("eligibility", lambda rows: [])],
    "optional_table_without_rows": [rows_of("ehr_pro", lambda rows: [])],
}


def as_text_parquet(extract: Path, folder: Path) -> Path:
    """Every CSV of the extract as a Parquet file of text columns, rows in file order."""
    folder.mkdir()
    con = duckdb.connect()
    for path in sorted(extract.glob("*.csv")):
        con.execute(
            f"copy (select * from read_csv('{path}', header=true, all_varchar=true)) to '{folder / path.stem}.parquet'"
        )
    con.close()
    return folder


@pytest.fixture(scope="module", autouse=True)
def one_partition(spark):
    """Hand-made tables of a few rows: one shuffle partition instead of eight makes each query several times faster."""
    before = spark.conf.get("spark.sql.shuffle.partitions")
    spark.conf.set("spark.sql.shuffle.partitions", "1")
    yield
    spark.conf.set("spark.sql.shuffle.partitions", before)


@pytest.fixture()
def extract(tmp_path: Path) -> Path:
    target = tmp_path / "extract"
    shutil.copytree(GOOD, target)
    return target


def _where(problems: list[Problem]) -> list[tuple]:
    return [(p.severity, p.table, p.column, p.rule, p.rows, p.count) for p in problems]


@pytest.mark.parametrize("case", list(CASES))
def test_spark_reports_what_ingest_reports(spark, extract, tmp_path, case):
    for edit in CASES[case]:
        edit(extract)
    from_csv = validate_extract(extract, today=TODAY)  # what ingest refuses or warns about (test_ingest_rules.py)
    assert from_csv, "the case must break a rule"
    parquet = as_text_parquet(extract, tmp_path / "parquet")
    from_parquet = validate_extract(parquet, today=TODAY)
    on_spark = validate_on_spark(spark, SparkSource(path=parquet), today=TODAY)
    assert on_spark == from_parquet
    assert _where(on_spark) == _where(from_csv)
    assert [p.file.replace(".parquet", ".csv") for p in on_spark] == [p.file for p in from_csv]


def test_a_clean_extract_has_no_problems_on_spark(spark, extract, tmp_path):
    assert validate_on_spark(spark, SparkSource(path=as_text_parquet(extract, tmp_path / "parquet")), today=TODAY) == []


def test_a_missing_required_table(spark, extract, tmp_path):
    parquet = as_text_parquet(extract, tmp_path / "parquet")
    (parquet / "eligibility.parquet").unlink()
    assert [p for p in validate_on_spark(spark, SparkSource(path=parquet), today=TODAY) if p.is_error] == [
        Problem(
            "error",
            "eligibility.parquet",
            "eligibility",
            None,
            "missing_table",
            "required table eligibility is missing (give eligibility.parquet or a folder of parquet parts)",
        )
    ]


def test_duplicates_across_parquet_parts_name_both_files(spark, extract, tmp_path):
    parquet = as_text_parquet(extract, tmp_path / "parquet")
    part = parquet / "ehr_encounter"
    part.mkdir()
    source = f"read_parquet('{parquet / 'ehr_encounter.parquet'}')"
    duckdb.execute(f"copy (select * from {source}) to '{part / 'part-0.parquet'}'")
    duckdb.execute(f"copy (select * from {source} where encounter_id = 'E003') to '{part / 'part-1.parquet'}'")
    (parquet / "ehr_encounter.parquet").unlink()
    expected = [
        Problem(
            "error",
            "ehr_encounter/part-1.parquet",
            "ehr_encounter",
            "encounter_id",
            "duplicate_key",
            "1 row repeats the key (encounter_id) of an earlier row; the key must be unique",
            (1,),
            ("E003 (first at ehr_encounter/part-0.parquet row 3)",),
            1,
        )
    ]
    assert validate_extract(parquet, today=TODAY) == expected
    assert validate_on_spark(spark, SparkSource(path=parquet), today=TODAY) == expected


def _typed(extract: Path, folder: Path) -> Path:
    """The extract in its loaded form (typed dates and numbers), as a site's tables on Spark hold it."""
    db = folder / "loaded.duckdb"
    load_extract(extract, db, today=TODAY)
    out = folder / "typed"
    out.mkdir()
    con = duckdb.connect(str(db), read_only=True)
    for (table,) in con.execute(
        "select table_name from information_schema.tables where table_schema = 'raw' and table_type = 'BASE TABLE'"
    ).fetchall():
        con.execute(f"copy (select * from raw.{table}) to '{out / table}.parquet'")
    con.close()
    return out


def test_typed_tables_with_non_finite_numbers_fractions_and_repeated_keys(spark, extract, tmp_path):
    """Typed Parquet (a double NaN or infinity, a whole-number column stored as double) as a Spark site holds it."""
    typed = _typed(extract, tmp_path)
    con = duckdb.connect()
    con.execute(
        f"""copy (select * replace (
                case when row_number() over () = 2 then 'nan'::double
                     when row_number() over () = 3 then '-inf'::double else score end as score)
            from read_parquet('{typed / 'ehr_pro.parquet'}')) to '{tmp_path / 'ehr_pro.parquet'}'"""
    )
    con.execute(
        f"""copy (select * replace (
                (claim_line_number + case when row_number() over () = 4 then 0.5 else 0 end)::double as claim_line_number,
                case when row_number() over () = 1 then 1e300 * 1e10 else allowed_amount end as allowed_amount,
                case when row_number() over () = 5 then claim_start_date - 1 else claim_end_date end as claim_end_date)
            from read_parquet('{typed / 'medical_claim.parquet'}')) to '{tmp_path / 'medical_claim.parquet'}'"""
    )
    con.execute(
        f"""copy (select * from read_parquet('{typed / 'ehr_encounter.parquet'}')
            union all select * from read_parquet('{typed / 'ehr_encounter.parquet'}') where encounter_id = 'E002')
            to '{tmp_path / 'ehr_encounter.parquet'}'"""
    )
    con.close()
    for name in ("ehr_pro", "medical_claim", "ehr_encounter"):
        shutil.move(tmp_path / f"{name}.parquet", typed / f"{name}.parquet")
    from_duckdb = validate_extract(typed, today=TODAY)
    on_spark = validate_on_spark(spark, SparkSource(path=typed), today=TODAY)
    assert [(p.file, p.column, p.rule, p.rows) for p in on_spark] == [
        ("medical_claim.parquet", "claim_line_number", "type", (4,)),
        ("medical_claim.parquet", "allowed_amount", "non_finite", (1,)),
        ("medical_claim.parquet", "claim_end_date", "date_order", (5,)),
        ("ehr_encounter.parquet", "encounter_id", "duplicate_key", (5,)),
        ("ehr_pro.parquet", "score", "non_finite", (2, 3)),
    ]
    # the same problems; only a non-finite double is spelt as each engine writes it (inf / Infinity)
    spelt = {"inf": "Infinity", "-inf": "-Infinity", "nan": "NaN"}
    assert on_spark == [
        p if p.rule != "non_finite" else replace(p, examples=tuple(spelt[e] for e in p.examples))
        for p in from_duckdb
    ]


def test_a_catalog_schema_names_its_tables_without_rows(spark, extract, tmp_path):
    """Tables in a Spark catalog schema: the same problems, located by table (a table has no row order)."""
    cells(("eligibility", 3, "gender", "M"), ("ehr_pro", 2, "person_id", "P999"))(extract)
    parquet = as_text_parquet(extract, tmp_path / "parquet")
    spark.sql("create database if not exists validation_source")
    for path in parquet.glob("*.parquet"):
        spark.sql(f"drop table if exists validation_source.{path.stem}")
        spark.catalog.createTable(f"validation_source.{path.stem}", path=str(path), source="parquet")
    on_spark = validate_on_spark(spark, SparkSource(schema="validation_source"), today=TODAY)
    expected = validate_extract(parquet, today=TODAY)
    assert [(p.file, p.rows) for p in on_spark] == [
        ("validation_source.eligibility", ()),
        ("validation_source.ehr_pro", ()),
    ]
    assert [(p.severity, p.table, p.column, p.rule, p.message, p.examples, p.count) for p in on_spark] == [
        (p.severity, p.table, p.column, p.rule, p.message, p.examples, p.count) for p in expected
    ]


def test_validate_command_on_spark(spark, extract, tmp_path):
    from typer.testing import CliRunner

    from ipm_outcomes.cli import app

    cells(("eligibility", 3, "gender", "M"))(extract)
    parquet = as_text_parquet(extract, tmp_path / "parquet")
    report = tmp_path / "problems.json"
    result = CliRunner().invoke(
        app,
        ["validate", "--engine", "spark", "--source-path", str(parquet), "--reference-date", "2025-06-30", "--report", str(report)],
    )
    assert result.exit_code == 1
    assert (
        "first: eligibility.parquet, column gender, row 3: 1 value is not one of male, female, unknown (e.g. 'm') "
        "(rule allowed_values)" in " ".join(result.output.split())
    )
    assert [(p["file"], p["rule"], p["rows"]) for p in json.loads(report.read_text())["problems"]] == [
        ("eligibility.parquet", "allowed_values", [3])
    ]
