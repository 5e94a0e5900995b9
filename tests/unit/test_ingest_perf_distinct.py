"""The fast paths of ingest give the answers of the row-by-row rules.

Rules on low-cardinality columns are counted over each column's histogram of distinct values,
clean columns are written without normalising, and key uniqueness is first checked on hashes.
Each test builds a miniature where the fast path could go wrong (repeated bad values, NULLs that
a histogram leaves out, empty strings, a column clean in all rows but one, colliding hashes) and
checks the exact counts, rows and loaded values.
"""

from __future__ import annotations

import csv
import shutil
from datetime import date
from pathlib import Path

import duckdb
import pytest

from ipm_outcomes import ingest
from ipm_outcomes.ingest import load_extract, validate_extract

TODAY = date(2025, 6, 30)
GOOD = Path(__file__).parents[1] / "fixtures" / "extract_good"

HEADER = [
    "claim_id",
    "claim_line_number",
    "person_id",
    "claim_type",
    "claim_start_date",
    "claim_end_date",
    "place_of_service_code",
    "rendering_npi",
    "rendering_taxonomy_code",
    "hcpcs_code",
    "hcpcs_modifier_1",
    "allowed_amount",
    "paid_amount",
    "diagnosis_code_1",
    "diagnosis_code_2",
]


def claim(i: int, **values: str) -> list[str]:
    row = {
        "claim_id": f"K{i:03d}",
        "claim_line_number": "1",
        "person_id": "P001",
        "claim_type": "professional",
        "claim_start_date": "2021-03-02",
        "claim_end_date": "2021-03-02",
        "place_of_service_code": "11",
        "rendering_npi": "1234567893",
        "rendering_taxonomy_code": "207Q00000X",
        "hcpcs_code": "99213",
        "hcpcs_modifier_1": "",
        "allowed_amount": "10.00",
        "paid_amount": "8.00",
        "diagnosis_code_1": "M54.50",
        "diagnosis_code_2": "",
    }
    row.update(values)
    return [row[c] for c in HEADER]


@pytest.fixture()
def extract(tmp_path: Path) -> Path:
    folder = tmp_path / "extract"
    shutil.copytree(GOOD, folder)
    return folder


def write_claims(extract: Path, rows: list[list[str]]) -> None:
    with open(extract / "medical_claim.csv", "w", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows([HEADER, *rows])


def errors(problems) -> dict[tuple[str, str], tuple[int, tuple[int, ...], tuple[str, ...]]]:
    return {(p.column, p.rule): (p.count, p.rows, p.examples) for p in problems if p.is_error}


def test_counts_over_distinct_values_weigh_each_value_by_its_rows(extract: Path) -> None:
    rows = [claim(i) for i in range(1, 13)]
    for i in (2, 5, 9):  # one bad value, three rows
        rows[i - 1] = claim(i, claim_type="dental")
    for i in (3, 4):  # empty and blank first diagnoses are both missing (on lines without a procedure code)
        rows[i - 1] = claim(i, diagnosis_code_1="" if i == 3 else "   ", hcpcs_code="")
    for i in (6, 7, 8, 10):  # two bad codes, two rows each
        rows[i - 1] = claim(i, hcpcs_code="ZZ" if i in (6, 10) else "1234")
    rows[10] = claim(11, claim_start_date="2021-13-01", claim_end_date="2021-13-01")
    write_claims(extract, rows)

    found = errors(validate_extract(extract, today=TODAY))

    assert found == {
        ("claim_type", "allowed_values"): (3, (2, 5, 9), ("dental", "dental", "dental")),
        ("diagnosis_code_1", "null"): (2, (3, 4), ()),
        ("hcpcs_code", "code_shape"): (4, (6, 7, 8, 10), ("ZZ", "1234", "1234", "ZZ")),
        ("claim_start_date", "type"): (1, (11,), ("2021-13-01",)),
        ("claim_end_date", "type"): (1, (11,), ("2021-13-01",)),
    }


def test_nulls_of_a_typed_parquet_column_are_counted(extract: Path, tmp_path: Path) -> None:
    """A histogram leaves NULLs out; they are counted from the row total."""
    write_claims(extract, [claim(i) for i in range(1, 6)])
    con = duckdb.connect()
    con.execute(
        f"copy (select * replace (case when claim_id in ('K002', 'K004') then NULL else"
        f" cast(claim_start_date as DATE) end as claim_start_date)"
        f" from read_csv('{extract / 'medical_claim.csv'}', all_varchar=true)) to '{extract / 'medical_claim.parquet'}'"
    )
    con.close()
    (extract / "medical_claim.csv").unlink()

    found = errors(validate_extract(extract, today=TODAY))

    assert found == {("claim_start_date", "null"): (2, (2, 4), ())}


def test_columns_clean_in_all_rows_but_one_are_still_normalised(extract: Path, tmp_path: Path) -> None:
    rows = [claim(i) for i in range(1, 6)]
    rows[3] = claim(4, rendering_taxonomy_code=" 207q00000x", person_id="P001 ", hcpcs_modifier_1=" ")
    write_claims(extract, rows)
    db = tmp_path / "study.duckdb"

    load_extract(extract, db, today=TODAY)

    con = duckdb.connect(str(db), read_only=True)
    loaded = con.execute(
        "select claim_id, person_id, rendering_taxonomy_code, hcpcs_modifier_1 from raw.medical_claim order by claim_id"
    ).fetchall()
    diagnoses = con.execute("select distinct diagnosis_code from raw.medical_claim_diagnosis").fetchall()
    con.close()
    assert loaded == [(f"K{i:03d}", "P001", "207Q00000X", None) for i in range(1, 6)]
    assert diagnoses == [("M5450",)]


def test_diagnosis_rows_are_counted_from_the_histograms_as_the_view_has_them(extract: Path, tmp_path: Path) -> None:
    """The load reports the diagnosis view's rows without scanning it: blanks are not diagnoses."""
    rows = [claim(i) for i in range(1, 7)]
    rows[1] = claim(2, diagnosis_code_2="  ")
    rows[2] = claim(3, diagnosis_code_2="g89.29")
    rows[3] = claim(4, diagnosis_code_2="G8929")
    write_claims(extract, rows)
    db = tmp_path / "study.duckdb"

    summary = load_extract(extract, db, today=TODAY)

    con = duckdb.connect(str(db), read_only=True)
    in_view = con.execute("select count(*) from raw.medical_claim_diagnosis").fetchone()[0]
    con.close()
    assert summary.rows["medical_claim_diagnosis"] == in_view == 6 + 2


def test_repeated_key_hashes_are_checked_exactly(extract: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Equal hashes may be a collision: the exact count decides, so distinct keys pass."""
    real = ingest._key_counts

    def colliding(src):
        counted = real(src)
        return [counted[0], counted[1].replace("hash(", "0 * hash(")] if counted[0] != "0" else counted

    monkeypatch.setattr(ingest, "_key_counts", colliding)
    rows = [claim(i) for i in range(1, 5)]
    write_claims(extract, rows)
    assert errors(validate_extract(extract, today=TODAY)) == {}

    rows.append(claim(2))  # a true repeat of K002 line 1
    write_claims(extract, rows)
    found = errors(validate_extract(extract, today=TODAY))
    assert found == {("claim_id, claim_line_number", "duplicate_key"): (1, (5,), ("K002, 1 (first at row 2)",))}


_TEXTS = [
    "",
    " ",
    "abc",
    " abc",
    "abc ",
    "  a b  ",
    "\tabc",
    "abc\n",
    "\u00a0abc",
    "abc\u3000",
    "caf\u00e9",
    "\u00e9 ",
    "\u2000x\u2000",
    "x\u200by",
]


@pytest.mark.parametrize("text", _TEXTS)
def test_guarded_trim_equals_trim(text):
    """clean_text trims only values that could change; the answer must be trim's for every value."""
    from ipm_outcomes.validation import clean_text

    con = duckdb.connect()
    fast, slow = con.execute(f"select {clean_text('$t')}, nullif(trim($t), '')", {"t": text}).fetchone()
    assert fast == slow


def test_guarded_trim_equals_trim_on_random_text():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from ipm_outcomes.validation import clean_text

    con = duckdb.connect()

    @settings(max_examples=300, deadline=None, derandomize=True)
    @given(st.text(max_size=12))
    def check(text):
        fast, slow = con.execute(f"select {clean_text('$t')}, nullif(trim($t), '')", {"t": text}).fetchone()
        assert fast == slow

    check()


def test_a_clean_csv_is_parsed_once_and_a_failing_one_again_as_text(
    extract: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed: list[str] = []
    read_csv = ingest._read_csv_sql
    monkeypatch.setattr(ingest, "_read_csv_sql", lambda src, rejects: parsed.append(src.name) or read_csv(src, rejects))
    ingest.load_extract(extract, tmp_path / "a.duckdb", today=TODAY)
    tables = sorted(p.name.removesuffix(".csv") for p in extract.glob("*.csv"))
    # one parse each, straight into its raw table; the checks read that table and the write finishes it
    assert sorted(parsed) == tables
    parsed.clear()
    path = extract / "ehr_work_status.csv"
    path.write_text(path.read_text().replace("modified_duty", "at_lunch", 1))
    with pytest.raises(ingest.ValidationFailed):
        ingest.load_extract(extract, tmp_path / "b.duckdb", today=TODAY)
    # the failing table is read again as text (its scan, then its insertion-ordered copy for rows)
    assert sorted(parsed) == sorted([*tables, "ehr_work_status", "ehr_work_status"])


@pytest.mark.parametrize(
    ("table", "row", "column", "value"),
    [
        ("eligibility", 4, "birth_year", "1990.0"),  # type: not well-formed, NULL in the typed raw table
        ("eligibility", 1, "payer_type", ""),  # null
        ("medical_claim", 2, "allowed_amount", "1e400"),  # non_finite
        ("ehr_pro", 3, "assessment_date", "1899-01-01"),  # early_date
        ("ehr_encounter", 2, "encounter_id", "E001"),  # duplicate_key
        ("ehr_pro", 2, "person_id", "123-45-6789"),  # identifier_value
    ],
)
def test_the_typed_table_notices_what_the_text_reports(extract: Path, monkeypatch, table, row, column, value) -> None:
    with open(extract / f"{table}.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    rows[row][rows[0].index(column)] = value
    with open(extract / f"{table}.csv", "w", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)
    back_to_text: list[str] = []
    unstage = ingest._unstage_typed
    monkeypatch.setattr(ingest, "_unstage_typed", lambda con, src: back_to_text.append(src.name) or unstage(con, src))
    problems = validate_extract(extract, today=TODAY)
    assert back_to_text == [table]
    assert [(p.file, p.column, p.rows) for p in problems if p.is_error][:1] == [(f"{table}.csv", column, (row,))]


# --- the one parse: each CSV straight into its raw table, inside the load's transaction -------------------


def _text_path_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every CSV checked and written as text, as before the one parse (the path a failing file is checked again on)."""
    monkeypatch.setattr(ingest, "_stage_typed", lambda con, src, positions: None)


def _raw_tables(state: dict) -> dict:
    return {name: value for name, value in state.items() if name.startswith("raw.")}


def _rewrite(extract: Path, table: str, edit) -> None:
    with open(extract / f"{table}.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    edit(rows)
    with open(extract / f"{table}.csv", "w", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)


def _set(table: str, row: int, column: str, value: str):
    def edit(rows):
        rows[row][rows[0].index(column)] = value

    return table, edit


def _append_line(table: str, line: str):
    def edit(rows):
        rows.append(next(csv.reader([line])))

    return table, edit


_MALFORMED = {
    "type": _set("eligibility", 4, "birth_year", "1990.0"),
    "non_finite": _set("medical_claim", 2, "allowed_amount", "1e400"),
    "nan": _set("pharmacy_claim", 1, "quantity", "nan"),
    "early_date": _set("ehr_pro", 3, "assessment_date", "1899-01-01"),
    "duplicate_key": _set("ehr_encounter", 2, "encounter_id", "E001"),
    "identifier_value": _set("ehr_pro", 2, "person_id", "123-45-6789"),
    "too_many_fields": _append_line("ehr_work_status", "P001,2021-03-01,full_duty,surplus"),
    "extra_column_identifier": ("ehr_work_status", lambda rows: _add_note(rows, {2: "jane.doe@example.com"})),
}


def _add_note(rows: list[list[str]], notes: dict[int, str]) -> None:
    """An extra column ``vendor_note`` (not in the contract): ``x`` but in the rows of ``notes``."""
    for i, row in enumerate(rows):
        row.append(notes.get(i, "x") if i else "vendor_note")


@pytest.mark.parametrize("case", sorted(_MALFORMED))
def test_the_one_parse_and_the_text_path_report_the_same(extract: Path, monkeypatch, case: str) -> None:
    """A failing CSV is checked again from its text: the messages are those the text path alone gives."""
    table, edit = _MALFORMED[case]
    _rewrite(extract, table, edit)
    fast = validate_extract(extract, today=TODAY)
    _text_path_only(monkeypatch)
    text = validate_extract(extract, today=TODAY)
    assert any(p.is_error and p.file == f"{table}.csv" for p in fast)
    assert fast == text


def test_the_one_parse_and_the_text_path_load_the_same_database(extract: Path, tmp_path: Path, monkeypatch, db_state):
    """Text to normalise, extra columns and orphan persons (a warning with rows): the same tables, the same words."""
    rows = [claim(i) for i in range(1, 7)]
    rows[1] = claim(2, diagnosis_code_1=" m54.5", rendering_taxonomy_code="207q00000x ", person_id="P404")
    rows[4] = claim(5, hcpcs_code="", diagnosis_code_2="g89.29", claim_type="PROFESSIONAL")
    write_claims(extract, rows)
    _rewrite(extract, "ehr_work_status", lambda rows: _add_note(rows, {}))
    fast = load_extract(extract, tmp_path / "fast.duckdb", today=TODAY)
    _text_path_only(monkeypatch)
    text = load_extract(extract, tmp_path / "text.duckdb", today=TODAY)
    assert [p.rule for p in fast.warnings] == ["extra_columns", "orphan_person"]
    assert [(p.rule, p.message, p.examples) for p in fast.warnings] == [
        (p.rule, p.message, p.examples) for p in text.warnings
    ]
    # an orphan warning names its rows from the parsed table; a CSV read as text knows no rows
    assert [p.rows for p in fast.warnings] == [(), (2,)] and [p.rows for p in text.warnings] == [(), ()]
    assert fast.rows == text.rows
    assert _raw_tables(db_state(tmp_path / "fast.duckdb")) == _raw_tables(db_state(tmp_path / "text.duckdb"))


def test_a_failing_csv_leaves_the_database_as_it_was(extract: Path, tmp_path: Path, monkeypatch, db_state) -> None:
    """The CSVs before the failing one were already parsed into their raw tables: rolled back with the load."""
    db = tmp_path / "study.duckdb"
    load_extract(extract, db, today=TODAY)
    before = db_state(db)
    write_claims(extract, [claim(i) for i in range(1, 4)])  # would replace the claims ...
    _rewrite(extract, *_MALFORMED["too_many_fields"])  # ... but the last table has a malformed line
    seen = {}
    check = ingest._check_table

    def spy(con, src, *args, **kwargs):
        if src.name == "ehr_work_status":
            seen["claims inside the transaction"] = con.execute("select count(*) from raw.medical_claim").fetchall()[0][0]
        return check(con, src, *args, **kwargs)

    monkeypatch.setattr(ingest, "_check_table", spy)
    with pytest.raises(ingest.ValidationFailed) as failed:
        load_extract(extract, db, today=TODAY)
    assert seen == {"claims inside the transaction": 3}
    assert [(p.file, p.rule, p.rows) for p in failed.value.problems if p.is_error] == [
        ("ehr_work_status.csv", "malformed_row", (len(_csv_rows(extract, "ehr_work_status")) - 1,))
    ]
    assert db_state(db) == before


def _csv_rows(extract: Path, table: str) -> list[list[str]]:
    with open(extract / f"{table}.csv", newline="") as handle:
        return list(csv.reader(handle))


def test_a_duckdb_failure_inside_the_transaction_checks_everything_again_outside_it(
    extract: Path, tmp_path: Path, monkeypatch, db_state
) -> None:
    """A gzip stream that ends early fails DuckDB's read mid-file, which ends the transaction."""
    import gzip

    db = tmp_path / "study.duckdb"
    load_extract(extract, db, today=TODAY)
    before = db_state(db)
    data = gzip.compress((extract / "medical_claim.csv").read_bytes() * 20)
    (extract / "medical_claim.csv").unlink()
    (extract / "medical_claim.csv.gz").write_bytes(data[: len(data) // 2])
    passes = []
    check_sources = ingest._check_sources

    def spy(*args, fast):
        passes.append(fast)
        return check_sources(*args, fast=fast)

    monkeypatch.setattr(ingest, "_check_sources", spy)
    with pytest.raises(ingest.ValidationFailed) as failed:
        load_extract(extract, db, today=TODAY)
    assert passes == [True, False]
    assert [(p.file, p.rule) for p in failed.value.problems if p.is_error] == [("medical_claim.csv.gz", "unreadable_file")]
    assert failed.value.problems[0].message.startswith("medical_claim.csv.gz cannot be read: IO Error: Unexpected end of GZIP")
    assert db_state(db) == before


KILLED_WHILE_CHECKING = """
import os, signal, sys
from datetime import date
from ipm_outcomes import ingest

check = ingest._check_table

def check_then_die(con, src, *args, **kwargs):
    check(con, src, *args, **kwargs)
    if src.name == "medical_claim":  # parsed into raw.medical_claim, inside the load's transaction
        print(con.execute("select count(*) from raw.medical_claim").fetchall()[0][0], flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

ingest._check_table = check_then_die
ingest.load_extract(sys.argv[1], sys.argv[2], today=date(2025, 6, 30))
"""


def test_a_load_killed_while_its_csvs_are_parsed_into_the_database_leaves_the_previous_load(
    extract: Path, tmp_path: Path, db_state
) -> None:
    import subprocess
    import sys

    db = tmp_path / "study.duckdb"
    load_extract(extract, db, today=TODAY)
    before = db_state(db)
    write_claims(extract, [claim(i) for i in range(1, 4)])
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_WHILE_CHECKING, str(extract), str(db)], capture_output=True, text=True, timeout=120
    )
    assert killed.returncode == -9 and killed.stdout.split() == ["3"], killed.stderr
    assert db_state(db) == before
    assert load_extract(extract, db, today=TODAY).rows["medical_claim"] == 3


def test_a_parsed_table_checked_again_as_text_for_a_warning_is_still_loaded_from_the_one_parse(
    extract: Path, tmp_path: Path, monkeypatch, db_state
) -> None:
    """With --allow-identifiers an identifier-shaped value is a warning whose rows come from the text:
    the load goes on, writing the rows parsed the first time, the same as the text path writes."""
    rows = [claim(i) for i in range(1, 5)]
    rows[2] = claim(3, claim_id="123-45-6789", diagnosis_code_1="m54.5 ")
    write_claims(extract, rows)
    back_to_text: list[str] = []
    unstage = ingest._unstage_typed
    monkeypatch.setattr(ingest, "_unstage_typed", lambda con, src: back_to_text.append(src.name) or unstage(con, src))
    fast = load_extract(extract, tmp_path / "fast.duckdb", today=TODAY, allow_identifiers=True)
    assert back_to_text == ["medical_claim"]
    _text_path_only(monkeypatch)
    text = load_extract(extract, tmp_path / "text.duckdb", today=TODAY, allow_identifiers=True)
    assert [(p.rule, p.rows, p.examples) for p in fast.warnings] == [("identifier_value", (3,), ("###-##-####",))]
    assert fast.warnings == text.warnings
    assert _raw_tables(db_state(tmp_path / "fast.duckdb")) == _raw_tables(db_state(tmp_path / "text.duckdb"))


def test_orphan_rows_are_file_rows_when_a_large_csv_is_parsed_out_of_order(extract: Path, tmp_path: Path) -> None:
    """The one parse stores a CSV's rows in whatever order its threads finish (keeping the file's order
    cost a fifth of the parse); an orphan warning still names the rows of the file, counted in a
    numbered parse of ``person_id``. 300,000 lines: several row groups, parsed by two threads."""
    rows = [claim(i, claim_id=f"K{i:07d}") for i in range(1, 300_001)]
    for row in (7, 150_001, 299_998):
        rows[row - 1] = claim(row, claim_id=f"K{row:07d}", person_id=f"P9{row:06d}")
    write_claims(extract, rows)
    summary = load_extract(extract, tmp_path / "big.duckdb", today=TODAY, threads=2)
    orphans = [p for p in summary.warnings if p.rule == "orphan_person"]
    assert [(p.file, p.rows, p.examples, p.count) for p in orphans] == [
        ("medical_claim.csv", (7, 150_001, 299_998), ("P9000007", "P9150001", "P9299998"), 3)
    ]
    assert orphans[0].message.endswith("(3 rows)")
    assert summary.rows["medical_claim"] == 300_000
