"""One cohort SQL for every OMOP coding: the same invented persons coded two ways give the same marts.

``source`` is a claims-derived CDM: conditions carry their ICD-10-CM source concept, procedures their CPT4
code, fills their NDC, employment the LOINC 67875-5 question with LOINC answers. ``standard`` is an
EHR-derived CDM coded only in standard concepts: SNOMED CT conditions (one a descendant of the concept an
ICD-10-CM code maps to), CPT4 procedures (a standard OMOP vocabulary for procedures), RxNorm drugs and
SNOMED CT employment findings. Both share one vocabulary, as OHDSI sites share Athena's. Concept ids from
2000000000 are illustrative; the codes are the real ICD-10-CM, CPT, LOINC, RxNorm and SNOMED CT codes
except the SNOMED codes 9000002xx, which stand for concepts whose real codes the test does not need.

The persons: 1 has low back pain with lumbar radiculopathy and diabetes, an oxycodone fill before index,
an IPM epidural injection 19 days after index on a visit with no diagnosis, off work at index and back
at work later, pain scores; 2 has chronic low back pain (a descendant concept) and stays off work; 3 has
low back pain with a spinal metastasis (a red flag) and is excluded; 4 is referred late and returns to
work.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest
from test_omop import write_cdm

from ipm_outcomes import cohort, omop
from ipm_outcomes.errors import IpmError
from ipm_outcomes.spec import load_spec

D = dt.date

# concept_id, vocabulary_id, concept_code, concept_class_id, concept_name
VOCABULARY = [
    (2000000101, "ICD10CM", "M54.50", "6-char billing code", "Low back pain, unspecified"),
    (2000000102, "ICD10CM", "M54.16", "5-char billing code", "Radiculopathy, lumbar region"),
    (2000000103, "ICD10CM", "C79.51", "5-char billing code", "Secondary malignant neoplasm of bone"),
    (2000000104, "ICD10CM", "E11.9", "4-char billing code", "Type 2 diabetes mellitus without complications"),
    (2000000201, "SNOMED", "279039007", "Clinical Finding", "Low back pain"),
    (2000000202, "SNOMED", "278860009", "Clinical Finding", "Chronic low back pain"),
    (2000000203, "SNOMED", "900000203", "Clinical Finding", "Lumbar radiculopathy"),
    (2000000204, "SNOMED", "900000204", "Clinical Finding", "Secondary malignant neoplasm of bone"),
    (2000000205, "SNOMED", "900000205", "Clinical Finding", "Type 2 diabetes mellitus"),
    (2000000301, "CPT4", "64483", "CPT4", "Transforaminal epidural injection, lumbar or sacral, single level"),
    (2000000401, "RxNorm", "1049621", "Clinical Drug", "oxycodone hydrochloride 5 MG Oral Tablet"),
    (2000000402, "RxNorm", "7804", "Ingredient", "oxycodone"),
    (2000000501, "NDC", "00406052301", "11-digit NDC", "oxycodone hydrochloride 5 MG Oral Tablet"),
    (2000000601, "UCUM", "mg", "Unit", "milligram"),
    (2000000701, "LOINC", "67875-5", "LOINC Component", "Employment status - current"),
    (2000000702, "LOINC", "LA17957-4", "Answer", "Employed full time"),
    (2000000703, "LOINC", "LA17962-4", "Answer", "Medical leave of absence"),
    (2000000704, "LOINC", "38208-5", "Clinical Observation", "Pain severity - Reported"),
    (2000000801, "SNOMED", "160903007", "Clinical Finding", "Full-time employment"),
    (2000000802, "SNOMED", "741062008", "Clinical Finding", "Not in labor force"),
]
MAPS_TO = [(2000000101, 2000000201), (2000000102, 2000000203), (2000000103, 2000000204), (2000000104, 2000000205),
           (2000000501, 2000000401)]  # fmt: skip
ANCESTORS = [(2000000201, 2000000202), (2000000402, 2000000401)]

LBP, CHRONIC_LBP, RADICULOPATHY, METASTASIS, DIABETES = 2000000201, 2000000202, 2000000203, 2000000204, 2000000205
ICD = {LBP: 2000000101, CHRONIC_LBP: 2000000101, RADICULOPATHY: 2000000102, METASTASIS: 2000000103, DIABETES: 2000000104}
EPIDURAL = 2000000301
WORKING, OFF_WORK = "working", "off_work"


def vocabulary() -> dict[str, list[dict]]:
    return {
        "concept": [
            {"concept_id": i, "vocabulary_id": v, "concept_code": c, "concept_class_id": k, "concept_name": n}
            for i, v, c, k, n in VOCABULARY
        ],
        "concept_relationship": [
            {"concept_id_1": a, "concept_id_2": b, "relationship_id": "Maps to"} for a, b in MAPS_TO
        ],
        "concept_ancestor": [{"ancestor_concept_id": a, "descendant_concept_id": d} for a, d in ANCESTORS],
        "drug_strength": [
            {"drug_concept_id": 2000000401, "ingredient_concept_id": 2000000402, "amount_value": 5,
             "amount_unit_concept_id": 2000000601}
        ],
    }  # fmt: skip


# person, visit, date, standard condition concepts on the visit
VISIT_CONDITIONS = [
    (1, 13, "2019-10-01", [DIABETES]),
    (1, 11, "2020-03-01", [LBP, RADICULOPATHY]),
    (2, 21, "2020-06-10", [CHRONIC_LBP]),
    (3, 31, "2020-04-01", [LBP, METASTASIS]),
    (4, 41, "2020-08-01", [LBP]),
]
# person, visit (none of them has a diagnosis), date
EPIDURALS = [(1, 12, "2020-03-20"), (4, 42, "2020-11-15")]
WORK_STATUS = [(1, "2020-03-01", OFF_WORK), (1, "2020-05-01", WORKING), (2, "2020-06-10", OFF_WORK),
               (4, "2020-08-01", OFF_WORK), (4, "2021-01-10", WORKING)]  # fmt: skip
PAIN = [(1, "2020-03-01", 7), (1, "2020-06-15", 3), (4, "2020-08-01", 6), (4, "2021-02-01", 2)]


def cdm(coding: str) -> dict[str, list[dict]]:
    """The four persons, coded from claims ('source') or in standard concepts only ('standard')."""
    source = coding == "source"
    persons = [(1, 8532, 1975), (2, 8507, 1980), (3, 8507, 1970), (4, 8532, 1985)]
    tables: dict[str, list[dict]] = {
        **vocabulary(),
        "person": [{"person_id": p, "gender_concept_id": g, "year_of_birth": y} for p, g, y in persons],
        "observation_period": [
            {"observation_period_id": 100 + p, "person_id": p, "observation_period_start_date": "2019-01-01",
             "observation_period_end_date": "2021-12-31"}
            for p, _, _ in persons
        ],
        "visit_occurrence": [
            {"visit_occurrence_id": v, "person_id": p, "visit_concept_id": 9202, "visit_start_date": d}
            for p, v, d, _ in VISIT_CONDITIONS
        ] + [
            {"visit_occurrence_id": v, "person_id": p, "visit_concept_id": 9202, "visit_start_date": d}
            for p, v, d in EPIDURALS
        ],
    }  # fmt: skip
    conditions = []
    for p, v, d, concepts in VISIT_CONDITIONS:
        for concept in concepts:
            row = {"condition_occurrence_id": len(conditions) + 1, "person_id": p, "visit_occurrence_id": v,
                   "condition_start_date": d, "condition_concept_id": concept}  # fmt: skip
            if source:
                row["condition_source_concept_id"] = ICD[concept]
            conditions.append(row)
    tables["condition_occurrence"] = conditions
    tables["procedure_occurrence"] = [
        {"procedure_occurrence_id": i, "person_id": p, "visit_occurrence_id": v, "procedure_date": d,
         "procedure_concept_id": EPIDURAL, **({"procedure_source_concept_id": EPIDURAL} if source else {})}
        for i, (p, v, d) in enumerate(EPIDURALS, start=1)
    ]  # fmt: skip
    tables["drug_exposure"] = [
        {"drug_exposure_id": 1, "person_id": 1, "drug_exposure_start_date": "2020-02-20", "quantity": 30,
         "days_supply": 10, "drug_concept_id": 2000000401,
         **({"drug_source_concept_id": 2000000501, "drug_source_value": "00406-0523-01"} if source else {})}
    ]  # fmt: skip
    observations = []
    for p, d, status in WORK_STATUS:
        row = {"observation_id": len(observations) + 1, "person_id": p, "observation_date": d}
        if source:
            answer = 2000000702 if status == WORKING else 2000000703
            row |= {"observation_concept_id": 2000000701, "value_as_concept_id": answer}
        else:
            row["observation_concept_id"] = 2000000801 if status == WORKING else 2000000802
        observations.append(row)
    tables["observation"] = observations
    tables["measurement"] = [
        {"measurement_id": i, "person_id": p, "measurement_date": d, "value_as_number": score,
         **({"measurement_concept_id": 0, "measurement_source_value": "38208-5"} if source
            else {"measurement_concept_id": 2000000704})}
        for i, (p, d, score) in enumerate(PAIN, start=1)
    ]  # fmt: skip
    return tables


def marts(db_path) -> dict[str, list[tuple]]:
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        return {
            name: con.execute(f"select * from marts.{name} order by all").fetchall()
            for name in ("cohort", "rtw_outcome", "qol_outcome", "attrition")
        }
    finally:
        con.close()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    spec = load_spec()
    result = {}
    for coding in ("source", "standard"):
        folder = tmp_path_factory.mktemp(coding)
        db_path = folder / "study.duckdb"
        summary = omop.load_omop(write_cdm(folder / "cdm", cdm(coding)), db_path, today=D(2024, 1, 1))
        result[coding] = (summary, cohort.build(spec, db_path), db_path)
    return result


def test_source_coded_and_standard_coded_cdms_give_identical_marts(built):
    source, standard = marts(built["source"][2]), marts(built["standard"][2])
    assert source == standard
    assert all(source[name] for name in ("cohort", "rtw_outcome", "qol_outcome", "attrition"))


def test_each_cdm_loads_every_row(built):
    for coding in ("source", "standard"):
        mapping = built[coding][0].mapping
        # (the CDMs have no provider table)
        assert {(u.reason, u.rows) for u in mapping.unmapped} == {
            ("visit has no provider: provider_taxonomy_code left empty", 7)
        }, coding
        assert mapping.not_used_concepts == (), coding


def test_the_marts_hold_the_expected_persons_and_values(built):
    _, summary, db_path = built["standard"]
    assert summary.pharmacy_available and summary.work_status_available and summary.pro_available
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        rows = con.execute(
            "select person_id, index_date, radiculopathy, cci_diabetes, opioid_use, mean_daily_mme, referral_date,"
            " exposure, in_rtw_population, baseline_nrs_pain from marts.cohort order by person_id"
        ).fetchall()
    finally:
        con.close()
    # person 3 has a red flag; person 1's epidural on a visit without a diagnosis keeps its date (day 19);
    # 30 oxycodone 5 mg tablets x CDC factor 1.5 = 225 MME, all within the 90-day lookback: 2.5 a day
    assert rows == [
        ("1", D(2020, 3, 1), 1, 1, 1, 2.5, D(2020, 3, 20), "early", True, 7.0),
        ("2", D(2020, 6, 10), 0, 0, 0, 0.0, None, "delayed", True, None),
        ("4", D(2020, 8, 1), 0, 0, 0, 0.0, D(2020, 11, 15), "delayed", True, 6.0),
    ]


def test_the_paths_differ_where_the_coding_does(built):
    source = {(m.source_table, m.path, m.rows) for m in built["source"][0].mapping.mapped if m.rows}
    standard = {(m.source_table, m.path, m.rows) for m in built["standard"][0].mapping.mapped if m.rows}
    assert ("condition_occurrence", "condition_source_concept_id", 7) in source
    assert ("condition_occurrence", "condition_concept_id in a study value set (Maps to)", 6) in standard
    assert ("condition_occurrence", "condition_concept_id in a study value set (Maps to, descendant)", 1) in standard
    assert ("drug_exposure", "drug_source_concept_id", 1) in source
    assert ("drug_exposure", "drug_concept_id (RxNorm, no NDC)", 1) in standard
    assert ("observation", "value_as_concept_id", 5) in source
    assert ("observation", "SNOMED CT employment finding", 5) in standard


def test_a_trimmed_vocabulary_falls_back_on_the_shipped_standard_concepts(tmp_path):
    """No ICD10CM concepts, no Maps to, no concept_ancestor: low back pain still counts, by SNOMED code."""
    tables = cdm("standard")
    keep = {LBP, CHRONIC_LBP}
    tables["concept"] = [c for c in tables["concept"] if c["vocabulary_id"] != "ICD10CM"]
    for name in ("concept_relationship", "concept_ancestor"):
        tables[name] = []
    tables["condition_occurrence"] = [c for c in tables["condition_occurrence"] if c["condition_concept_id"] in keep]
    headers = {"concept_relationship": ["concept_id_1", "concept_id_2", "relationship_id"],
               "concept_ancestor": ["ancestor_concept_id", "descendant_concept_id"]}  # fmt: skip
    report = omop.map_omop_to_extract(write_cdm(tmp_path / "cdm", tables, headers=headers), tmp_path / "x")
    assert {(m.path, m.rows) for m in report.mapped if m.source_table == "condition_occurrence"} == {
        ("condition_concept_id in a study value set (shipped standard concept)", 4)
    }
    con = duckdb.connect()
    codes = con.execute(
        f"select person_id, diagnosis_code_1 from read_parquet('{tmp_path / 'x' / 'medical_claim.parquet'}')"
        " where diagnosis_code_1 is not null order by all"
    ).fetchall()
    con.close()
    assert codes == [("1", "M5450"), ("2", "M5450"), ("3", "M5450"), ("4", "M5450")]


def test_a_source_with_nothing_for_medical_claim_says_why_in_one_line(tmp_path):
    tables = cdm("source")
    for row in tables["condition_occurrence"]:
        row["condition_concept_id"] = 0
        row["condition_source_concept_id"] = 0
        row["condition_source_value"] = "V49.87"
    tables["procedure_occurrence"] = []
    headers = {"procedure_occurrence": ["procedure_occurrence_id", "person_id", "procedure_date"]}
    source = write_cdm(tmp_path / "cdm", tables, headers=headers)
    with pytest.raises(IpmError) as info:
        omop.load_omop(source, tmp_path / "study.duckdb", today=D(2024, 1, 1))
    message = str(info.value)
    assert message == (
        f"OMOP {source}: 7 condition and 0 procedure rows, none with an ICD-10-CM/CPT code or a standard concept;"
        " most common reason (7 condition_occurrence rows): no ICD-10-CM code (source"
        " vocabulary: unknown (no source concept; the source value is no code of the vocabulary)) and no standard"
        " concept (the --report file lists every reason)"
    )
    assert "ipm-omop-" not in message and "\n" not in message
    assert not (tmp_path / "study.duckdb").exists()


def test_an_ingest_error_names_the_omop_source_not_the_temporary_folder(tmp_path):
    source = write_cdm(tmp_path / "cdm", cdm("source"))
    with pytest.raises(IpmError) as info:
        omop.load_omop(source, tmp_path / "study.duckdb", today=D(2020, 1, 1))
    message = str(info.value)
    assert message.startswith(f"OMOP {source} (mapped): extract breaks the input contract (7 errors, 0 warnings)")
    assert "ipm-omop-" not in message and "\n" not in message
