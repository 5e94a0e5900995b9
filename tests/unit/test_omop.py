"""OMOP CDM adapter: hand-made CDM miniatures, one per mapping rule, with the exact rows expected.

Each miniature is written to tmp_path as CSV (upper- or lower-case names), CSV.gz, Parquet or a DuckDB
file; :func:`map_omop_to_extract` must produce exactly the contract rows listed and report exactly the
rows it could not map.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
from pathlib import Path

import duckdb
import pytest

from ipm_outcomes import db, omop
from ipm_outcomes.contract import TABLES_BY_NAME
from ipm_outcomes.errors import IpmError
from ipm_outcomes.portable_sql import build_order

D = dt.date

PERSON = [
    {"person_id": 1, "gender_concept_id": 8507, "year_of_birth": 1970},
    {"person_id": 2, "gender_concept_id": 8532, "year_of_birth": 1985},
]
PERIODS = [
    {
        "observation_period_id": 11,
        "person_id": 1,
        "observation_period_start_date": "2019-01-01",
        "observation_period_end_date": "2021-12-31",
    },
    {
        "observation_period_id": 12,
        "person_id": 2,
        "observation_period_start_date": "2020-01-01",
        "observation_period_end_date": "2020-12-31",
    },
]
BASE = {"person": PERSON, "observation_period": PERIODS}

# Vocabulary rows the miniatures share: concept_id, vocabulary_id, concept_code.
CONCEPTS = [
    (4001, "ICD10CM", "M54.50"),
    (4002, "ICD10CM", "M54.16"),
    (4003, "ICD10CM", "G89.29"),
    (4010, "SNOMED", "279039007"),  # low back pain: M54.50 maps to it
    (4011, "SNOMED", "23056005"),  # sciatica: M54.16 and G89.29 both map to it (made up, to test ambiguity)
    (4012, "SNOMED", "38341003"),  # no ICD-10-CM maps to it
    (5001, "CPT4", "64483"),
    (5002, "HCPCS", "J1030"),
    (5003, "SNOMED", "231249005"),
    (5004, "CPT4", "97110"),
    (5005, "SNOMED", "229070002"),  # CPT4 97110 maps to it
    (6001, "NDC", "00406052301"),
    (6002, "RxNorm", "1049621"),
    (6003, "NDC", "00591555301"),  # maps to RxNorm 6002
    (6004, "RxNorm", "197696"),
    (7001, "LOINC", "44261-6"),
    (7002, "LOINC", "67875-5"),
    (7003, "LOINC", "LA17957-4"),
    (7004, "LOINC", "2345-7"),
    (8001, "Medicare Specialty", "09"),
    (8002, "NUCC", "207LP2900X"),
    (8003, "Medicare Specialty", "06"),
    (9001, "SOPT", "95"),
    (9002, "SOPT", "953"),
    (9003, "SOPT", "1"),
]
RELATIONSHIPS = [
    (4001, 4010, "Maps to"),
    (4002, 4011, "Maps to"),
    (4003, 4011, "Maps to"),
    (5004, 5005, "Maps to"),
    (6003, 6002, "Maps to"),
]


def vocabulary() -> dict[str, list[dict]]:
    return {
        "concept": [{"concept_id": i, "vocabulary_id": v, "concept_code": c} for i, v, c in CONCEPTS],
        "concept_relationship": [
            {"concept_id_1": a, "concept_id_2": b, "relationship_id": r, "invalid_reason": None}
            for a, b, r in RELATIONSHIPS
        ],
    }


def write_cdm(
    folder: Path,
    tables: dict[str, list[dict]],
    *,
    fmt: str = "csv",
    upper_names: bool = False,
    upper_headers: bool = False,
    headers: dict[str, list[str]] | None = None,
) -> Path:
    """Write CDM tables as <name>.csv / .csv.gz / .parquet; empty tables need ``headers``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in tables.items():
        columns = list(rows[0]) if rows else list((headers or {})[name])
        for row in rows:
            for key in row:
                if key not in columns:
                    columns.append(key)
        header = [c.upper() if upper_headers else c for c in columns]
        stem = name.upper() if upper_names else name
        if fmt == "parquet":
            con = duckdb.connect()
            con.execute(
                "create table t (" + ", ".join(f'"{h}" varchar' for h in header) + ")"
            )
            con.executemany(
                f"insert into t values ({', '.join('?' for _ in header)})",
                [[None if r.get(c) is None else str(r.get(c)) for c in columns] for r in rows],
            )
            con.execute(f"copy t to '{folder / (stem + '.parquet')}' (format parquet)")
            con.close()
            continue
        path = folder / f"{stem}.csv{'.gz' if fmt == 'csv.gz' else ''}"
        opener = gzip.open if fmt == "csv.gz" else open
        with opener(path, "wt", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            for row in rows:
                writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])
    return folder


def read_extract(folder: Path, table: str) -> list[tuple]:
    """Rows of one extract table, sorted."""
    path = folder / f"{table}.parquet"
    con = duckdb.connect()
    rows = con.execute(f"select * from read_parquet('{path}')").fetchall()
    con.close()
    return sorted(rows, key=lambda r: tuple("" if v is None else str(v) for v in r))


def read_columns(folder: Path, table: str) -> list[str]:
    con = duckdb.connect()
    names = [r[0] for r in con.execute(f"describe select * from read_parquet('{folder / (table + '.parquet')}')").fetchall()]
    con.close()
    return names


def unmapped(report: omop.OmopMappingReport) -> set[tuple]:
    return {(u.source_table, u.target_table, u.reason, u.consequence, u.rows, u.example_source_values) for u in report.unmapped}


def run(tmp_path: Path, tables: dict, **write_kw) -> tuple[omop.OmopMappingReport, Path]:
    source = write_cdm(tmp_path / "cdm", tables, **write_kw)
    out = tmp_path / "extract"
    return omop.map_omop_to_extract(source, out), out


# --- eligibility -----------------------------------------------------------------------------------------


def test_person_and_observation_period_become_eligibility_spans(tmp_path):
    tables = {
        "person": [
            {"person_id": 1, "gender_concept_id": 8507, "year_of_birth": 1970, "location_id": 1},
            {"person_id": 2, "gender_concept_id": 0, "year_of_birth": 1985, "gender_source_value": "F"},
            {"person_id": 3, "gender_concept_id": 0, "year_of_birth": 1990, "gender_source_value": "X"},
            {"person_id": 4, "gender_concept_id": 8532, "year_of_birth": None},
            {"person_id": 5, "gender_concept_id": 8532, "year_of_birth": 1960},
        ],
        "observation_period": [
            {"person_id": 1, "observation_period_start_date": "2018-01-01", "observation_period_end_date": "2018-12-31"},
            {"person_id": 1, "observation_period_start_date": "2020-01-01", "observation_period_end_date": "2021-06-30"},
            {"person_id": 2, "observation_period_start_date": "20200301", "observation_period_end_date": "2020-12-31 00:00:00"},
            {"person_id": 3, "observation_period_start_date": "2020-01-01", "observation_period_end_date": "2020-12-31"},
            {"person_id": 4, "observation_period_start_date": "2020-01-01", "observation_period_end_date": "2020-12-31"},
            {"person_id": 9, "observation_period_start_date": "2020-01-01", "observation_period_end_date": "2020-12-31"},
            {"person_id": 3, "observation_period_start_date": "2022-01-01", "observation_period_end_date": "2021-01-01"},
        ],
        "death": [{"person_id": 1, "death_date": "2021-06-30"}, {"person_id": 9, "death_date": "2020-05-05"}],
        "location": [{"location_id": 1, "state": "oh"}],
    }
    report, out = run(tmp_path, tables)
    assert read_extract(out, "eligibility") == [
        ("1", "male", 1970, D(2021, 6, 30), D(2018, 1, 1), D(2018, 12, 31), "other", "OH"),
        ("1", "male", 1970, D(2021, 6, 30), D(2020, 1, 1), D(2021, 6, 30), "other", "OH"),
        ("2", "female", 1985, None, D(2020, 3, 1), D(2020, 12, 31), "other", None),
        ("3", "unknown", 1990, None, D(2020, 1, 1), D(2020, 12, 31), "other", None),
    ]
    assert read_columns(out, "eligibility") == [
        "person_id", "gender", "birth_year", "death_date", "enrollment_start_date", "enrollment_end_date",
        "payer_type", "state",
    ]  # fmt: skip
    assert unmapped(report) == {
        ("person", "eligibility", "year_of_birth missing or unreadable", "row not loaded", 1, ("4",)),
        ("person", "eligibility", "person has no usable observation period (never enrolled)", "row not loaded", 1, ("5",)),
        ("observation_period", "eligibility", "person not loaded (see person)", "row not loaded", 1, ("4",)),
        ("observation_period", "eligibility", "person_id not in the person table", "row not loaded", 1, ("9",)),
        ("observation_period", "eligibility", "observation period ends before it starts", "row not loaded", 1, ("3",)),
        ("death", "eligibility", "person_id not in the person table or not enrolled", "row not loaded", 1, ("9",)),
    }
    assert report.mapped_rows("person", "eligibility") == 3
    assert {(m.path, m.rows) for m in report.mapped if m.source_table == "person"} == {
        ("gender_concept_id", 1),
        ("gender_source_value", 1),
        ("gender unknown", 1),
    }


def test_payer_type_from_the_payer_plan_period_that_overlaps_most(tmp_path):
    tables = {
        **BASE,
        **vocabulary(),
        "payer_plan_period": [
            # person 1: workers' comp (SOPT 953, longest prefix 95) for most of 2019-2021, Medicare briefly
            {"person_id": 1, "payer_plan_period_start_date": "2019-01-01", "payer_plan_period_end_date": "2021-06-30", "payer_concept_id": 9002},
            {"person_id": 1, "payer_plan_period_start_date": "2021-07-01", "payer_plan_period_end_date": "2021-12-31", "payer_concept_id": 9003},
            # person 2: only text
            {"person_id": 2, "payer_plan_period_start_date": "2020-01-01", "payer_plan_period_end_date": "2020-12-31", "payer_concept_id": 0, "payer_source_value": "Medicaid"},
        ],
    }  # fmt: skip
    report, out = run(tmp_path, tables)
    assert [(r[0], r[6]) for r in read_extract(out, "eligibility")] == [("1", "workers_comp"), ("2", "medicaid")]
    assert {(m.path, m.rows) for m in report.mapped if m.source_table == "observation_period"} == {
        ("payer_plan_period", 2)
    }


# --- source forms ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "write_kw",
    [
        {"fmt": "csv"},
        {"fmt": "csv", "upper_names": True, "upper_headers": True},
        {"fmt": "csv.gz", "upper_headers": True},
        {"fmt": "parquet", "upper_names": True},
    ],
    ids=["csv-lower", "csv-upper", "csv.gz", "parquet"],
)
def test_any_file_form_and_letter_case_maps_the_same(tmp_path, write_kw):
    tables = {
        **BASE,
        **vocabulary(),
        "condition_occurrence": [
            {"condition_occurrence_id": 1, "person_id": 1, "condition_start_date": "2020-02-03", "condition_source_value": "M54.50"}
        ],
    }  # fmt: skip
    report, out = run(tmp_path, tables, **write_kw)
    assert read_extract(out, "eligibility") == [
        ("1", "male", 1970, None, D(2019, 1, 1), D(2021, 12, 31), "other", None),
        ("2", "female", 1985, None, D(2020, 1, 1), D(2020, 12, 31), "other", None),
    ]
    assert [r[:6] + (r[9], r[13]) for r in read_extract(out, "medical_claim")] == [
        ("omop-1-d20200203", 1, "1", "professional", D(2020, 2, 3), D(2020, 2, 3), None, "M5450")
    ]
    assert report.unmapped == ()
    assert "death" in report.absent_tables and "person" not in report.absent_tables


def test_header_only_tables_and_missing_optional_tables_are_empty(tmp_path):
    tables = {**BASE, "death": [], "drug_exposure": [], "measurement": []}
    headers = {
        "death": ["person_id", "death_date"],
        "drug_exposure": ["drug_exposure_id", "person_id", "drug_exposure_start_date"],
        "measurement": ["MEASUREMENT_ID", "PERSON_ID", "MEASUREMENT_DATE"],
    }
    report, out = run(tmp_path, tables, headers=headers)
    assert report.source_rows == {"person": 2, "observation_period": 2, "death": 0, "drug_exposure": 0, "measurement": 0}
    assert set(report.written) == {"eligibility", "medical_claim"}
    assert report.written["medical_claim"] == 0
    assert read_extract(out, "medical_claim") == []
    assert set(report.not_written) == {"pharmacy_claim", "ndc_reference", "ehr_encounter", "ehr_pro", "ehr_work_status"}
    for table in report.not_written:
        assert not (out / f"{table}.parquet").exists()
    assert "condition_occurrence" in report.absent_tables and "death" not in report.absent_tables
    assert report.unmapped == ()


def test_duckdb_file_with_cdm_and_vocabulary_in_named_schemas(tmp_path):
    path = tmp_path / "cdm.duckdb"
    con = duckdb.connect(str(path))
    con.execute("create schema cdm5; create schema vocab")
    con.execute("create table cdm5.PERSON (PERSON_ID bigint, GENDER_CONCEPT_ID bigint, YEAR_OF_BIRTH bigint)")
    con.execute("insert into cdm5.PERSON values (1, 8532, 1980)")
    con.execute(
        "create table cdm5.observation_period (person_id bigint, observation_period_start_date date,"
        " observation_period_end_date varchar)"
    )
    con.execute("insert into cdm5.observation_period values (1, date '2020-01-01', '2020-12-31')")
    con.execute(
        "create table cdm5.condition_occurrence (condition_occurrence_id double, person_id bigint,"
        " condition_concept_id bigint, condition_start_date timestamp, visit_occurrence_id double)"
    )
    con.execute("insert into cdm5.condition_occurrence values (1.0, 1, 4010, timestamp '2020-05-01 08:00', 7.0)")
    # An empty table stored as its header row (how the Eunomia DuckDB file holds them).
    con.execute("create table cdm5.death (column0 varchar, column1 varchar)")
    con.execute("insert into cdm5.death values ('PERSON_ID', 'DEATH_DATE')")
    con.execute("create table vocab.concept (concept_id bigint, vocabulary_id varchar, concept_code varchar)")
    con.executemany("insert into vocab.concept values (?, ?, ?)", CONCEPTS)
    con.execute("create table vocab.concept_relationship (concept_id_1 bigint, concept_id_2 bigint, relationship_id varchar)")
    con.executemany("insert into vocab.concept_relationship values (?, ?, ?)", RELATIONSHIPS)
    con.close()
    out = tmp_path / "extract"
    report = omop.map_omop_to_extract(path, out)
    assert report.cdm_schema == "cdm5" and report.source_kind == "DuckDB file"
    assert read_extract(out, "eligibility") == [("1", "female", 1980, None, D(2020, 1, 1), D(2020, 12, 31), "other", None)]
    claim = read_extract(out, "medical_claim")
    assert [(r[0], r[4], r[13]) for r in claim] == [("omop-1-v7", D(2020, 5, 1), "M5450")]
    assert report.source_rows["death"] == 0
    assert report.notes == ("cdm.duckdb:cdm5.death holds only a header row: read as an empty table",)
    assert {(m.source_table, m.path, m.rows) for m in report.mapped if m.target_table == "medical_claim"} == {
        ("condition_occurrence", "condition_concept_id in a study value set (Maps to)", 1)
    }


def test_duckdb_file_with_two_cdm_schemas_needs_a_choice(tmp_path):
    path = tmp_path / "two.duckdb"
    con = duckdb.connect(str(path))
    for schema, year in (("a", 1970), ("b", 1990)):
        con.execute(f"create schema {schema}")
        con.execute(f"create table {schema}.person as select 1 as person_id, 8507 as gender_concept_id, {year} as year_of_birth")
        con.execute(
            f"create table {schema}.observation_period as select 1 as person_id,"
            " date '2020-01-01' as observation_period_start_date, date '2020-12-31' as observation_period_end_date"
        )
    con.close()
    with pytest.raises(IpmError, match=r"several schemas hold a person table \(a, b\)"):
        omop.map_omop_to_extract(path, tmp_path / "x")
    report = omop.map_omop_to_extract(path, tmp_path / "x", cdm_schema="b")
    assert read_extract(tmp_path / "x", "eligibility")[0][2] == 1990
    assert report.cdm_schema == "b"


def test_source_errors_say_what_and_where(tmp_path):
    with pytest.raises(IpmError, match="no such folder or DuckDB file"):
        omop.map_omop_to_extract(tmp_path / "nowhere", tmp_path / "x")
    write_cdm(tmp_path / "noperiod", {"person": PERSON})
    with pytest.raises(IpmError, match="OMOP source has no observation_period table; it is required"):
        omop.map_omop_to_extract(tmp_path / "noperiod", tmp_path / "x")
    write_cdm(tmp_path / "twice", BASE)
    write_cdm(tmp_path / "twice", {"person": PERSON}, fmt="parquet", upper_names=True)
    with pytest.raises(IpmError, match=r"CDM table person is given more than once \(PERSON.parquet, person.csv\)"):
        omop.map_omop_to_extract(tmp_path / "twice", tmp_path / "x")
    write_cdm(tmp_path / "nocol", {**BASE, "condition_occurrence": [{"condition_occurrence_id": 1, "person_id": 1}]})
    with pytest.raises(IpmError, match=r"condition_occurrence.csv: CDM table condition_occurrence has no column condition_start_date"):
        omop.map_omop_to_extract(tmp_path / "nocol", tmp_path / "x")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(IpmError, match="neither a folder of CDM tables nor a DuckDB database file"):
        omop.map_omop_to_extract(text, tmp_path / "x")


# --- conditions and procedures -> medical_claim ----------------------------------------------------------


def test_conditions_get_icd10cm_from_the_vocabulary_never_from_the_code_shape(tmp_path):
    concepts = [
        (4020, "ICD9CM", "724.2"),  # an ICD-9-CM source concept whose standard concept is low back pain
        (4005, "ICD10CM", "R52"),  # illustrative: a code of no study value set mapping to 4015
        (4015, "SNOMED", "22253000"),
    ]
    tables = {**BASE, **vocabulary()}
    tables["concept"] += [{"concept_id": i, "vocabulary_id": v, "concept_code": c} for i, v, c in concepts]
    tables["concept_relationship"] += [{"concept_id_1": 4005, "concept_id_2": 4015, "relationship_id": "Maps to"}]
    tables["condition_occurrence"] = [
        # source value that the vocabulary holds as an ICD10CM code, no source concept
        {"condition_occurrence_id": 1, "person_id": 1, "condition_start_date": "2020-01-10", "condition_source_value": "m54.16", "condition_source_concept_id": 0},
        # ICD10CM source concept wins over the source value
        {"condition_occurrence_id": 2, "person_id": 1, "condition_start_date": "2020-01-11", "condition_source_value": "LBP", "condition_source_concept_id": 4001},
        # SNOMED standard concept in the lbp value set through M54.50's Maps to
        {"condition_occurrence_id": 3, "person_id": 1, "condition_start_date": "2020-01-12", "condition_concept_id": 4010, "condition_source_value": "279039007"},
        # M54.16 (lbp, radiculopathy) and G89.29 (no value set) map to 4011: carried as M54.16, the value-set code
        {"condition_occurrence_id": 4, "person_id": 1, "condition_start_date": "2020-01-13", "condition_concept_id": 4011},
        # ICD-9-CM source concept: not ICD-10-CM, loaded through its standard concept
        {"condition_occurrence_id": 9, "person_id": 1, "condition_start_date": "2020-01-16", "condition_concept_id": 4010, "condition_source_concept_id": 4020, "condition_source_value": "724.2"},
        # a standard concept of no value set: the ICD10CM code that maps to it
        {"condition_occurrence_id": 10, "person_id": 1, "condition_start_date": "2020-01-17", "condition_concept_id": 4015},
        # a SNOMED source concept says the ICD-looking source value is not ICD-10-CM; nothing maps to 4012
        {"condition_occurrence_id": 5, "person_id": 2, "condition_start_date": "2020-01-14", "condition_concept_id": 4012, "condition_source_value": "A12", "condition_source_concept_id": 4012},
        {"condition_occurrence_id": 6, "person_id": 2, "condition_start_date": "2020-01-15", "condition_source_value": "38341003"},
        # ICD-9-CM V and E codes have the ICD-10-CM shape; with an unknown source concept they are refused
        {"condition_occurrence_id": 11, "person_id": 2, "condition_start_date": "2020-01-15", "condition_source_value": "V49.87", "condition_source_concept_id": 44830000},
        {"condition_occurrence_id": 12, "person_id": 2, "condition_start_date": "2020-01-15", "condition_source_value": "E879.8", "condition_source_concept_id": 0},
        # a source value the vocabulary holds as ICD-9-CM only, with no standard concept
        {"condition_occurrence_id": 13, "person_id": 2, "condition_start_date": "2020-01-15", "condition_source_value": "724.2", "condition_source_concept_id": 0},
        {"condition_occurrence_id": 7, "person_id": 8, "condition_start_date": "2020-01-15", "condition_source_value": "M54.50"},
        {"condition_occurrence_id": 8, "person_id": 2, "condition_start_date": "not a date", "condition_source_value": "M54.50"},
    ]  # fmt: skip
    report, out = run(tmp_path, tables)
    claims = [(r[0], r[4], *r[13:]) for r in read_extract(out, "medical_claim")]
    assert claims == [
        ("omop-1-d20200110", D(2020, 1, 10), "M5416"),
        ("omop-1-d20200111", D(2020, 1, 11), "M5450"),
        ("omop-1-d20200112", D(2020, 1, 12), "M5450"),
        ("omop-1-d20200113", D(2020, 1, 13), "M5416"),
        ("omop-1-d20200116", D(2020, 1, 16), "M5450"),
        ("omop-1-d20200117", D(2020, 1, 17), "R52"),
        # a standard concept of no value set that no ICD10CM code maps to: kept as OMOP<concept_id>
        ("omop-2-d20200114", D(2020, 1, 14), "OMOP4012"),
    ]
    assert {(m.path, m.rows) for m in report.mapped if m.source_table == "condition_occurrence"} == {
        ("condition_source_value (an ICD10CM code of the vocabulary)", 1),
        ("condition_source_concept_id", 1),
        ("condition_concept_id in a study value set (Maps to)", 3),
        ("concept_relationship Maps to", 1),
        ("condition_concept_id in no study value set (kept as OMOP<id>)", 1),
    }
    unknown = (
        "no ICD-10-CM code (source vocabulary: unknown (no source concept; the source value is no code of the"
        " vocabulary)) and no standard concept"
    )
    assert unmapped(report) == {
        ("condition_occurrence", "medical_claim", unknown, "row not loaded", 3, ("38341003", "E879.8", "V49.87")),
        ("condition_occurrence", "medical_claim",
         "no ICD-10-CM code (source vocabulary: source value found in ICD9CM) and no standard concept",
         "row not loaded", 1, ("724.2",)),
        ("condition_occurrence", "medical_claim", "person_id not in the person table", "row not loaded", 1, ("M54.50",)),
        ("condition_occurrence", "medical_claim", "condition_start_date missing or unreadable", "row not loaded", 1, ("M54.50",)),
    }  # fmt: skip


def test_a_visit_is_one_claim_with_procedure_lines_and_ranked_diagnoses(tmp_path):
    tables = {
        **BASE,
        **vocabulary(),
        "visit_occurrence": [
            {"visit_occurrence_id": 70, "person_id": 1, "visit_concept_id": 9202, "visit_start_date": "2020-03-02", "provider_id": 500},
            {"visit_occurrence_id": 71, "person_id": 2, "visit_concept_id": 9201, "visit_start_date": "2020-04-01", "visit_end_date": "2020-04-03"},
        ],
        "provider": [{"provider_id": 500, "npi": "1234567893", "specialty_source_value": "208VP0014X"}],
        "condition_occurrence": [
            # secondary diagnosis recorded first; the primary one (status 32902) still ranks first
            {"condition_occurrence_id": 1, "person_id": 1, "visit_occurrence_id": 70, "condition_start_date": "2020-03-02", "condition_source_value": "G89.29"},
            {"condition_occurrence_id": 2, "person_id": 1, "visit_occurrence_id": 70, "condition_start_date": "2020-03-02", "condition_source_value": "M54.16", "condition_status_concept_id": 32902},
            {"condition_occurrence_id": 3, "person_id": 1, "visit_occurrence_id": 70, "condition_start_date": "2020-03-02", "condition_source_value": "G89.29"},
            {"condition_occurrence_id": 4, "person_id": 2, "visit_occurrence_id": 71, "condition_start_date": "2020-04-02", "condition_source_value": "M54.50"},
        ],
        "procedure_occurrence": [
            {"procedure_occurrence_id": 21, "person_id": 1, "visit_occurrence_id": 70, "procedure_date": "2020-03-02", "procedure_source_value": "64483", "modifier_source_value": "rt"},
            {"procedure_occurrence_id": 22, "person_id": 1, "visit_occurrence_id": 70, "procedure_date": "2020-03-02", "procedure_source_concept_id": 5002, "procedure_source_value": "methylprednisolone"},
            {"procedure_occurrence_id": 23, "person_id": 1, "visit_occurrence_id": 70, "procedure_date": "2020-03-02", "procedure_concept_id": 5003, "procedure_source_value": "231249005"},
            {"procedure_occurrence_id": 24, "person_id": 2, "procedure_date": "2020-06-01", "procedure_concept_id": 5005},
            {"procedure_occurrence_id": 25, "person_id": 2, "visit_occurrence_id": 71, "procedure_date": "2020-04-02", "procedure_concept_id": 5004},
        ],
        "cost": [
            {"cost_event_id": 21, "cost_domain_id": "Procedure", "amount_allowed": 300.0, "paid_by_payer": 250.0},
            {"cost_event_id": 70, "cost_domain_id": "Visit", "amount_allowed": 100.0, "total_paid": 80.0},
        ],
    }  # fmt: skip
    report, out = run(tmp_path, tables)
    columns = read_columns(out, "medical_claim")
    assert columns[:13] == [
        "claim_id", "claim_line_number", "person_id", "claim_type", "claim_start_date", "claim_end_date",
        "place_of_service_code", "rendering_npi", "rendering_taxonomy_code", "hcpcs_code", "hcpcs_modifier_1",
        "allowed_amount", "paid_amount",
    ]  # fmt: skip
    # as many diagnosis columns as the claim with the most codes needs
    assert columns[13:] == ["diagnosis_code_1", "diagnosis_code_2"]
    rows = read_extract(out, "medical_claim")
    assert rows == [
        ("omop-1-v70", 1, "1", "professional", D(2020, 3, 2), D(2020, 3, 2), None, "1234567893", "208VP0014X",
         "64483", "RT", 400.0, 330.0, "M5416", "G8929"),
        ("omop-1-v70", 2, "1", "professional", D(2020, 3, 2), D(2020, 3, 2), None, "1234567893", "208VP0014X",
         "J1030", None, None, None, "M5416", "G8929"),
        # SNOMED 5003 is in no procedure value set: kept as OMOP<concept_id>, matched by none
        ("omop-1-v70", 3, "1", "professional", D(2020, 3, 2), D(2020, 3, 2), None, "1234567893", "208VP0014X",
         "OMOP5003", None, None, None, "M5416", "G8929"),
        # a procedure on a day without any diagnosis keeps its line and its date
        ("omop-2-d20200601", 1, "2", "professional", D(2020, 6, 1), D(2020, 6, 1), None, None, None,
         "97110", None, None, None, None, None),
        ("omop-2-v71", 1, "2", "professional", D(2020, 4, 2), D(2020, 4, 2), "21", None, None,
         "97110", None, None, None, "M5450", None),
    ]  # fmt: skip
    assert {(m.path, m.rows) for m in report.mapped if m.source_table == "procedure_occurrence"} == {
        ("procedure_source_value (a CPT4/HCPCS code of the vocabulary)", 1),
        ("procedure_source_concept_id", 1),
        ("procedure_concept_id", 1),
        # SNOMED 5005 is in physical_therapy through CPT4 97110's Maps to
        ("procedure_concept_id in a study value set (Maps to)", 1),
        ("procedure_concept_id in no study value set (kept as OMOP<id>)", 1),
    }
    assert unmapped(report) == {
        ("visit_occurrence", "ehr_encounter", "visit has no provider: provider_taxonomy_code left empty", "field left empty", 1, ()),
    }  # fmt: skip
    # the visit's encounter carries the provider taxonomy and the first-ranked diagnosis
    assert read_extract(out, "ehr_encounter") == [
        ("1", "omop-visit-70", D(2020, 3, 2), "office", "208VP0014X", "M5416"),
        ("2", "omop-visit-71", D(2020, 4, 1), "inpatient", None, "M5450"),
    ]


def test_thirty_diagnoses_on_one_visit_all_load(tmp_path):
    codes = [f"M54.{i:02d}" for i in range(30)]
    concepts = [{"concept_id": 30000 + i, "vocabulary_id": "ICD10CM", "concept_code": c} for i, c in enumerate(codes)]
    co = [
        {"condition_occurrence_id": i, "person_id": 1, "visit_occurrence_id": 9, "condition_start_date": "2020-01-01", "condition_source_value": c}
        for i, c in enumerate(codes, start=1)
    ]  # fmt: skip
    report, out = run(tmp_path, {**BASE, "concept": concepts, "condition_occurrence": co})
    (row,) = read_extract(out, "medical_claim")
    assert read_columns(out, "medical_claim")[13:] == [f"diagnosis_code_{i}" for i in range(1, 31)]
    assert row[13:] == tuple(c.replace(".", "") for c in codes)
    assert report.unmapped == ()


# --- visits and providers -> ehr_encounter -----------------------------------------------------------------


def test_visit_types_and_provider_specialties(tmp_path):
    tables = {
        **BASE,
        **vocabulary(),
        "visit_occurrence": [
            {"visit_occurrence_id": 1, "person_id": 1, "visit_concept_id": 9203, "visit_start_date": "2020-01-01", "provider_id": 1},
            {"visit_occurrence_id": 2, "person_id": 1, "visit_concept_id": 581477, "visit_start_date": "2020-01-02", "provider_id": 2},
            {"visit_occurrence_id": 3, "person_id": 1, "visit_concept_id": 262, "visit_start_date": "2020-01-03", "provider_id": 3},
            {"visit_occurrence_id": 4, "person_id": 2, "visit_concept_id": 9202, "visit_start_date": "2020-01-04", "provider_id": 4},
            {"visit_occurrence_id": 5, "person_id": 2, "visit_concept_id": 123, "visit_start_date": "2020-01-05", "provider_id": 5},
            {"visit_occurrence_id": 6, "person_id": 2, "visit_concept_id": 9202, "visit_start_date": "2020-01-06", "provider_id": 6},
            {"visit_occurrence_id": 7, "person_id": 2, "visit_concept_id": 9202, "visit_start_date": None},
        ],
        "provider": [
            {"provider_id": 1, "specialty_concept_id": 8001},  # Medicare Specialty 09, through the concept table
            {"provider_id": 2, "specialty_concept_id": 38004494},  # Pain Management, by concept id
            {"provider_id": 3, "specialty_source_concept_id": 8002},  # NUCC concept
            {"provider_id": 4, "specialty_source_value": "Pain Medicine"},
            {"provider_id": 5, "specialty_concept_id": 8003, "specialty_source_value": "Cardiology"},
            {"provider_id": 6},
        ],
    }  # fmt: skip
    report, out = run(tmp_path, tables)
    assert read_extract(out, "ehr_encounter") == [
        ("1", "omop-visit-1", D(2020, 1, 1), "ed", "208VP0014X", None),
        ("1", "omop-visit-2", D(2020, 1, 2), "office", "208VP0000X", None),
        ("1", "omop-visit-3", D(2020, 1, 3), "inpatient", "207LP2900X", None),
        ("2", "omop-visit-4", D(2020, 1, 4), "office", "208VP0000X", None),
        ("2", "omop-visit-5", D(2020, 1, 5), "other", None, None),
        ("2", "omop-visit-6", D(2020, 1, 6), "office", None, None),
    ]
    assert unmapped(report) == {
        # visit 7 has no provider too, but it is not loaded at all
        ("visit_occurrence", "ehr_encounter", "visit_start_date missing or unreadable", "row not loaded", 1, ("9202",)),
        ("visit_occurrence", "ehr_encounter", "provider specialty not mapped to a NUCC taxonomy: provider_taxonomy_code left empty", "field left empty", 2, ("5", "6")),
        ("provider", "medical_claim, ehr_encounter", "specialty is not pain medicine or not mapped to a NUCC taxonomy: taxonomy code left empty", "field left empty", 1, ("Cardiology",)),
        ("provider", "medical_claim, ehr_encounter", "provider has no specialty: taxonomy code left empty", "field left empty", 1, ()),
    }  # fmt: skip
    assert {(m.path, m.rows) for m in report.mapped if m.source_table == "provider"} == {
        ("mapping table: specialty concept", 2),
        ("NUCC specialty concept", 1),
        ("mapping table: specialty text", 1),
    }


# --- measurement / observation -> ehr_pro and ehr_work_status -----------------------------------------------


def test_pro_scores_by_loinc_and_employment_status_answers(tmp_path):
    tables = {
        **BASE,
        **vocabulary(),
        "measurement": [
            {"measurement_id": 1, "person_id": 1, "measurement_date": "2020-02-01", "measurement_source_value": "72514-3", "value_as_number": 7},
            {"measurement_id": 2, "person_id": 1, "measurement_date": "2020-02-01", "measurement_source_value": "72514-3", "value_as_number": 12},
            {"measurement_id": 3, "person_id": 1, "measurement_date": "2020-02-01", "measurement_concept_id": 7004, "value_as_number": 99},
            {"measurement_id": 4, "person_id": 2, "measurement_date": "2020-03-01", "measurement_source_value": "71959-1", "value_source_value": "41.5"},
        ],
        "observation": [
            {"observation_id": 1, "person_id": 2, "observation_date": "2020-02-02", "observation_concept_id": 7001, "value_as_number": 14},
            {"observation_id": 2, "person_id": 2, "observation_date": "2020-02-03", "observation_concept_id": 7001},
            {"observation_id": 3, "person_id": 1, "observation_date": "2020-01-05", "observation_concept_id": 7002, "value_as_concept_id": 7003},
            {"observation_id": 4, "person_id": 1, "observation_date": "2020-04-05", "observation_source_value": "67875-5", "value_source_value": "LA17956-6"},
            {"observation_id": 5, "person_id": 2, "observation_date": "2020-06-05", "observation_concept_id": 7002, "value_as_string": " Retired "},
            {"observation_id": 6, "person_id": 2, "observation_date": "2020-07-05", "observation_concept_id": 7002, "value_as_string": "Self-employed"},
            {"observation_id": 7, "person_id": 2, "observation_date": "2020-07-05", "observation_concept_id": 4012},
        ],
    }  # fmt: skip
    report, out = run(tmp_path, tables)
    assert read_extract(out, "ehr_pro") == [
        ("1", D(2020, 2, 1), "nrs_pain", 7.0),
        ("2", D(2020, 2, 2), "phq9", 14.0),
        ("2", D(2020, 3, 1), "promis_pf", 41.5),
    ]
    assert read_extract(out, "ehr_work_status") == [
        ("1", D(2020, 1, 5), "working"),
        ("1", D(2020, 4, 5), "unemployed"),
        ("2", D(2020, 6, 5), "retired"),
    ]
    assert unmapped(report) == {
        ("measurement", "ehr_pro", "score outside the instrument's range", "row not loaded", 1, ("nrs_pain = 12.0",)),
        ("observation", "ehr_pro", "no numeric score", "row not loaded", 1, ("phq9 = empty",)),
        ("observation", "ehr_work_status", "employment answer not in the mapping table", "row not loaded", 1, ("Self-employed",)),
    }  # fmt: skip
    assert report.not_used == {"measurement": 1, "observation": 1}
    assert {(m.source_table, m.target_table, m.path, m.rows) for m in report.mapped if m.source_table in ("measurement", "observation")} == {
        ("measurement", "ehr_pro", "LOINC nrs_pain", 1),
        ("measurement", "ehr_pro", "LOINC promis_pf", 1),
        ("observation", "ehr_pro", "LOINC phq9", 1),
        ("observation", "ehr_work_status", "value_as_concept_id", 1),
        ("observation", "ehr_work_status", "LA answer code", 1),
        ("observation", "ehr_work_status", "answer text", 1),
    }  # fmt: skip


def test_pain_peg_phq2_gad7_and_snomed_employment_findings(tmp_path):
    loinc = ["38208-5", "75893-8", "91145-3", "91146-1", "91147-9", "55758-7", "70274-6", "44261-6"]
    snomed = ["160903007", "160904001", "73438004", "741062008", "105493001"]
    tables = {**BASE}
    tables["concept"] = [{"concept_id": 9100 + i, "vocabulary_id": "SNOMED", "concept_code": c} for i, c in enumerate(snomed)]
    scores = [6, 5, 7, 8, 6.7, 4, 22, 9]  # GAD-7 22 is beyond its 0-21 range
    tables["observation"] = [
        {"observation_id": i, "person_id": 1, "observation_date": "2020-02-01", "observation_source_value": code, "value_as_number": score}
        for i, (code, score) in enumerate(zip(loinc, scores, strict=True), start=1)
    ] + [
        {"observation_id": 20 + i, "person_id": 2, "observation_date": f"2020-0{i + 1}-01", "observation_concept_id": 9100 + i}
        for i in range(len(snomed))
    ]  # fmt: skip
    # 25 unused measurement concepts: the 20 largest on screen, all in the report
    tables["measurement"] = [
        {"measurement_id": n, "person_id": 1, "measurement_date": "2020-01-01", "measurement_concept_id": 5000 + k, "measurement_source_value": f"lab-{k}"}
        for k in range(25) for n in [100 * k + j for j in range(k + 1)]
    ]  # fmt: skip
    report, out = run(tmp_path, tables)
    assert read_extract(out, "ehr_pro") == [
        ("1", D(2020, 2, 1), "nrs_pain", 5.0),
        ("1", D(2020, 2, 1), "nrs_pain", 6.0),
        ("1", D(2020, 2, 1), "peg", 6.7),
        ("1", D(2020, 2, 1), "peg_activity", 8.0),
        ("1", D(2020, 2, 1), "peg_enjoyment", 7.0),
        ("1", D(2020, 2, 1), "phq2", 4.0),
        ("1", D(2020, 2, 1), "phq9", 9.0),
    ]
    assert read_extract(out, "ehr_work_status") == [
        ("2", D(2020, 1, 1), "working"),
        ("2", D(2020, 2, 1), "working"),
        ("2", D(2020, 3, 1), "unemployed"),
        ("2", D(2020, 4, 1), "off_work"),
        ("2", D(2020, 5, 1), "retired"),
    ]
    assert unmapped(report) == {
        ("observation", "ehr_pro", "score outside the instrument's range", "row not loaded", 1, ("gad7 = 22.0",)),
    }
    assert len(report.not_used_concepts) == 25
    assert [(c.concept_id, c.rows) for c in report.not_used_concepts[:2]] == [(5024, 25), (5023, 24)]
    text = report.describe()
    assert "observation/measurement concepts not used (largest 20; 5 more in the --report file):" in text
    assert "    25 rows: measurement concept 5024 (e.g. lab-24)" in text
    assert "concept 5004 " not in text and "concept 5005 " in text
    assert len(report.to_dict()["not_used_concepts"]) == 25


# --- drug_exposure -> pharmacy_claim ---------------------------------------------------------------------


def test_drug_exposures_with_an_ndc_become_fills(tmp_path):
    de = [
        {"drug_exposure_id": 1, "person_id": 1, "drug_exposure_start_date": "2020-01-01", "drug_source_value": "00406052301", "quantity": 30, "days_supply": 10},
        {"drug_exposure_id": 2, "person_id": 1, "drug_exposure_start_date": "2020-02-01", "drug_exposure_end_date": "2020-02-07", "drug_source_value": "0406-0523-01", "quantity": 14},
        {"drug_exposure_id": 3, "person_id": 2, "drug_exposure_start_date": "2020-03-01", "drug_source_concept_id": 6001, "drug_source_value": "oxycodone", "quantity": 20, "days_supply": 5},
        {"drug_exposure_id": 4, "person_id": 2, "drug_exposure_start_date": "2020-04-01", "drug_concept_id": 6002, "quantity": 0, "days_supply": 0, "drug_exposure_end_date": "2020-04-01"},
        {"drug_exposure_id": 4, "person_id": 2, "drug_exposure_start_date": "2020-05-01", "drug_concept_id": 6002, "quantity": 10, "days_supply": 3},
        {"drug_exposure_id": 5, "person_id": 2, "drug_exposure_start_date": "2020-06-01", "drug_concept_id": 6004, "drug_source_value": "197696", "quantity": 10, "days_supply": 3},
        {"drug_exposure_id": 6, "person_id": 2, "drug_exposure_start_date": "2020-06-01", "drug_source_value": "00406052301", "days_supply": 3},
        {"drug_exposure_id": 7, "person_id": 2, "drug_exposure_start_date": "2020-06-01", "drug_source_value": "00406052301", "quantity": 5},
    ]  # fmt: skip
    cost = [{"cost_event_id": 1, "cost_domain_id": "Drug", "amount_allowed": 12.5, "paid_by_payer": 10.0}]
    tables = {**BASE, **vocabulary(), "drug_exposure": de, "cost": cost}
    # RxNorm ingredients (7804 is oxycodone in the CDC MME table) and UCUM units; the ids are illustrative
    tables["concept"] += [
        {"concept_id": 6010, "vocabulary_id": "RxNorm", "concept_code": "7804", "concept_class_id": "Ingredient", "concept_name": "oxycodone"},
        {"concept_id": 6011, "vocabulary_id": "RxNorm", "concept_code": "161", "concept_class_id": "Ingredient", "concept_name": "acetaminophen"},
        {"concept_id": 8576, "vocabulary_id": "UCUM", "concept_code": "mg"},
    ]
    tables["drug_strength"] = [
        {"drug_concept_id": 6002, "ingredient_concept_id": 6010, "amount_value": 5, "amount_unit_concept_id": 8576},
        {"drug_concept_id": 6004, "ingredient_concept_id": 6011, "amount_value": 325, "amount_unit_concept_id": 8576},
    ]  # fmt: skip
    report, out = run(tmp_path, tables)
    # an NDC by source concept or by a source value the vocabulary holds (hyphenated 10-digit normalised);
    # a record coded only in RxNorm keeps its RxNorm drug
    assert read_extract(out, "pharmacy_claim") == [
        ("omop-drug-1", 1, "1", D(2020, 1, 1), "00406052301", 30.0, 10, 12.5, 10.0),
        ("omop-drug-2", 1, "1", D(2020, 2, 1), "00406052301", 14.0, 7, None, None),
        ("omop-drug-3", 1, "2", D(2020, 3, 1), "00406052301", 20.0, 5, None, None),
        ("omop-drug-4", 1, "2", D(2020, 4, 1), "RXNORM1049621", 0.0, 1, None, None),
        ("omop-drug-4", 2, "2", D(2020, 5, 1), "RXNORM1049621", 10.0, 3, None, None),
        ("omop-drug-5", 1, "2", D(2020, 6, 1), "RXNORM197696", 10.0, 3, None, None),
    ]
    # ingredient and strength from drug_strength; oxycodone is an opioid with the CDC factor 1.5
    assert read_extract(out, "ndc_reference") == [
        ("RXNORM1049621", "oxycodone", 5.0, "mg", True, 1.5),
        ("RXNORM197696", "acetaminophen", 325.0, "mg", False, None),
    ]
    undescribed = (
        "no RxNorm ingredient (neither drug_strength nor concept_ancestor names one): the fill is loaded but not"
        " described, so it never counts as opioid use"
    )
    assert unmapped(report) == {
        ("drug_exposure", "ndc_reference", undescribed, "loaded, not in ndc_reference", 3, ("00406052301",)),
        ("drug_exposure", "pharmacy_claim", "quantity missing", "row not loaded", 1, ("00406052301",)),
        ("drug_exposure", "pharmacy_claim", "days_supply missing and no usable end date", "row not loaded", 1, ("00406052301",)),
        ("drug_exposure", "pharmacy_claim", "quantity is 0 or negative (unknown in many OMOP sources): loaded as given", "loaded with a doubtful value", 1, ("6002",)),
    }  # fmt: skip


# --- the declared mapping --------------------------------------------------------------------------------


def test_every_omop_sql_file_runs_in_the_declared_order_and_not_in_the_default_layers():
    files = {name for name, _ in db.sql_files("omop")}
    assert files == set(build_order(("omop",))["omop"])
    assert "omop" not in db.SQL_LAYERS


def test_packaged_concept_map_is_valid_and_its_targets_are_contract_values():
    rows = omop.concept_map()
    assert {r["rule"] for r in rows} == set(omop.RULES)
    assert {(r["rule"], r["concept_id"], r["target"]) for r in rows if r["concept_id"] in (8507, 8532)} == {
        ("gender", 8507, "male"),
        ("gender", 8532, "female"),
    }
    loinc = {r["concept_code"]: r["target"] for r in rows if r["rule"] == "pro_instrument"}
    assert loinc["72514-3"] == "nrs_pain" and loinc["44261-6"] == "phq9"
    assert {r["concept_code"] for r in rows if r["rule"] == "employment_question"} == {"67875-5"}


def test_a_concept_map_with_a_bad_target_or_a_conflict_is_refused(tmp_path):
    header = "rule,vocabulary_id,concept_code,concept_id,text,target,label\n"
    bad = tmp_path / "bad.csv"
    bad.write_text(header + "gender,,,8507,,man,\n")
    with pytest.raises(IpmError, match=r"bad.csv line 2: target 'man' of rule gender is not one of male, female, unknown"):
        omop.concept_map(bad)
    conflict = tmp_path / "conflict.csv"
    conflict.write_text(header + "employment_answer,,,,retired,retired,\nemployment_answer,,,,Retired,working,\n")
    with pytest.raises(IpmError, match="conflict.csv line 3: 'retired' of rule employment_answer maps to both retired and working"):
        omop.concept_map(conflict)
    shape = tmp_path / "shape.csv"
    shape.write_text(header + "specialty_nucc,,,,pain,208VP0014,\n")
    with pytest.raises(IpmError, match="shape.csv line 2: target '208VP0014' is not a nucc code"):
        omop.concept_map(shape)


# --- end to end: OMOP source -> ingest -> raw.* and meta.omop_* ---------------------------------------------

FIXTURE = Path(__file__).parents[1] / "fixtures" / "omop_mini"


def query(db_path: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_load_omop_miniature_into_raw_tables_with_the_unmapped_report(tmp_path):
    db_path = tmp_path / "study.duckdb"
    report_file = tmp_path / "load.json"
    summary = omop.load_omop(FIXTURE, db_path, report_path=report_file, today=D(2024, 1, 1))
    assert summary.rows["eligibility"] == 3 and summary.absent_tables == ()
    assert summary.mapping.notes == ("files that are not CDM tables the study reads were ignored: README.md",)
    assert query(db_path, "select * from raw.eligibility order by person_id") == [
        ("101", "female", 1975, None, D(2019, 1, 1), D(2021, 12, 31), "commercial", "WA"),
        ("102", "male", 1968, None, D(2019, 6, 1), D(2020, 12, 31), "other", None),
        ("103", "unknown", 1990, None, D(2020, 1, 1), D(2020, 6, 30), "other", None),
    ]
    contract_columns = ", ".join(TABLES_BY_NAME["medical_claim"].column_names)
    assert query(db_path, f"select {contract_columns} from raw.medical_claim order by claim_id, claim_line_number") == [
        ("omop-101-v5001", 1, "101", "professional", D(2020, 2, 3), D(2020, 2, 3), None, "1487654321", "207Q00000X",
         None, None, None, None),
        ("omop-101-v5002", 1, "101", "professional", D(2020, 3, 16), D(2020, 3, 16), None, "1234567893", "208VP0000X",
         "62323", None, None, None),
        ("omop-102-v5003", 1, "102", "professional", D(2020, 5, 5), D(2020, 5, 5), "23", None, None,
         "72100", None, None, None),
        # person 103's SNOMED condition and procedure are in no study value set: kept as OMOP<concept_id>
        ("omop-103-d20200301", 1, "103", "professional", D(2020, 3, 1), D(2020, 3, 1), None, None, None,
         None, None, None, None),
        ("omop-103-d20200302", 1, "103", "professional", D(2020, 3, 2), D(2020, 3, 2), None, None, None,
         "OMOP4163872", None, None, None),
    ]  # fmt: skip
    assert query(db_path, "select * from raw.medical_claim_diagnosis order by claim_id, diagnosis_position") == [
        ("omop-101-v5001", 1, "101", "professional", D(2020, 2, 3), 1, "M5450"),
        ("omop-101-v5002", 1, "101", "professional", D(2020, 3, 16), 1, "M5416"),
        ("omop-102-v5003", 1, "102", "professional", D(2020, 5, 5), 1, "M5450"),
        ("omop-103-d20200301", 1, "103", "professional", D(2020, 3, 1), 1, "OMOP4012"),
    ]
    assert query(db_path, "select * from raw.pharmacy_claim") == [
        ("omop-drug-1", 1, "102", D(2020, 5, 5), "00406052301", 20.0, 5, None, None)
    ]
    # the NDC maps to RxNorm oxycodone 5 MG tablet: ndc_reference makes opioids available
    assert query(db_path, "select * from raw.ndc_reference") == [("00406052301", "oxycodone", 5.0, "mg", True, 1.5)]
    assert query(db_path, "select * from raw.ehr_encounter order by encounter_id") == [
        ("101", "omop-visit-5001", D(2020, 2, 3), "office", "207Q00000X", "M5450"),
        ("101", "omop-visit-5002", D(2020, 3, 16), "office", "208VP0000X", "M5416"),
        ("102", "omop-visit-5003", D(2020, 5, 5), "ed", None, "M5450"),
    ]
    assert query(db_path, "select * from raw.ehr_pro order by all") == [
        ("101", D(2020, 2, 3), "nrs_pain", 8.0),
        ("101", D(2020, 3, 16), "promis_pf", 41.2),
        ("101", D(2020, 6, 15), "nrs_pain", 3.0),
        ("101", D(2020, 6, 15), "phq9", 12.0),
    ]
    assert query(db_path, "select * from raw.ehr_work_status order by all") == [
        ("101", D(2020, 2, 3), "off_work"),
        ("101", D(2020, 6, 15), "working"),
    ]
    assert query(db_path, "select * from meta.omop_unmapped order by source_table") == [
        ("drug_exposure", "pharmacy_claim",
         "no NDC (source vocabulary: unknown (no source concept; the source value is no NDC of the vocabulary))"
         " and no RxNorm drug concept",
         "row not loaded", 1, ["acetaminophen 500 MG"]),
        ("visit_occurrence", "ehr_encounter", "visit has no provider: provider_taxonomy_code left empty",
         "field left empty", 1, []),
    ]  # fmt: skip
    assert query(db_path, "select path, rows from meta.omop_mapped where source_table = 'condition_occurrence' order by path") == [
        ("condition_concept_id in a study value set (Maps to)", 1),
        ("condition_concept_id in no study value set (kept as OMOP<id>)", 1),
        ("condition_source_value (an ICD10CM code of the vocabulary)", 2),
    ]
    sources = query(db_path, "select source_table, rows, not_used from meta.omop_source where source_table in ('measurement', 'death')")
    assert sorted(sources) == [("death", 0, 0), ("measurement", 4, 1)]
    # the source rows stamp the load they describe
    assert query(db_path, "select count(*) from meta.omop_source s join meta.load l on s.loaded_at = l.loaded_at") == [(15,)]
    import json

    written = json.loads(report_file.read_text())
    assert written["passed"] is True
    assert [u["example_source_values"] for u in written["omop"]["unmapped"]][0] == ["acetaminophen 500 MG"]
    assert written["omop"]["not_used_concepts"] == [
        {"source_table": "measurement", "concept_id": 3004501, "vocabulary_id": None, "concept_code": None,
         "concept_name": None, "rows": 1, "example_source_values": ["2345-7"]}
    ]  # fmt: skip
    assert written["omop"]["mapping_versions"]["mme_conversion.csv"] == "1"
    assert query(db_path, "select source_table, concept_id, rows, example_source_values from meta.omop_not_used") == [
        ("measurement", 3004501, 1, ["2345-7"])
    ]
    # the summary names the OMOP source, never the temporary folder the extract was written to
    assert summary.describe().splitlines()[-9].startswith(f"Loaded {FIXTURE} into ")
    assert "ipm-omop-" not in summary.describe()
    assert "nothing mapped" not in summary.describe()
    assert "visit_occurrence -> ehr_encounter: 1 field left empty" in summary.describe(None)
    assert "visit_occurrence -> ehr_encounter: <11 field left empty" in summary.describe()
