"""Loading an extract: typed normalised tables, file forms, provenance, all-or-nothing, locking, reports."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from rich.console import Console

from ipm_outcomes import __version__, ingest
from ipm_outcomes.contract import TABLES, TABLES_BY_NAME
from ipm_outcomes.errors import DatabaseInUseError, IpmError, ValidationFailed
from ipm_outcomes.ingest import LoadSummary, Problem, load_extract, problems_table, validate_extract

TODAY = dt.date(2025, 6, 30)
D = dt.date
RAW_TABLES = [t.name for t in TABLES] + ["medical_claim_diagnosis"]
GOOD_ROWS = {
    "eligibility": 4,
    "medical_claim": 5,
    "pharmacy_claim": 5,
    "ndc_reference": 5,
    "ehr_encounter": 4,
    "ehr_pro": 8,
    "ehr_work_status": 6,
    "medical_claim_diagnosis": 9,
}


def query(db: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def raw_state(state: dict) -> dict:
    return {name: value for name, value in state.items() if name.startswith("raw.")}


def test_good_extract_is_loaded_typed_and_normalised(good_extract, tmp_path):
    db = tmp_path / "study.duckdb"
    summary = load_extract(good_extract, db, today=TODAY)
    assert summary.rows == GOOD_ROWS
    assert summary.absent_tables == ()
    assert summary.warnings == []
    assert query(db, "select * from raw.medical_claim_diagnosis order by all") == [
        ("C001", 1, "P001", "professional", D(2021, 3, 2), 1, "M5450"),
        ("C001", 1, "P001", "professional", D(2021, 3, 2), 2, "M5116"),
        ("C001", 2, "P001", "professional", D(2021, 3, 2), 1, "M545"),
        ("C002", 1, "P001", "professional", D(2021, 4, 10), 1, "M5116"),
        ("C002", 1, "P001", "professional", D(2021, 4, 10), 2, "M5416"),
        ("C002", 1, "P001", "professional", D(2021, 4, 10), 3, "G8929"),
        ("C003", 1, "P002", "institutional", D(2021, 2, 15), 1, "S335XXA"),
        ("C003", 1, "P002", "institutional", D(2021, 2, 15), 2, "M5450"),
        ("C004", 1, "P003", "professional", D(2021, 5, 5), 1, "M5450"),
    ]
    assert query(db, "select * from raw.medical_claim where claim_id = 'C001' order by claim_line_number") == [
        (
            "C001",
            1,
            "P001",
            "professional",
            D(2021, 3, 2),
            D(2021, 3, 2),
            "11",
            "1234567893",
            "207Q00000X",
            "99213",
            None,
            120.5,
            96.4,
            "M5450",  # the diagnosis columns, normalised, as the file has them
            "M5116",
            None,
        ),
        (
            "C001",
            2,
            "P001",
            "professional",
            D(2021, 3, 2),
            D(2021, 3, 2),
            "11",
            "1234567893",
            "207Q00000X",
            "72148",
            "26",
            410.0,
            328.0,
            "M545",
            None,
            None,
        ),
    ]
    assert query(db, "select claim_id, ndc_code from raw.pharmacy_claim order by claim_id") == [
        ("R001", "00591038501"),  # 5-4-2 hyphenated
        ("R002", "00406051201"),  # 4-4-2
        ("R003", "50090348001"),  # 5-4-1
        ("R004", "68180051301"),  # already 11 digits
        ("R005", "00093005801"),  # 5-3-2
    ]
    assert query(db, "select * from raw.eligibility order by all") == [
        ("P001", "female", 1980, None, D(2021, 1, 1), D(2022, 12, 31), "commercial", "OH"),
        ("P002", "male", 1975, None, D(2021, 1, 1), D(2021, 6, 30), "workers_comp", "PA"),
        ("P002", "male", 1975, None, D(2021, 8, 1), D(2022, 12, 31), "workers_comp", "PA"),
        ("P003", "unknown", 1990, D(2022, 10, 1), D(2021, 3, 1), D(2022, 10, 1), "medicaid", None),
    ]
    assert query(db, "select ndc_code, is_opioid, mme_conversion_factor from raw.ndc_reference order by 1") == [
        ("00093005801", True, 0.2),
        ("00406051201", True, 1.5),
        ("00591038501", True, 1.0),
        ("50090348001", False, None),
        ("68180051301", False, None),
    ]
    assert query(db, "select encounter_id, primary_diagnosis_code from raw.ehr_encounter order by 1") == [
        ("E001", "M5450"),
        ("E002", "M5116"),
        ("E003", None),
        ("E004", "M545"),
    ]
    # every raw table has exactly the contract's columns and types, plus the file's diagnosis columns
    for table in TABLES:
        diagnoses = [(f"diagnosis_code_{n}", "VARCHAR") for n in (1, 2, 3)] if table.name == "medical_claim" else []
        assert query(db, f"select column_name, column_type from (describe raw.{table.name})") == [
            (c.name, c.type) for c in table.columns
        ] + diagnoses
    kind = "select table_type from information_schema.tables where table_name = 'medical_claim_diagnosis'"
    assert query(db, kind) == [("VIEW",)]


def _write_forms(extract: Path, form: str) -> None:
    """Rewrite every CSV of the extract as gzipped CSV, parquet (text or typed) or a folder of parquet parts."""
    con = duckdb.connect()
    for table in TABLES:
        csv_path = extract / f"{table.name}.csv"
        source = f"read_csv('{csv_path}', all_varchar=true)"
        if form == "csv.gz":
            with open(csv_path, "rb") as src, gzip.open(extract / f"{table.name}.csv.gz", "wb") as dst:
                shutil.copyfileobj(src, dst)
        elif form == "parquet":
            con.execute(f"copy (select * from {source}) to '{extract / table.name}.parquet'")
        elif form == "parquet_typed":
            with open(csv_path) as handle:
                header = next(csv.reader(handle))
            cols = [f"cast({h} as {table.column(h).type}) as {h}" if h in table.column_names else h for h in header]
            con.execute(f"copy (select {', '.join(cols)} from {source}) to '{extract / table.name}.parquet'")
        elif form == "parquet_parts":
            folder = extract / table.name
            folder.mkdir()
            con.execute(f"copy (select * from {source} limit 2) to '{folder / 'part-0.parquet'}'")
            con.execute(f"copy (select * from {source} offset 2) to '{folder / 'part-1.parquet'}'")
        csv_path.unlink()
    con.close()


@pytest.mark.parametrize("form", ["csv.gz", "parquet", "parquet_typed", "parquet_parts"])
def test_every_file_form_loads_the_same_tables(good_extract, tmp_path, db_state, form):
    reference = tmp_path / "reference.duckdb"
    load_extract(good_extract, reference, today=TODAY)
    _write_forms(good_extract, form)
    db = tmp_path / "study.duckdb"
    summary = load_extract(good_extract, db, today=TODAY)
    assert summary.rows == GOOD_ROWS
    assert raw_state(db_state(db)) == raw_state(db_state(reference))
    if form == "parquet_parts":
        assert query(db, "select file, rows from meta.load_provenance where table_name = 'ehr_pro' order by file") == [
            ("ehr_pro/part-0.parquet", 2),
            ("ehr_pro/part-1.parquet", 6),
        ]


def test_parquet_typed_bad_values_name_their_row(good_extract):
    _write_forms(good_extract, "parquet_typed")
    con = duckdb.connect()
    path = good_extract / "ehr_pro.parquet"
    con.execute(
        f"copy (select person_id, assessment_date, instrument,"
        f" case when row_number() over () = 7 then cast('nan' as double) else score end as score"
        f" from '{path}') to '{good_extract / 'x.parquet'}'"
    )
    (good_extract / "x.parquet").replace(path)
    assert validate_extract(good_extract, today=TODAY) == [
        Problem(
            "error",
            "ehr_pro.parquet",
            "ehr_pro",
            "score",
            "non_finite",
            "1 value is not a finite number (too large, infinite or NaN); amounts, quantities and scores must be finite",
            (7,),
            ("nan",),
        )
    ]


def test_absent_optional_tables_are_loaded_empty(good_extract, tmp_path):
    for table in TABLES:
        if not table.required:
            (good_extract / f"{table.name}.csv").unlink()
    db = tmp_path / "study.duckdb"
    summary = load_extract(good_extract, db, today=TODAY)
    optional = tuple(t.name for t in TABLES if not t.required)
    assert summary.absent_tables == optional
    assert {name: n for name, n in summary.rows.items() if n} == {
        "eligibility": 4,
        "medical_claim": 5,
        "medical_claim_diagnosis": 9,
    }
    assert query(db, "select absent_tables from meta.load") == [(list(optional),)]
    assert query(db, "select count(*) from raw.ehr_pro") == [(0,)]
    assert f"  absent: ehr_pro (unavailable: {TABLES_BY_NAME['ehr_pro'].unavailable_without})" in summary.describe()


def test_describe(good_extract, tmp_path):
    (good_extract / "ehr_work_status.csv").unlink()
    (good_extract / "truth.json").write_text("{}")
    summary = load_extract(good_extract, tmp_path / "study.duckdb", today=TODAY)
    summary.seconds = 1.25
    # as found: the analyst's own terminal (--show-small-counts)
    assert summary.describe(None) == "\n".join(
        [
            f"Loaded {good_extract} into {tmp_path / 'study.duckdb'} in 1.2 s",
            "  eligibility                         4 rows",
            "  medical_claim                       5 rows",
            "  pharmacy_claim                      5 rows",
            "  ndc_reference                       5 rows",
            "  ehr_encounter                       4 rows",
            "  ehr_pro                             8 rows",
            "  ehr_work_status                     0 rows",
            "  medical_claim_diagnosis             9 rows",
            "  absent: ehr_work_status (unavailable: return to work)",
            "1 warning:",
            "  - truth.json: not a contract table; ignored (rule unknown_file)",
        ]
    )
    assert "[" not in summary.describe()  # the CLI prints it with rich markup on
    # by default every row count of 1 to 10 passes the disclosure gate; zero may be shown
    gated = summary.describe().splitlines()
    assert gated[1] == "  eligibility                       <11 rows"
    assert gated[7] == "  ehr_work_status                     0 rows"


def test_provenance(good_extract, tmp_path):
    db = tmp_path / "study.duckdb"
    load_extract(good_extract, db, today=TODAY)
    provenance = query(db, "select table_name, file, sha256, rows, columns, loaded_at from meta.load_provenance")
    (load_row,) = query(db, "select * from meta.load")
    assert load_row[0] == str(good_extract.resolve())
    assert load_row[2:] == (__version__, [], False, 0, None, 0)  # ..., reference_date, date_shift_days
    assert [p[0] for p in provenance] == [t.name for t in TABLES]
    for table, file, sha, rows, columns, loaded_at in provenance:
        path = good_extract / file
        assert sha == hashlib.sha256(path.read_bytes()).hexdigest()
        assert rows == GOOD_ROWS[table]
        with open(path) as handle:
            assert columns == next(csv.reader(handle))
        assert loaded_at == load_row[1]
    assert abs(load_row[1] - dt.datetime.now(dt.UTC).replace(tzinfo=None)) < dt.timedelta(minutes=5)


def test_loading_twice_gives_the_same_tables_and_a_changed_extract_replaces_the_load(good_extract, tmp_path, db_state):
    db = tmp_path / "study.duckdb"
    load_extract(good_extract, db, today=TODAY)
    provenance = "select table_name, file, sha256, rows, columns from meta.load_provenance order by all"
    first = db_state(db)
    first_provenance = query(db, provenance)
    first_load_time = query(db, "select loaded_at from meta.load")
    load_extract(good_extract, db, today=TODAY)
    assert raw_state(db_state(db)) == raw_state(first)
    assert query(db, provenance) == first_provenance
    assert query(db, "select loaded_at from meta.load") > first_load_time

    lines = (good_extract / "ehr_pro.csv").read_text().splitlines()
    (good_extract / "ehr_pro.csv").write_text("\n".join(lines[:3]) + "\n")
    (good_extract / "ndc_reference.csv").unlink()
    summary = load_extract(good_extract, db, today=TODAY)
    assert summary.rows["ehr_pro"] == 2
    fresh = tmp_path / "fresh.duckdb"
    load_extract(good_extract, fresh, today=TODAY)
    assert raw_state(db_state(db)) == raw_state(db_state(fresh))
    assert query(db, "select table_name from meta.load_provenance where table_name = 'ndc_reference'") == []


def test_a_failed_first_load_leaves_no_database(good_extract, tmp_path):
    (good_extract / "eligibility.csv").unlink()
    db = tmp_path / "study.duckdb"
    with pytest.raises(ValidationFailed):
        load_extract(good_extract, db, today=TODAY)
    assert not db.exists()
    assert not Path(str(db) + ".wal").exists()


@pytest.mark.parametrize("interruption", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_an_interrupted_write_rolls_back_to_the_previous_load(
    good_extract, tmp_path, db_state, monkeypatch, interruption
):
    db = tmp_path / "study.duckdb"
    load_extract(good_extract, db, today=TODAY)
    before = db_state(db)
    (good_extract / "ehr_pro.csv").unlink()  # the new load would empty raw.ehr_pro ...
    seen = {}

    def fail_after_tables_were_replaced(con, *args, **kwargs):
        seen["ehr_pro rows inside the transaction"] = con.execute("select count(*) from raw.ehr_pro").fetchall()[0][0]
        raise interruption

    monkeypatch.setattr(ingest, "_write_meta", fail_after_tables_were_replaced)
    with pytest.raises(type(interruption)):
        load_extract(good_extract, db, today=TODAY)
    assert seen == {"ehr_pro rows inside the transaction": 0}  # ... and had done so when it was interrupted
    assert db_state(db) == before


HOLD = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])
print("holding", flush=True)
sys.stdin.read()
"""

TRY_CONNECT = """
import sys
from ipm_outcomes import db
from ipm_outcomes.errors import DatabaseInUseError
try:
    db.connect(sys.argv[1]).close()
    print("opened")
except DatabaseInUseError as exc:
    print("DatabaseInUseError:", exc)
"""


def test_a_database_held_by_another_process_is_refused(good_extract, tmp_path, db_state):
    db = tmp_path / "study.duckdb"
    load_extract(good_extract, db, today=TODAY)
    before = db_state(db)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(DatabaseInUseError, match="database is in use by another process"):
            load_extract(good_extract, db, today=TODAY)
    finally:
        holder.communicate("", timeout=30)
    assert db_state(db) == before


def test_another_process_opening_the_database_during_a_load_is_refused(good_extract, tmp_path, monkeypatch):
    db = tmp_path / "study.duckdb"
    write_meta = ingest._write_meta
    attempts = []

    def try_to_open_meanwhile(*args, **kwargs):
        done = subprocess.run(
            [sys.executable, "-c", TRY_CONNECT, str(db)], capture_output=True, text=True, timeout=60, check=True
        )
        attempts.append(done.stdout.strip())
        return write_meta(*args, **kwargs)

    monkeypatch.setattr(ingest, "_write_meta", try_to_open_meanwhile)
    load_extract(good_extract, db, today=TODAY)
    assert attempts == [
        f"DatabaseInUseError: {db}: database is in use by another process; wait for it to finish and try again"
    ]


def test_report_file_on_failure_and_on_success(good_extract, tmp_path):
    report = tmp_path / "out" / "report.json"
    bad = tmp_path / "bad"
    shutil.copytree(good_extract, bad)
    lines = (bad / "ehr_pro.csv").read_text().replace("odi,42", "odi,142")
    (bad / "ehr_pro.csv").write_text(lines)
    with pytest.raises(ValidationFailed) as info:
        load_extract(bad, tmp_path / "study.duckdb", today=TODAY, report_path=report)
    content = json.loads(report.read_text())
    assert content == {
        "extract": str(bad),
        "passed": False,
        "errors": 1,
        "warnings": 0,
        "identifier_scan": "every row of every table",
        "rows": None,
        "problems": [
            {
                "severity": "error",
                "file": "ehr_pro.csv",
                "table": "ehr_pro",
                "column": "score",
                "rule": "pro_range",
                "message": "1 odi score is outside 0..100",
                "rows": [1],
                "examples": ["142"],
                "count": 1,
            }
        ],
    }
    assert [
        Problem(**{**p, "rows": tuple(p["rows"]), "examples": tuple(p["examples"])}) for p in content["problems"]
    ] == info.value.problems

    (good_extract / "truth.json").write_text("{}")
    load_extract(good_extract, tmp_path / "study.duckdb", today=TODAY, report_path=report)
    content = json.loads(report.read_text())
    assert (content["passed"], content["errors"], content["warnings"], content["rows"]) == (True, 0, 1, GOOD_ROWS)
    assert [p["rule"] for p in content["problems"]] == ["unknown_file"]


def test_report_file_when_the_load_cannot_start(good_extract, tmp_path, db_state):
    db, report = tmp_path / "study.duckdb", tmp_path / "report.json"
    load_extract(good_extract, db, today=TODAY)
    before = db_state(db)
    not_a_folder = good_extract / "eligibility.csv"
    message = f"{not_a_folder}: no such extract folder; give the folder that holds eligibility.csv etc."
    with pytest.raises(IpmError, match="no such extract folder"):
        load_extract(not_a_folder, db, today=TODAY, report_path=report)
    assert db_state(db) == before
    assert json.loads(report.read_text()) == {
        "extract": str(not_a_folder),
        "passed": False,
        "errors": 1,
        "warnings": 0,
        "identifier_scan": None,
        "rows": None,
        "problems": [
            {
                "severity": "error",
                "file": str(not_a_folder),
                "table": None,
                "column": None,
                "rule": "load_failed",
                "message": message,
                "rows": [],
                "examples": [],
                "count": 1,
            }
        ],
    }


def test_progress_shows_the_problem_table_on_stderr(good_extract, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # rich's width when not on a terminal
    lines = (good_extract / "ehr_pro.csv").read_text().replace("odi,42", "odi,142")
    (good_extract / "ehr_pro.csv").write_text(lines)
    with pytest.raises(ValidationFailed):
        load_extract(good_extract, tmp_path / "study.duckdb", today=TODAY, progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "pro_range" in captured.err and "1 odi score is outside 0..100" in captured.err
    assert "checking ehr_work_status" in captured.err  # the progress bar, stopped at the last table checked


def test_problems_table_lists_every_problem_errors_first():
    problems = [
        Problem("warning", "truth.json", None, None, "unknown_file", "not a contract table; ignored"),
        Problem(
            "error", "ehr_pro.csv", "ehr_pro", "score", "pro_range", "1 odi score is outside 0..100", (3,), ("120",)
        ),
    ]
    console = Console(record=True, width=200)
    console.print(problems_table(problems))
    text = console.export_text()
    assert text.index("pro_range") < text.index("unknown_file")
    assert "1 error, 1 warning" in text
    assert "'120'" in text


def test_row_numbers_follow_the_file_in_a_large_csv(good_extract):
    """Row numbers come from an insertion-ordered copy; check them past DuckDB's parallel chunks."""
    n = 300_000
    path = good_extract / "ehr_work_status.csv"
    duckdb.execute(
        f"copy (select 'P001' as person_id, '2021-03-02' as status_date,"
        f" case i when 150001 then 'x' when 287654 then 'bogus' else 'working' end as work_status"
        f" from range(1, {n + 1}) t(i) order by i) to '{path}' (header)"
    )
    (problem,) = validate_extract(good_extract, today=TODAY)
    assert (problem.rule, problem.rows, problem.examples, problem.count) == (
        "allowed_values",
        (150001, 287654),
        ("x", "bogus"),
        2,
    )


def test_synthetic_extract_passes(tmp_path):
    from ipm_outcomes import synth

    synth.generate(tmp_path / "extract", persons=500, seed=7)
    db = tmp_path / "study.duckdb"
    summary = load_extract(tmp_path / "extract", db)
    assert isinstance(summary, LoadSummary)
    assert summary.rows["eligibility"] >= 500
    assert summary.rows["medical_claim_diagnosis"] >= summary.rows["medical_claim"]
    assert {p.rule for p in summary.warnings} <= {"unknown_file", "orphan_person"}


def test_diagnosis_columns_keep_their_positions_in_any_order_and_with_gaps(good_extract, tmp_path):
    """diagnosis_code_12, _1 and _3 (no _2), in that order in the file: raw.medical_claim gets them in
    position order and the diagnosis view numbers each code by its column, before and after a reload
    with fewer columns."""
    path = good_extract / "medical_claim.csv"
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    renamed = {
        "diagnosis_code_1": "diagnosis_code_12",
        "diagnosis_code_2": "diagnosis_code_1",
        "diagnosis_code_3": "diagnosis_code_3",
    }
    header = ["diagnosis_code_12"] + [c for c in rows[0] if not c.startswith("diagnosis_code_")] + [
        "diagnosis_code_1",
        "diagnosis_code_3",
    ]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            moved = {renamed[k]: v for k, v in row.items() if k in renamed}
            if not moved["diagnosis_code_1"]:  # diagnosis_code_1 is required
                moved["diagnosis_code_1"], moved["diagnosis_code_12"] = moved["diagnosis_code_12"], ""
            writer.writerow({**{k: v for k, v in row.items() if k not in renamed}, **moved})
    db = tmp_path / "study.duckdb"

    summary = load_extract(good_extract, db, today=TODAY)

    columns = [c for (c,) in query(db, "select column_name from (describe raw.medical_claim)") if c.startswith("diag")]
    assert columns == ["diagnosis_code_1", "diagnosis_code_3", "diagnosis_code_12"]
    in_view = query(
        db,
        "select claim_id, claim_line_number, diagnosis_position, diagnosis_code"
        " from raw.medical_claim_diagnosis order by all",
    )
    assert in_view == [
        ("C001", 1, 1, "M5116"),
        ("C001", 1, 12, "M5450"),
        ("C001", 2, 1, "M545"),
        ("C002", 1, 1, "M5416"),
        ("C002", 1, 3, "G8929"),
        ("C002", 1, 12, "M5116"),
        ("C003", 1, 1, "M5450"),
        ("C003", 1, 12, "S335XXA"),
        ("C004", 1, 1, "M5450"),
    ]
    assert summary.rows["medical_claim_diagnosis"] == len(in_view)

    # three diagnosis columns again: the view follows the table
    shutil.copy(Path(__file__).parents[1] / "fixtures" / "extract_good" / "medical_claim.csv", path)
    load_extract(good_extract, db, today=TODAY)
    assert query(db, "select max(diagnosis_position), count(*) from raw.medical_claim_diagnosis") == [(3, 9)]
