"""explore.py against a hand-made miniature written straight into the raw schema."""

import datetime as dt

import duckdb
import pandas as pd
import pytest

from ipm_outcomes import explore
from ipm_outcomes.contract import create_empty_raw_tables


@pytest.fixture()
def con():
    con = duckdb.connect()
    create_empty_raw_tables(con)
    con.execute(
        """insert into raw.eligibility values
        ('p1', 'female', 1980, null, '2020-01-01', '2020-12-31', 'commercial', 'MA'),
        ('p2', 'male', 1975, '2021-03-01', '2020-01-01', '2021-12-31', 'medicaid', null)"""
    )
    con.execute(
        """insert into raw.medical_claim
        (claim_id, claim_line_number, person_id, claim_type, claim_start_date, claim_end_date, hcpcs_code,
         rendering_taxonomy_code, diagnosis_code_1, diagnosis_code_2)
        values
        ('c1', 1, 'p1', 'professional', '2020-02-01', '2020-02-01', '99213', '207Q00000X', 'M5450', 'I10'),
        ('c2', 1, 'p1', 'professional', '2021-02-01', '2021-02-01', '62323', '208VP0014X', 'M5450', null),
        ('c3', 1, 'p2', 'professional', '2021-04-01', '2021-04-01', '99213', null, 'I10', null),
        ('c4', 1, 'p3', 'professional', '2020-05-01', '2020-05-01', '72148', null, 'M5450', null)"""
    )
    con.execute("insert into raw.ehr_work_status values ('p1', '2020-02-03', 'off_work')")
    yield con
    con.close()


def test_table_sizes_counts_rows_and_persons(con):
    sizes = explore.table_sizes(con).set_index("table")
    assert sizes["rows"].to_dict() == {
        "eligibility": 2,
        "medical_claim": 4,
        "pharmacy_claim": 0,
        "ndc_reference": 0,
        "ehr_encounter": 0,
        "ehr_pro": 0,
        "ehr_work_status": 1,
    }
    assert sizes.loc["medical_claim", "persons"] == 3
    assert sizes["persons"].isna()["ndc_reference"]  # the table has no person_id


def test_date_coverage_by_year(con):
    claims = explore.date_coverage(con).query("table == 'medical_claim'")
    assert claims[["year", "rows"]].values.tolist() == [[2020, 2], [2021, 2]]
    assert set(pd.to_datetime(claims["first_date"])) == {pd.Timestamp(dt.date(2020, 2, 1))}
    assert set(pd.to_datetime(claims["last_date"])) == {pd.Timestamp(dt.date(2021, 4, 1))}


def test_code_frequencies_ranks_codes(con):
    dx = explore.code_frequencies(con, "diagnosis")
    assert dx.values.tolist() == [["M5450", 3, 2], ["I10", 2, 2]]
    procedures = explore.code_frequencies(con, "procedure", top=1)
    assert procedures.values.tolist() == [["99213", 2, 2]]
    with pytest.raises(ValueError, match="kind must be one of"):
        explore.code_frequencies(con, "drug")


def test_data_quality_findings(con):
    findings = explore.data_quality_findings(con).set_index("check")["count"]
    assert findings["persons with claims but no eligibility"] == 1  # p3
    # c2 (2021-02-01) is after p1's only span; c3 (2021-04-01) is inside p2's span; c4 has no span at all
    assert findings["claim lines outside every enrollment span"] == 2
    assert findings["claim lines after the person's death"] == 1  # c3 after p2 died 2021-03-01
    assert findings["persons with no work-status record"] == 1
    assert findings["persons with no patient-reported outcome"] == 2


def test_mart_reads_a_built_mart_in_key_order():
    from ipm_outcomes.cohort import MART_KEYS

    con = duckdb.connect()
    con.execute("create schema marts")
    con.execute(
        "create table marts.attrition as select * from (values ('rtw', 2, 'b', 5, 1), ('cohort', 1, 'a', 9, 0))"
        " t(population, step_order, step, remaining, excluded)"
    )
    assert MART_KEYS["attrition"][0] == "population"
    frame = explore.mart(con, "attrition")
    assert frame["population"].tolist() == ["cohort", "rtw"]
    with pytest.raises(ValueError, match="no mart 'cohorts'"):
        explore.mart(con, "cohorts")
