"""From CSV files through ingest to the marts: codes written with or without dots mean the same thing."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from miniature import read_marts, spec_with

from ipm_outcomes import cohort

ingest = pytest.importorskip("ipm_outcomes.ingest")

ELIGIBILITY = """person_id,gender,birth_year,death_date,enrollment_start_date,enrollment_end_date,payer_type,state
dotted,female,1980,,2020-01-01,2023-12-31,commercial,OH
undotted,male,1985,,2020-01-01,2023-12-31,medicaid,OH
lower,female,1990,,2020-01-01,2023-12-31,commercial,OH
legacy_before,male,1970,,2020-01-01,2023-12-31,commercial,OH
legacy_after,male,1970,,2020-01-01,2023-12-31,commercial,OH
"""

HEADER = (
    "claim_id,claim_line_number,person_id,claim_type,claim_start_date,claim_end_date,place_of_service_code,"
    "rendering_npi,rendering_taxonomy_code,hcpcs_code,hcpcs_modifier_1,allowed_amount,paid_amount,"
    "diagnosis_code_1,diagnosis_code_2"
)
CLAIMS = [
    "C1,1,dotted,professional,2022-03-01,2022-03-01,11,,,99213,,100,80,M54.50,",
    "C2,1,dotted,professional,2022-03-20,2022-03-20,11,,208vp0014x,64483,,900,700,M51.16,",
    "C3,1,undotted,professional,2022-04-01,2022-04-01,11,,,99213,,100,80,Z0000,M5416",
    "C4,1,undotted,professional,2022-06-01,2022-06-01,11,,,64493,,900,700,M4726,",
    "C5,1,lower,institutional,2022-05-05,2022-05-05,22,,,,,300,200, m48.062 ,",
    "C6,1,legacy_before,professional,2021-09-30,2021-09-30,11,,,99213,,100,80,M54.5,",
    "C7,1,legacy_after,professional,2021-10-01,2021-10-01,11,,,99213,,100,80,M54.5,",
    "C8,1,legacy_after,professional,2023-06-30,2023-06-30,11,,,99213,,100,80,J06.9,",
]


def _write_extract(folder: Path) -> Path:
    folder.mkdir()
    (folder / "eligibility.csv").write_text(ELIGIBILITY)
    (folder / "medical_claim.csv").write_text("\n".join([HEADER, *CLAIMS]) + "\n")
    return folder


@pytest.fixture(scope="module")
def marts(tmp_path_factory):
    root = tmp_path_factory.mktemp("roundtrip")
    db_path = root / "study.duckdb"
    ingest.load_extract(_write_extract(root / "extract"), db_path, today=dt.date(2024, 1, 1))
    return read_marts(db_path, cohort.build(spec_with(), db_path))


def test_dotted_undotted_and_lower_case_codes_index_alike(marts):
    got = {r.person_id: r.index_date.date() for r in marts.cohort.itertuples()}
    assert got == {
        "dotted": dt.date(2022, 3, 1),
        "undotted": dt.date(2022, 4, 1),  # M5416 in the second position
        "lower": dt.date(2022, 5, 5),  # ' m48.062 ' on an institutional claim
        "legacy_before": dt.date(2021, 9, 30),
    }


def test_legacy_m545_after_its_end_date_is_not_low_back_pain(marts):
    assert "legacy_after" not in set(marts.eligibility.person_id)


def test_referral_from_ingested_codes(marts):
    got = {
        p: (
            marts.cohort_row(p)["days_to_referral"],
            marts.cohort_row(p)["referral_source"],
            marts.cohort_row(p)["exposure"],
        )
        for p in ("dotted", "undotted", "lower")
    }
    # 'dotted': 64483 rendered by a lower-case IPM taxonomy on day 19; 'undotted': 64493 on day 61
    assert got == {
        "dotted": (19, "procedure", "early"),
        "undotted": (61, "procedure", "delayed"),
        "lower": (None, None, "delayed"),
    }


def test_radiculopathy_and_absent_optional_tables(marts):
    assert marts.cohort_row("undotted")["radiculopathy"] == 1
    assert marts.cohort_row("dotted")["opioid_use"] is None  # no pharmacy files in the extract
    assert marts.rtw.empty
    assert marts.cohort_row("dotted")["data_end_day"] == (dt.date(2023, 6, 30) - dt.date(2022, 3, 1)).days
