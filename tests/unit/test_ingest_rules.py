"""Every validation rule of ingest, one hand-made bad variant of tests/fixtures/extract_good each.

Each test breaks the good extract in one known place and asserts the exact problem (file, column,
row, rule, message) and that a previous good load in the database is left exactly as it was.
"""

from __future__ import annotations

import csv
import gzip
import shutil
from datetime import date
from pathlib import Path

import duckdb
import pytest

from ipm_outcomes.ingest import Problem, ValidationFailed, load_extract, validate_extract
from ipm_outcomes.validation import identifier_column_reason

TODAY = date(2025, 6, 30)
E, W = "error", "warning"


# --- editing an extract ---------------------------------------------------------------------


def read_table(extract: Path, table: str) -> tuple[list[str], list[list[str]]]:
    with open(extract / f"{table}.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


def write_table(extract: Path, table: str, header: list[str], rows: list[list[str]], name: str | None = None) -> None:
    with open(extract / (name or f"{table}.csv"), "w", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows([header, *rows])


def set_cell(extract: Path, table: str, row: int, column: str, value: str) -> None:
    """Set a cell; ``row`` is the data row number (1 = first row after the header)."""
    header, rows = read_table(extract, table)
    rows[row - 1][header.index(column)] = value
    write_table(extract, table, header, rows)


def add_column(extract: Path, table: str, column: str, values: list[str]) -> None:
    header, rows = read_table(extract, table)
    write_table(extract, table, [*header, column], [[*r, v] for r, v in zip(rows, values, strict=True)])


def rename_column(extract: Path, table: str, old: str, new: str) -> None:
    header, rows = read_table(extract, table)
    write_table(extract, table, [new if h == old else h for h in header], rows)


def drop_column(extract: Path, table: str, column: str) -> None:
    header, rows = read_table(extract, table)
    i = header.index(column)
    write_table(extract, table, header[:i] + header[i + 1 :], [r[:i] + r[i + 1 :] for r in rows])


# --- a database holding a previous good load ------------------------------------------------


@pytest.fixture(scope="module")
def previous_load(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("previous")
    extract = folder / "extract"
    shutil.copytree(Path(__file__).parents[1] / "fixtures" / "extract_good", extract)
    path = folder / "study.duckdb"
    load_extract(extract, path, today=TODAY)
    return path


@pytest.fixture()
def db(previous_load: Path, tmp_path: Path) -> Path:
    """A database file holding a previous good load of the good extract."""
    path = tmp_path / "study.duckdb"
    shutil.copy(previous_load, path)
    return path


def refused(extract: Path, db: Path, db_state, **kwargs) -> list[Problem]:
    """Load must fail and leave the database (holding a previous good load) exactly as it was."""
    before = db_state(db)
    assert before is not None and before["raw.eligibility"][1] == 4
    with pytest.raises(ValidationFailed) as info:
        load_extract(extract, db, today=TODAY, **kwargs)
    assert db_state(db) == before
    return info.value.problems


def of_rule(problems: list[Problem], rule: str) -> list[Problem]:
    return [p for p in problems if p.rule == rule]


# --- files and tables -----------------------------------------------------------------------


def test_good_extract_has_no_problems(good_extract):
    assert validate_extract(good_extract, today=TODAY) == []


def test_missing_required_table(good_extract, db, db_state):
    (good_extract / "eligibility.csv").unlink()
    assert refused(good_extract, db, db_state) == [
        Problem(
            E,
            "eligibility.csv",
            "eligibility",
            None,
            "missing_table",
            "required table eligibility is missing (give eligibility.csv, .csv.gz, .parquet or a folder of parquet parts)",
        )
    ]


def test_missing_table_hints_at_upper_case_file_name(good_extract, db, db_state):
    (good_extract / "medical_claim.csv").rename(good_extract / "Medical_Claim.csv")
    assert refused(good_extract, db, db_state) == [
        Problem(W, "Medical_Claim.csv", None, None, "unknown_file", "not a contract table; ignored"),
        Problem(
            E,
            "medical_claim.csv",
            "medical_claim",
            None,
            "missing_table",
            "required table medical_claim is missing (give medical_claim.csv, .csv.gz, .parquet or a folder of "
            "parquet parts); found Medical_Claim.csv: file names must be lower case",
        ),
    ]


def test_table_given_twice(good_extract, db, db_state):
    duckdb.execute(
        f"copy (select * from read_csv('{good_extract / 'ehr_pro.csv'}')) to '{good_extract / 'ehr_pro.parquet'}'"
    )
    assert refused(good_extract, db, db_state) == [
        Problem(
            E,
            "ehr_pro.csv, ehr_pro.parquet",
            "ehr_pro",
            None,
            "ambiguous_table",
            "ehr_pro is given more than once (ehr_pro.csv, ehr_pro.parquet); keep one",
        )
    ]


def test_unknown_files_are_warnings_and_the_load_goes_ahead(good_extract, tmp_path):
    (good_extract / "truth.json").write_text("{}")
    (good_extract / "notes").mkdir()
    (good_extract / ".hidden").write_text("ignored silently")
    summary = load_extract(good_extract, tmp_path / "new.duckdb", today=TODAY)
    assert summary.warnings == [
        Problem(W, "notes/", None, None, "unknown_file", "not a contract table; ignored"),
        Problem(W, "truth.json", None, None, "unknown_file", "not a contract table; ignored"),
    ]
    assert summary.rows["eligibility"] == 4


def test_empty_file_is_unreadable(good_extract, db, db_state):
    (good_extract / "ehr_work_status.csv").write_text("")
    assert refused(good_extract, db, db_state) == [
        Problem(
            E,
            "ehr_work_status.csv",
            "ehr_work_status",
            None,
            "unreadable_file",
            "ehr_work_status.csv is empty; a table needs at least a header line",
        )
    ]


def test_header_not_utf8_is_unreadable(good_extract, db, db_state):
    (good_extract / "ehr_work_status.csv").write_bytes(
        b"person_id,status_d\xe4te,work_status\nP001,2021-03-02,working\n"
    )
    assert refused(good_extract, db, db_state) == [
        Problem(
            E,
            "ehr_work_status.csv",
            "ehr_work_status",
            None,
            "unreadable_file",
            "ehr_work_status.csv header is not UTF-8 text; save the file as UTF-8",
        )
    ]


def test_corrupt_gzip_is_unreadable(good_extract, db, db_state):
    (good_extract / "ehr_work_status.csv").unlink()
    (good_extract / "ehr_work_status.csv.gz").write_bytes(b"person_id,status_date\n")
    problems = refused(good_extract, db, db_state)
    assert [(p.severity, p.file, p.rule) for p in problems] == [(E, "ehr_work_status.csv.gz", "unreadable_file")]
    assert problems[0].message.startswith("ehr_work_status.csv.gz cannot be read: Not a gzipped file")


def test_corrupt_parquet_is_unreadable(good_extract, db, db_state):
    (good_extract / "ehr_work_status.csv").unlink()
    (good_extract / "ehr_work_status.parquet").write_bytes(b"PAR1 this is not parquet")
    problems = refused(good_extract, db, db_state)
    assert [(p.severity, p.file, p.table, p.column, p.rule) for p in problems] == [
        (E, "ehr_work_status.parquet", "ehr_work_status", None, "unreadable_file")
    ]
    assert problems[0].message.startswith("ehr_work_status.parquet ")


def test_parquet_folder_without_parts_is_unreadable(good_extract, db, db_state):
    (good_extract / "ehr_work_status.csv").unlink()
    (good_extract / "ehr_work_status").mkdir()
    assert refused(good_extract, db, db_state) == [
        Problem(
            E,
            "ehr_work_status/",
            "ehr_work_status",
            None,
            "unreadable_file",
            "ehr_work_status/ holds no .parquet parts",
        )
    ]


def test_malformed_csv_lines_and_row_numbers_after_them(good_extract, db, db_state):
    path = good_extract / "ehr_work_status.csv"
    lines = path.read_text().splitlines()
    lines[2] += ",extra"  # data row 2: one field too many
    lines[4] = "P002"  # data row 4: fields missing
    lines[5] = lines[5].replace("working", "at_work")  # data row 5: a bad value after the broken lines
    path.write_text("\n".join(lines) + "\n")
    assert refused(good_extract, db, db_state) == [
        Problem(
            E,
            "ehr_work_status.csv",
            "ehr_work_status",
            None,
            "malformed_row",
            "1 line cannot be read as CSV (too many columns: Expected Number of Columns: 3 Found: 4)",
            (2,),
            ("P001,2021-04-20,modified_duty,extra",),
            1,
        ),
        Problem(
            E,
            "ehr_work_status.csv",
            "ehr_work_status",
            "status_date",
            "malformed_row",
            "1 line cannot be read as CSV (missing columns: Expected Number of Columns: 3 Found: 1)",
            (4,),
            ("P002",),
            1,
        ),
        Problem(
            E,
            "ehr_work_status.csv",
            "ehr_work_status",
            "work_status",
            "allowed_values",
            "1 value is not one of working, modified_duty, off_work, disability_short_term, disability_long_term, "
            "retired, unemployed",
            (5,),
            ("at_work",),
            1,
        ),
    ]


def test_non_utf8_line_is_malformed(good_extract, db, db_state):
    path = good_extract / "ehr_work_status.csv"
    data = path.read_bytes().replace(b"modified_duty", b"modified_d\xfcty")
    path.write_bytes(data)
    problems = refused(good_extract, db, db_state)
    assert [(p.file, p.column, p.rule, p.rows) for p in problems] == [
        ("ehr_work_status.csv", "work_status", "malformed_row", (2,))
    ]
    assert problems[0].message.startswith("1 line cannot be read as CSV (invalid encoding: ")


# --- columns --------------------------------------------------------------------------------


def test_missing_column(good_extract, db, db_state):
    drop_column(good_extract, "eligibility", "gender")
    assert refused(good_extract, db, db_state) == [
        Problem(E, "eligibility.csv", "eligibility", "gender", "missing_column", "required column gender is missing")
    ]


def test_missing_column_hints_at_case_variant(good_extract, db, db_state):
    rename_column(good_extract, "ehr_pro", "score", "Score")
    assert refused(good_extract, db, db_state) == [
        Problem(
            E,
            "ehr_pro.csv",
            "ehr_pro",
            "score",
            "missing_column",
            "required column score is missing; found 'Score': column names must be lower case without spaces",
        ),
        Problem(W, "ehr_pro.csv", "ehr_pro", None, "extra_columns", "columns not in the contract are ignored: Score"),
    ]


def test_missing_first_diagnosis_column(good_extract, db, db_state):
    rename_column(good_extract, "medical_claim", "diagnosis_code_1", "diagnosis_code_4")
    assert refused(good_extract, db, db_state) == [
        Problem(
            E,
            "medical_claim.csv",
            "medical_claim",
            "diagnosis_code_1",
            "missing_column",
            "required column diagnosis_code_1 is missing (diagnoses go in diagnosis_code_1 .. diagnosis_code_N)",
        )
    ]


def test_semicolon_separated_file_gets_a_hint(good_extract, db, db_state):
    path = good_extract / "ehr_work_status.csv"
    path.write_text(path.read_text().replace(",", ";"))
    problems = refused(good_extract, db, db_state)
    missing = of_rule(problems, "missing_column")
    assert [p.column for p in missing] == ["person_id", "status_date", "work_status"]
    assert {p.message.split(";", 1)[1] for p in missing} == {" the file does not look comma-separated"}


def test_duplicate_column(good_extract, db, db_state):
    header, rows = read_table(good_extract, "ehr_work_status")
    write_table(good_extract, "ehr_work_status", [*header, "work_status"], [[*r, r[-1]] for r in rows])
    assert refused(good_extract, db, db_state) == [
        Problem(
            E,
            "ehr_work_status.csv",
            "ehr_work_status",
            "work_status",
            "duplicate_column",
            "column work_status appears 2 times in the header; keep one",
        )
    ]


def test_an_empty_trailing_column_is_a_warning(good_extract, tmp_path):
    path = good_extract / "ehr_work_status.csv"
    path.write_text("".join(line + ",\n" for line in path.read_text().splitlines()))  # every line ends with ","
    summary = load_extract(good_extract, tmp_path / "new.duckdb", today=TODAY)
    assert summary.warnings == [
        Problem(
            W,
            "ehr_work_status.csv",
            "ehr_work_status",
            None,
            "blank_column_name",
            "the last column (4) has no name, as when every line ends with a comma; ignored",
        )
    ]
    assert summary.rows["ehr_work_status"] == 6


def test_a_blank_column_name_elsewhere_is_refused(good_extract, db, db_state):
    header, rows = read_table(good_extract, "ehr_work_status")
    write_table(good_extract, "ehr_work_status", [*header[:2], " ", header[2]], [[*r[:2], "x", r[2]] for r in rows])
    assert refused(good_extract, db, db_state) == [
        Problem(
            E,
            "ehr_work_status.csv",
            "ehr_work_status",
            None,
            "blank_column_name",
            "column 3 of the header has no name; name it or remove the column",
        )
    ]


def test_extra_columns_are_a_warning_and_not_loaded(good_extract, tmp_path):
    add_column(good_extract, "ehr_pro", "comment", ["ok"] * 8)
    add_column(good_extract, "ehr_pro", "site", ["A"] * 8)
    summary = load_extract(good_extract, tmp_path / "new.duckdb", today=TODAY)
    assert summary.warnings == [
        Problem(
            W,
            "ehr_pro.csv",
            "ehr_pro",
            None,
            "extra_columns",
            "columns not in the contract are ignored: comment, site",
            count=2,
        )
    ]
    con = duckdb.connect(str(tmp_path / "new.duckdb"), read_only=True)
    assert [r[0] for r in con.execute("describe raw.ehr_pro").fetchall()] == [
        "person_id",
        "assessment_date",
        "instrument",
        "score",
    ]
    con.close()


def test_required_table_without_rows(good_extract, db, db_state):
    header, _ = read_table(good_extract, "eligibility")
    write_table(good_extract, "eligibility", header, [])
    problems = refused(good_extract, db, db_state)
    assert [p for p in problems if p.is_error] == [
        Problem(E, "eligibility.csv", "eligibility", None, "no_rows", "required table eligibility has no rows")
    ]
    # with no eligibility rows, every person elsewhere has none either
    assert [(p.table, p.count) for p in of_rule(problems, "orphan_person")] == [
        ("medical_claim", 3),
        ("pharmacy_claim", 3),
        ("ehr_encounter", 3),
        ("ehr_pro", 3),
        ("ehr_work_status", 3),
    ]


def test_optional_table_without_rows_is_a_warning_naming_what_is_unavailable(good_extract, tmp_path):
    header, _ = read_table(good_extract, "ehr_pro")
    write_table(good_extract, "ehr_pro", header, [])
    summary = load_extract(good_extract, tmp_path / "new.duckdb", today=TODAY)
    assert summary.warnings == [
        Problem(
            W,
            "ehr_pro.csv",
            "ehr_pro",
            None,
            "no_rows",
            "optional table ehr_pro has no rows, as if it were absent; unavailable: quality-of-life outcomes",
        )
    ]
    assert summary.rows["ehr_pro"] == 0


# --- de-identification ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("first_name", "a person's name"),
        ("Patient Name", "a person's name"),
        ("name", "a person's name"),
        ("ssn", "a social security number"),
        ("social_security_number", "a social security number"),
        ("phone_number", "a telephone number"),
        ("email", "an e-mail address"),
        ("street_address", "a street address"),
        ("address_line_1", "a street address"),
        ("zip5", "a 5-digit ZIP code"),
        ("zip", "a 5-digit ZIP code"),
        ("mrn", "a medical record number"),
        ("medical_record_number", "a medical record number"),
        ("dob", "a full date of birth"),
        ("date_of_birth", "a full date of birth"),
        ("birth_date", "a full date of birth"),
        ("zip3", None),
        ("birth_year", None),
        ("drug_name", None),
        ("person_id", None),
        ("instrument", None),
    ],
)
def test_identifier_column_names(name, reason):
    assert identifier_column_reason(name) == reason


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("SocialSecurityNumber", "a social security number"),
        ("socialsecuritynumber", "a social security number"),
        ("SSN", "a social security number"),
        ("member-ssn", "a social security number"),
        ("DateOfBirth", "a full date of birth"),
        ("dateofbirth", "a full date of birth"),
        ("PatientDOB", "a full date of birth"),
        ("Birth Date", "a full date of birth"),
        ("StreetAddress", "a street address"),
        ("Address1", "a street address"),
        ("ADDRESS_LINE2", "a street address"),
        ("PatientName", "a person's name"),
        ("firstName", "a person's name"),
        ("LASTNAME", "a person's name"),
        ("EmailAddress", "an e-mail address"),
        ("eMail", "an e-mail address"),
        ("HomePhone2", "a telephone number"),
        ("PhoneNumber", "a telephone number"),
        ("ZipCode", "a 5-digit ZIP code"),
        ("MedicalRecordNumber", "a medical record number"),
        ("MRN", "a medical record number"),
        ("Zip3", None),
        ("BirthYear", None),
        ("DrugName", None),
        ("PersonID", None),
        ("EncounterType", None),
    ],
)
def test_identifier_column_names_in_any_spelling(name, reason):
    assert identifier_column_reason(name) == reason


def test_camel_case_identifier_column_is_refused(good_extract, db, db_state):
    add_column(good_extract, "eligibility", "DateOfBirth", ["1980-02-03", "1975-05-06", "1975-05-06", "1990-07-08"])
    assert of_rule(refused(good_extract, db, db_state), "identifier_column") == [
        Problem(
            E,
            "eligibility.csv",
            "eligibility",
            "DateOfBirth",
            "identifier_column",
            "column name looks like a full date of birth, a direct identifier; drop the column or use --allow-identifiers",
        ),
    ]


def test_identifier_values_are_found_beyond_the_first_100000_rows(good_extract, db, db_state):
    header, rows = read_table(good_extract, "ehr_work_status")
    many = [[f"P00{1 + i % 3}", f"20{10 + i // 365 % 10}-01-01", "working", ""] for i in range(100_010)]
    many[100_003][3] = "ring (555) 123-4567"
    write_table(good_extract, "ehr_work_status", [*header, "note"], many)
    assert of_rule(refused(good_extract, db, db_state), "identifier_value") == [
        Problem(
            E,
            "ehr_work_status.csv",
            "ehr_work_status",
            "note",
            "identifier_value",
            "1 value in all 100,010 rows looks like a US telephone number, a direct identifier; remove or mask them,"
            " or use --allow-identifiers",
            (100_004,),
            ("xxxx (###) ###-####",),
        )
    ]


def test_identifier_values_in_extra_parquet_columns_are_refused(good_extract, db, db_state):
    parquet_parts(
        good_extract,
        "ehr_pro",
        "select *, 0 as visit from t limit 3",
        "select *, case when score = '7' then 'jo@example.com' end as contact, 1 as visit from t offset 3",
    )
    assert of_rule(refused(good_extract, db, db_state), "identifier_value") == [
        Problem(
            E,
            "ehr_pro/part-1.parquet",
            "ehr_pro",
            "contact",
            "identifier_value",
            "1 value in all 8 rows looks like an e-mail address, a direct identifier; remove or mask them,"
            " or use --allow-identifiers",
            (2,),
            ("xx@xxxxxxx.xxx",),
        )
    ]


def test_identifier_values_are_counted_exactly_where_their_cheap_screen_passes(good_extract, db, db_state):
    # Every value of "note" holds a character that can start an identifier ('-', '.', ' ', '@'), so the
    # screen passes on every row; only one value is an identifier, and only its pattern may count it.
    notes = ["see 12-3", "v1.2 ok", "a @ b", "ssn 123-45-6789", "x-ray 2.5 mm", "room 12", "3-4.5", "@home"]
    parquet_parts(
        good_extract,
        "ehr_pro",
        "select *, ["
        + ", ".join(f"'{n}'" for n in notes)
        + "][row_number() over (order by person_id, assessment_date, instrument)] as note from t"
        " order by person_id, assessment_date, instrument",
    )
    assert of_rule(refused(good_extract, db, db_state), "identifier_value") == [
        Problem(
            E,
            "ehr_pro/part-0.parquet",
            "ehr_pro",
            "note",
            "identifier_value",
            "1 value in all 8 rows looks like a social security number, a direct identifier; remove or mask them,"
            " or use --allow-identifiers",
            (4,),
            ("xxx ###-##-####",),
        )
    ]


def test_no_contract_column_looks_like_an_identifier():
    from ipm_outcomes.contract import TABLES

    assert [c.name for t in TABLES for c in t.columns if identifier_column_reason(c.name)] == []


def test_identifier_column_is_refused(good_extract, db, db_state):
    add_column(good_extract, "eligibility", "last_name", ["Smith", "Jones", "Jones", "Lee"])
    assert refused(good_extract, db, db_state) == [
        Problem(
            W,
            "eligibility.csv",
            "eligibility",
            None,
            "extra_columns",
            "columns not in the contract are ignored: last_name",
        ),
        Problem(
            E,
            "eligibility.csv",
            "eligibility",
            "last_name",
            "identifier_column",
            "column name looks like a person's name, a direct identifier; drop the column or use --allow-identifiers",
        ),
    ]


def test_identifier_column_allowed_loads_without_it(good_extract, tmp_path):
    add_column(good_extract, "eligibility", "last_name", ["Smith", "Jones", "Jones", "Lee"])
    summary = load_extract(good_extract, tmp_path / "new.duckdb", today=TODAY, allow_identifiers=True)
    assert of_rule(summary.warnings, "identifier_column") == [
        Problem(
            W,
            "eligibility.csv",
            "eligibility",
            "last_name",
            "identifier_column",
            "column name looks like a person's name, a direct identifier; loaded anyway: --allow-identifiers",
        )
    ]
    con = duckdb.connect(str(tmp_path / "new.duckdb"), read_only=True)
    assert "last_name" not in [r[0] for r in con.execute("describe raw.eligibility").fetchall()]
    assert con.execute("select allow_identifiers from meta.load").fetchone() == (True,)
    con.close()


def test_identifier_values_in_free_text_are_refused_and_masked(good_extract, db, db_state):
    add_column(good_extract, "ehr_encounter", "comment", ["", "call 555-123-4567 asap", "fine", "jane.doe@example.org"])
    set_cell(good_extract, "ehr_encounter", 3, "encounter_id", "123-45-6789")
    sample = "in all 4 rows looks like a"  # + "n e-mail ..." or " US telephone ..."
    todo = "a direct identifier; remove or mask them, or use --allow-identifiers"
    assert of_rule(refused(good_extract, db, db_state), "identifier_value") == [
        Problem(
            E,
            "ehr_encounter.csv",
            "ehr_encounter",
            "encounter_id",
            "identifier_value",
            f"1 value {sample} social security number, {todo}",
            (3,),
            ("###-##-####",),
            1,
        ),
        Problem(
            E,
            "ehr_encounter.csv",
            "ehr_encounter",
            "comment",
            "identifier_value",
            f"1 value {sample}n e-mail address, {todo}",
            (4,),
            ("xxxx.xxx@xxxxxxx.xxx",),
            1,
        ),
        Problem(
            E,
            "ehr_encounter.csv",
            "ehr_encounter",
            "comment",
            "identifier_value",
            f"1 value {sample} US telephone number, {todo}",
            (2,),
            ("xxxx ###-###-#### xxxx",),
            1,
        ),
    ]


def test_identifier_values_allowed_are_warnings(good_extract, tmp_path):
    set_cell(good_extract, "ehr_encounter", 3, "encounter_id", "123-45-6789")
    summary = load_extract(good_extract, tmp_path / "new.duckdb", today=TODAY, allow_identifiers=True)
    assert [(p.severity, p.rule, p.column, p.rows) for p in summary.warnings] == [
        (W, "identifier_value", "encounter_id", (3,))
    ]
    assert summary.warnings[0].message.endswith("a direct identifier; loaded anyway: --allow-identifiers")


# --- values ---------------------------------------------------------------------------------


def test_null_in_required_column(good_extract, db, db_state):
    set_cell(good_extract, "eligibility", 2, "person_id", "   ")
    assert refused(good_extract, db, db_state) == [
        Problem(
            E,
            "eligibility.csv",
            "eligibility",
            "person_id",
            "null",
            "1 row is empty; person_id must have a value",
            (2,),
        )
    ]


def test_first_diagnosis_must_be_present_unless_the_line_has_a_procedure(good_extract, db, db_state):
    # a procedure line (CPT 99442) without a diagnosis is a claim line all the same
    set_cell(good_extract, "medical_claim", 5, "diagnosis_code_1", "")
    assert validate_extract(good_extract, today=TODAY) == []
    set_cell(good_extract, "medical_claim", 5, "hcpcs_code", "")
    assert refused(good_extract, db, db_state) == [
        Problem(
            E,
            "medical_claim.csv",
            "medical_claim",
            "diagnosis_code_1",
            "null",
            "1 row is without a first diagnosis or a procedure code; diagnosis_code_1 must have a value",
            (5,),
        )
    ]


def test_types(good_extract, db, db_state):
    cases = [  # table, row, column, bad value, message; in the order reported (contract order)
        ("eligibility", 4, "birth_year", "1990.0", "1 value is not a whole number"),
        ("medical_claim", 3, "claim_line_number", "1.5", "1 value is not a whole number"),
        ("medical_claim", 2, "claim_start_date", "2021/03/02", "1 value is not an ISO date (YYYY-MM-DD)"),
        ("medical_claim", 3, "claim_end_date", "2021-4-10", "1 value is not an ISO date (YYYY-MM-DD)"),
        ("medical_claim", 2, "allowed_amount", "1,200.00", "1 value is not a number"),
        ("pharmacy_claim", 4, "claim_line_number", "99999999999", "1 value is not a whole number"),
        ("pharmacy_claim", 1, "dispensing_date", "03/03/2021", "1 value is not an ISO date (YYYY-MM-DD)"),
        ("pharmacy_claim", 2, "days_supply", "five", "1 value is not a whole number"),
        ("ndc_reference", 3, "is_opioid", "yes", "1 value is not a boolean (true/false)"),
        ("ndc_reference", 4, "mme_conversion_factor", "0x10", "1 value is not a number"),
        ("ehr_pro", 1, "assessment_date", "2021-02-30", "1 value is not an ISO date (YYYY-MM-DD)"),
        ("ehr_pro", 2, "score", "nan", "1 value is not a number"),
    ]
    for table, row, column, value, _ in cases:
        set_cell(good_extract, table, row, column, value)
    assert refused(good_extract, db, db_state) == [
        Problem(E, f"{table}.csv", table, column, "type", message, (row,), (value,))
        for table, row, column, value, message in cases
    ]


def test_numbers_must_be_finite(good_extract, db, db_state):
    set_cell(good_extract, "medical_claim", 2, "allowed_amount", "1e400")  # reads as inf
    set_cell(good_extract, "pharmacy_claim", 3, "quantity", "-1E999")
    set_cell(good_extract, "ehr_pro", 4, "score", "1e309")  # inf, not also outside the range
    set_cell(good_extract, "ndc_reference", 1, "strength_per_unit", "1e308")  # large, but finite
    message = "1 value is not a finite number (too large, infinite or NaN); amounts, quantities and scores must be finite"
    assert refused(good_extract, db, db_state) == [
        Problem(E, "medical_claim.csv", "medical_claim", "allowed_amount", "non_finite", message, (2,), ("1e400",)),
        Problem(E, "pharmacy_claim.csv", "pharmacy_claim", "quantity", "non_finite", message, (3,), ("-1E999",)),
        Problem(E, "ehr_pro.csv", "ehr_pro", "score", "non_finite", message, (4,), ("1e309",)),
    ]


def test_type_accepts_the_documented_spellings(good_extract):
    set_cell(good_extract, "ndc_reference", 1, "is_opioid", "TRUE")
    set_cell(good_extract, "ndc_reference", 3, "is_opioid", "0")
    set_cell(good_extract, "ehr_pro", 1, "score", "4.2e1")
    set_cell(good_extract, "medical_claim", 1, "claim_line_number", "+1")
    assert validate_extract(good_extract, today=TODAY) == []


def test_allowed_values_after_lower_casing(good_extract, db, db_state):
    set_cell(good_extract, "eligibility", 1, "gender", "Female")  # fine: lower-cased
    set_cell(good_extract, "eligibility", 3, "gender", "M")
    set_cell(good_extract, "eligibility", 4, "payer_type", "self-pay")
    assert refused(good_extract, db, db_state) == [
        Problem(
            E,
            "eligibility.csv",
            "eligibility",
            "gender",
            "allowed_values",
            "1 value is not one of male, female, unknown",
            (3,),
            ("m",),
        ),
        Problem(
            E,
            "eligibility.csv",
            "eligibility",
            "payer_type",
            "allowed_values",
            "1 value is not one of commercial, medicare, medicaid, workers_comp, other",
            (4,),
            ("self-pay",),
        ),
    ]


def test_code_shapes(good_extract, db, db_state):
    cases = [  # table, row, column, bad value, value after normalisation, code system
        ("medical_claim", 3, "place_of_service_code", "2", "2", "2-digit place-of-service"),
        ("medical_claim", 3, "rendering_npi", "132604521", "132604521", "10-digit NPI"),
        ("medical_claim", 3, "rendering_taxonomy_code", "208VP0014", "208VP0014", "NUCC taxonomy"),
        ("medical_claim", 2, "hcpcs_code", "7214", "7214", "CPT/HCPCS"),
        ("medical_claim", 1, "diagnosis_code_1", "545.0", "5450", "ICD-10-CM"),
        ("medical_claim", 4, "diagnosis_code_2", "M5", "M5", "ICD-10-CM"),
        ("pharmacy_claim", 2, "ndc_code", "1234-567-89", "123456789", "11-digit NDC"),
        ("ndc_reference", 2, "ndc_code", "0406051201", "0406051201", "11-digit NDC"),
        ("ehr_encounter", 1, "provider_taxonomy_code", "2O7Q00000X", "2O7Q00000X", "NUCC taxonomy"),
        ("ehr_encounter", 2, "primary_diagnosis_code", "M54-5", "M54-5", "ICD-10-CM"),
    ]
    for table, row, column, value, _, _ in cases:
        set_cell(good_extract, table, row, column, value)
    set_cell(good_extract, "medical_claim", 5, "hcpcs_code", "j1030")  # HCPCS level II, upper-cased: fine
    set_cell(good_extract, "ndc_reference", 5, "ndc_code", "68180-0513-01")  # 5-4-2 with hyphens: fine
    problems = refused(good_extract, db, db_state)
    assert [p for p in problems if p.is_error] == [
        Problem(
            E,
            f"{table}.csv",
            table,
            column,
            "code_shape",
            f"1 value is not a well-formed {system} code (checked after normalisation)",
            (row,),
            (shown,),
        )
        for table, row, column, _, shown, system in cases
    ]


def test_future_dates(good_extract, db, db_state):
    set_cell(good_extract, "ehr_pro", 1, "assessment_date", "2025-07-01")
    set_cell(good_extract, "eligibility", 3, "death_date", "2030-01-01")
    set_cell(good_extract, "ehr_pro", 2, "assessment_date", "2025-06-30")  # today itself is fine
    assert refused(good_extract, db, db_state) == [
        Problem(
            E,
            "eligibility.csv",
            "eligibility",
            "death_date",
            "future_date",
            "1 date is after today (2025-06-30)",
            (3,),
            ("2030-01-01",),
        ),
        Problem(
            E,
            "ehr_pro.csv",
            "ehr_pro",
            "assessment_date",
            "future_date",
            "1 date is after today (2025-06-30)",
            (1,),
            ("2025-07-01",),
        ),
    ]


def test_dates_before_1900_are_refused(good_extract, db, db_state):
    set_cell(good_extract, "medical_claim", 3, "claim_start_date", "1899-12-31")
    set_cell(good_extract, "ehr_work_status", 2, "status_date", "0001-01-01")
    set_cell(good_extract, "ehr_pro", 1, "assessment_date", "1900-01-01")  # the first day allowed
    message = "1 date is before 1900-01-01, too early to be real (a placeholder for an unknown date?)"
    assert refused(good_extract, db, db_state) == [
        Problem(E, "medical_claim.csv", "medical_claim", "claim_start_date", "early_date", message, (3,), ("1899-12-31",)),
        Problem(E, "ehr_work_status.csv", "ehr_work_status", "status_date", "early_date", message, (2,), ("0001-01-01",)),
    ]


def test_a_line_over_the_size_limit_is_refused(good_extract, db, db_state):
    set_cell(good_extract, "ehr_encounter", 2, "encounter_id", "E" + "x" * 4_000_000)
    problems = refused(good_extract, db, db_state)
    assert [(p.file, p.rule, p.rows, p.message) for p in problems] == [
        (
            "ehr_encounter.csv",
            "malformed_row",
            (2,),
            "1 line cannot be read as CSV (line size over maximum: Maximum line size of 2000000 bytes exceeded."
            " Actual Size:4000045 bytes.)",
        )
    ]


def test_date_order(good_extract, db, db_state):
    set_cell(good_extract, "eligibility", 3, "enrollment_end_date", "2021-07-31")
    set_cell(good_extract, "medical_claim", 4, "claim_end_date", "2021-02-14")
    set_cell(good_extract, "medical_claim", 1, "claim_end_date", "2021-03-02")  # same day is fine
    assert refused(good_extract, db, db_state) == [
        Problem(
            E,
            "eligibility.csv",
            "eligibility",
            "enrollment_end_date",
            "date_order",
            "1 row with enrollment_end_date before enrollment_start_date",
            (3,),
            ("2021-08-01 > 2021-07-31",),
        ),
        Problem(
            E,
            "medical_claim.csv",
            "medical_claim",
            "claim_end_date",
            "date_order",
            "1 row with claim_end_date before claim_start_date",
            (4,),
            ("2021-02-15 > 2021-02-14",),
        ),
    ]


def test_birth_year_range(good_extract, db, db_state):
    # 126 years before the load's year (2025) up to that year: 1899..2025
    set_cell(good_extract, "eligibility", 1, "birth_year", "1898")
    set_cell(good_extract, "eligibility", 4, "birth_year", "2026")
    assert refused(good_extract, db, db_state) == [
        Problem(
            E,
            "eligibility.csv",
            "eligibility",
            "birth_year",
            "birth_year_range",
            "2 values are outside 1899..2025",
            (1, 4),
            ("1898", "2026"),
            2,
        ),
    ]


def test_pro_score_ranges(good_extract, db, db_state):
    set_cell(good_extract, "ehr_pro", 3, "score", "120")  # odi 0..100
    set_cell(good_extract, "ehr_pro", 6, "score", "-0.7")  # eq5d_index -0.6..1
    set_cell(good_extract, "ehr_pro", 8, "score", "999")  # sf36_pcs: not checked
    set_cell(good_extract, "ehr_pro", 7, "instrument", "PHQ9")  # lower-cased, 12 is within 0..27
    assert refused(good_extract, db, db_state) == [
        Problem(E, "ehr_pro.csv", "ehr_pro", "score", "pro_range", "1 odi score is outside 0..100", (3,), ("120",)),
        Problem(
            E, "ehr_pro.csv", "ehr_pro", "score", "pro_range", "1 eq5d_index score is outside -0.6..1", (6,), ("-0.7",)
        ),
    ]


def test_duplicate_keys(good_extract, db, db_state):
    cases = [  # table, row, column, value making the row repeat an earlier key, key, example
        (
            "eligibility",
            3,
            "enrollment_start_date",
            "2021-01-01",
            "person_id, enrollment_start_date",
            "P002, 2021-01-01 (first at row 2)",
        ),
        ("medical_claim", 2, "claim_line_number", "01", "claim_id, claim_line_number", "C001, 1 (first at row 1)"),
        ("pharmacy_claim", 3, "claim_id", " R002 ", "claim_id, claim_line_number", "R002, 1 (first at row 2)"),
        ("ndc_reference", 4, "ndc_code", "00591-0385-01", "ndc_code", "00591038501 (first at row 1)"),
        ("ehr_encounter", 4, "encounter_id", "E002", "encounter_id", "E002 (first at row 2)"),
    ]
    for table, row, column, value, _, _ in cases:
        set_cell(good_extract, table, row, column, value)
    set_cell(good_extract, "eligibility", 3, "enrollment_end_date", "2021-12-31")  # keep the spans ordered
    assert refused(good_extract, db, db_state) == [
        Problem(
            E,
            f"{table}.csv",
            table,
            key,
            "duplicate_key",
            f"1 row repeats the key ({key}) of an earlier row; the key must be unique",
            (row,),
            (example,),
        )
        for table, row, _, _, key, example in cases
    ]


def test_orphan_persons_are_a_warning(good_extract, tmp_path):
    set_cell(good_extract, "ehr_pro", 2, "person_id", "P999")
    set_cell(good_extract, "ehr_pro", 4, "person_id", "P999")
    set_cell(good_extract, "pharmacy_claim", 5, "person_id", "P777")
    summary = load_extract(good_extract, tmp_path / "new.duckdb", today=TODAY)
    assert summary.warnings == [
        Problem(
            W,
            "pharmacy_claim.csv",
            "pharmacy_claim",
            "person_id",
            "orphan_person",
            "1 person with no eligibility row; their pharmacy_claim rows cannot enter the cohort (1 row)",
            (5,),
            ("P777",),
            1,
        ),
        Problem(
            W,
            "ehr_pro.csv",
            "ehr_pro",
            "person_id",
            "orphan_person",
            "1 person with no eligibility row; their ehr_pro rows cannot enter the cohort (2 rows)",
            (2, 4),
            ("P999",),
            1,
        ),
    ]
    assert summary.rows["ehr_pro"] == 8


# --- reporting ------------------------------------------------------------------------------


def test_every_problem_at_once_and_the_one_line_message(good_extract, db, db_state):
    set_cell(good_extract, "eligibility", 2, "person_id", "")
    set_cell(good_extract, "medical_claim", 3, "claim_start_date", "2021-13-01")
    set_cell(good_extract, "ehr_work_status", 6, "work_status", "gone fishing")
    set_cell(good_extract, "ehr_pro", 1, "person_id", "P404")
    before = db_state(db)
    with pytest.raises(ValidationFailed) as info:
        load_extract(good_extract, db, today=TODAY)
    assert db_state(db) == before
    assert [(p.severity, p.file, p.column, p.rows, p.rule) for p in info.value.problems] == [
        (E, "eligibility.csv", "person_id", (2,), "null"),
        (E, "medical_claim.csv", "claim_start_date", (3,), "type"),
        (W, "ehr_pro.csv", "person_id", (1,), "orphan_person"),
        (E, "ehr_work_status.csv", "work_status", (6,), "allowed_values"),
    ]
    assert str(info.value) == (
        f"{good_extract}: extract breaks the input contract (3 errors, 1 warning); first: eligibility.csv, "
        "column person_id, row 2: 1 row is empty; person_id must have a value (rule null); fix the extract and "
        "load again (every problem: --report FILE; columns: data/README.md)"
    )
    assert "\n" not in str(info.value)


def test_validate_extract_reports_what_the_load_reports(good_extract, db, db_state):
    set_cell(good_extract, "eligibility", 2, "gender", "x")
    add_column(good_extract, "ehr_pro", "email", ["a@b.org"] * 8)
    set_cell(good_extract, "ehr_pro", 2, "person_id", "P999")
    problems = refused(good_extract, db, db_state)
    # problems with the files and headers of all tables come first, then the rows of each table in turn
    assert [p.rule for p in problems] == [
        "extra_columns",
        "identifier_column",
        "allowed_values",
        "identifier_value",
        "orphan_person",
    ]
    assert validate_extract(good_extract, today=TODAY) == problems


def test_examples_are_the_first_five_and_count_is_all(good_extract):
    header, rows = read_table(good_extract, "ehr_pro")
    extra = [["P001", f"2021-07-{d:02d}", "nrs_pain", str(10 + d)] for d in range(1, 8)]
    write_table(good_extract, "ehr_pro", header, rows + extra)
    assert validate_extract(good_extract, today=TODAY) == [
        Problem(
            E,
            "ehr_pro.csv",
            "ehr_pro",
            "score",
            "pro_range",
            "7 nrs_pain scores are outside 0..10",
            (9, 10, 11, 12, 13),
            ("11", "12", "13", "14", "15"),
            7,
        )
    ]


def test_gzip_and_parquet_problems_name_their_file_and_row(good_extract):
    header, rows = read_table(good_extract, "ehr_work_status")
    rows[4][2] = "sabbatical"
    (good_extract / "ehr_work_status.csv").unlink()
    with gzip.open(good_extract / "ehr_work_status.csv.gz", "wt", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows([header, *rows])
    set_cell(good_extract, "ehr_pro", 3, "score", "101")
    con = duckdb.connect()
    part = good_extract / "ehr_pro"
    part.mkdir()
    con.execute(
        f"copy (select * from read_csv('{good_extract / 'ehr_pro.csv'}', all_varchar=true) limit 2)"
        f" to '{part / 'part-0.parquet'}'"
    )
    con.execute(
        f"copy (select * from read_csv('{good_extract / 'ehr_pro.csv'}', all_varchar=true) offset 2)"
        f" to '{part / 'part-1.parquet'}'"
    )
    (good_extract / "ehr_pro.csv").unlink()
    assert [(p.file, p.column, p.rows, p.rule) for p in validate_extract(good_extract, today=TODAY)] == [
        ("ehr_pro/part-1.parquet", "score", (1,), "pro_range"),
        ("ehr_work_status.csv.gz", "work_status", (5,), "allowed_values"),
    ]


def test_duplicates_far_apart_name_their_first_row(good_extract):
    header, rows = read_table(good_extract, "ehr_encounter")
    write_table(good_extract, "ehr_encounter", header, rows + [list(r) for r in rows])
    assert validate_extract(good_extract, today=TODAY) == [
        Problem(
            E,
            "ehr_encounter.csv",
            "ehr_encounter",
            "encounter_id",
            "duplicate_key",
            "4 rows repeat the key (encounter_id) of an earlier row; the key must be unique",
            (5, 6, 7, 8),
            ("E001 (first at row 1)", "E002 (first at row 2)", "E003 (first at row 3)", "E004 (first at row 4)"),
            4,
        )
    ]


def test_duplicates_across_parquet_parts_name_both_files(good_extract):
    part = good_extract / "ehr_encounter"
    part.mkdir()
    source = f"read_csv('{good_extract / 'ehr_encounter.csv'}', all_varchar=true)"
    duckdb.execute(f"copy (select * from {source}) to '{part / 'part-0.parquet'}'")
    duckdb.execute(f"copy (select * from {source} where encounter_id = 'E003') to '{part / 'part-1.parquet'}'")
    (good_extract / "ehr_encounter.csv").unlink()
    assert validate_extract(good_extract, today=TODAY) == [
        Problem(
            E,
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


# --- parquet parts whose schema drifted -----------------------------------------------------


def parquet_parts(extract: Path, table: str, *parts: str) -> None:
    """Replace ``<table>.csv`` by a folder of parquet parts, one per SELECT over the CSV (as ``t``)."""
    folder = extract / table
    folder.mkdir()
    con = duckdb.connect()
    con.execute(f"create view t as select * from read_csv('{extract / table}.csv', all_varchar=true)")
    for i, select in enumerate(parts):
        con.execute(f"copy ({select}) to '{folder / f'part-{i}.parquet'}'")
    con.close()
    (extract / f"{table}.csv").unlink()


def test_a_part_without_a_column_is_refused(good_extract, db, db_state):
    parquet_parts(
        good_extract,
        "medical_claim",
        "select * from t where claim_id <= 'C002'",
        "select * exclude (paid_amount) from t where claim_id > 'C002'",
    )
    assert refused(good_extract, db, db_state) == [
        Problem(
            E,
            "medical_claim/part-1.parquet",
            "medical_claim",
            "paid_amount",
            "part_schema",
            "column paid_amount is missing from this part (medical_claim/part-0.parquet has it); every part must "
            "carry every column",
        )
    ]


def test_a_part_with_another_type_is_refused(good_extract, db, db_state):
    parquet_parts(
        good_extract,
        "ehr_pro",
        "select * replace (cast(score as double) as score) from t where assessment_date < '2021-06-01'",
        "select * from t where assessment_date >= '2021-06-01'",
        "select * replace (cast(score as float) as score) from t where false",
    )
    assert refused(good_extract, db, db_state) == [
        Problem(
            E,
            "ehr_pro/part-1.parquet",
            "ehr_pro",
            "score",
            "part_schema",
            "column score is VARCHAR in this part but DOUBLE in ehr_pro/part-0.parquet; every part must give a "
            "column the same kind of type",
        )
    ]


def test_parts_may_differ_in_later_diagnosis_columns_with_a_warning(good_extract, tmp_path):
    parquet_parts(
        good_extract,
        "medical_claim",
        "select * from t where claim_id <= 'C002'",
        "select * exclude (diagnosis_code_3) from t where claim_id > 'C002'",
    )
    summary = load_extract(good_extract, tmp_path / "new.duckdb", today=TODAY)
    assert summary.warnings == [
        Problem(
            W,
            "medical_claim/part-1.parquet",
            "medical_claim",
            "diagnosis_code_3",
            "part_schema",
            "column diagnosis_code_3 is missing from this part (medical_claim/part-0.parquet has it); read as empty",
        )
    ]
    assert summary.rows["medical_claim"] == 5
