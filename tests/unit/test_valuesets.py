"""The shipped value sets hold the codes the study names; user value sets are validated and normalised."""

from __future__ import annotations

import csv
import datetime as dt

import pytest

from ipm_outcomes.errors import IpmError
from ipm_outcomes.spec import load_spec
from ipm_outcomes.valuesets import (
    REQUIRED_COLUMNS,
    load_valuesets,
    normalise_code,
    packaged_folder,
    packaged_names,
    read_valueset,
)


@pytest.fixture(scope="module")
def shipped():
    return load_valuesets(load_spec())


def _codes(vs) -> set[str]:
    return {e.code for e in vs.entries}


def test_every_packaged_file_is_named_by_the_default_spec_and_valid(shipped):
    assert sorted(shipped) == packaged_names()
    for name, vs in shipped.items():
        assert len(vs) > 0, name
        assert all(e.source and e.description for e in vs.entries), name


def test_shipped_files_store_codes_normalised_with_the_required_header():
    for path in sorted(packaged_folder().glob("*.csv")):
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert tuple(rows[0])[:4] == REQUIRED_COLUMNS, path.name
        for row in rows:
            assert row["code"] == normalise_code(row["code"]), f"{path.name}: {row['code']}"


def test_lbp_codes(shipped):
    expected = {
        "M5450", "M5451", "M5459", "M5430", "M5431", "M5432", "M5440", "M5441", "M5442", "M5416", "M5417",
        "M5116", "M5117", "M5126", "M5127", "M51360", "M51361", "M51362", "M51369", "M51370", "M51371",
        "M51372", "M51379", "M5186", "M5187", "M48061", "M48062", "M4807", "M47816", "M47817", "M4726",
        "M4727", "M4316", "M4317", "M533", "M5386", "M5387", "S335XXA", "S39012A",
        "M545", "M5136", "M5137",  # legacy codes, each with an end date
    }  # fmt: skip
    assert _codes(shipped["lbp"]) == expected


def test_legacy_m545_counts_only_before_2021_10_01(shipped):
    lbp = shipped["lbp"]
    assert lbp.matches("M54.5", on=dt.date(2021, 9, 30))
    assert not lbp.matches("M54.5", on=dt.date(2021, 10, 1))
    assert lbp.matches("m54.50", on=dt.date(2021, 10, 1))
    assert not lbp.matches("M54.50X")  # exact codes are not prefixes


def test_red_flags_cover_the_named_categories(shipped):
    red = shipped["red_flags"]
    for code in ("C00.0", "C96.9", "C7A.010", "S32.001A", "S32.10XA", "S22.000A", "M48.50XA", "M80.08XA",
                 "M46.20", "M46.30", "M46.47", "M46.50", "G06.1", "A18.01", "G83.4", "O00.0", "O9A.111",
                 "Z33.1", "Z34.00", "Z3A.20"):  # fmt: skip
        assert red.matches(code), code
    for code in ("D49.0", "S32.2XXA", "M46.1", "M46.6", "A18.0", "A18.02", "G83.5", "Z33.2", "M80.00XA"):
        assert not red.matches(code), code


def test_ipm_procedures_expand_the_cpt_ranges(shipped):
    expected = (
        {str(c) for c in range(62320, 62328)}
        | {str(c) for c in range(64479, 64485)}
        | {str(c) for c in range(64490, 64496)}
        | {str(c) for c in range(64633, 64637)}
        | {"27096", "G0260", "64451", "64625", "64628", "64629", "63650", "63655", "63685", "20552", "20553"}
    )
    assert _codes(shipped["ipm_procedures"]) == expected


def test_small_code_lists(shipped):
    assert _codes(shipped["ipm_taxonomies"]) == {"208VP0014X", "208VP0000X", "207LP2900X", "2081P2900X", "2084P2900X"}
    assert _codes(shipped["physical_therapy"]) == {
        "97110",
        "97112",
        "97140",
        "97161",
        "97162",
        "97163",
        "97164",
        "97530",
    }
    assert _codes(shipped["lumbar_imaging"]) == {"72131", "72132", "72133", "72148", "72149", "72158"}
    assert _codes(shipped["radiculopathy"]) <= _codes(shipped["lbp"])


@pytest.mark.parametrize(
    "component, inside, outside",
    [
        ("cci_mi", ["I21.09", "I22.0", "I25.2"], ["I25.10", "I20.0"]),
        ("cci_chf", ["I50.9", "I11.0", "I42.9", "I43", "P29.0"], ["I42.1", "I11.9"]),
        ("cci_cevd", ["I63.9", "G45.9", "H34.0"], ["I70.0", "H34.1"]),
        ("cci_copd", ["J44.9", "J45.909", "J68.4"], ["J68.0", "J48"]),
        ("cci_diabetes", ["E11.9", "E10.65", "E13.8"], ["E11.22", "E11.40"]),
        ("cci_diabetes_complicated", ["E11.22", "E10.40", "E11.7"], ["E11.9", "E11.65"]),
        ("cci_mild_liver", ["B18.2", "K70.30", "K76.0"], ["K70.40", "K76.1"]),
        ("cci_severe_liver", ["K72.10", "I85.00", "K76.7"], ["K72.00", "K70.30"]),
        ("cci_renal", ["N18.6", "I12.0", "Z99.2", "N03.2"], ["N03.1", "I12.9"]),
        ("cci_cancer", ["C18.9", "C43.9", "C50.911", "C97"], ["C44.91", "C77.0", "C80.1"]),
        ("cci_metastatic", ["C77.0", "C78.00", "C80.1"], ["C76.0", "C81.00"]),
        ("cci_hiv", ["B20"], ["B23.0", "Z21"]),
        ("cci_hemiplegia", ["G81.90", "G83.4", "G04.1"], ["G83.5", "G80.0"]),
    ],
)
def test_charlson_quan_2005_coding(shipped, component, inside, outside):
    vs = shipped[component]
    assert all(vs.matches(c) for c in inside), inside
    assert not any(vs.matches(c) for c in outside), outside


def test_mental_health_and_sleep(shipped):
    assert shipped["depression"].matches("F32.9") and shipped["depression"].matches("F33.1")
    assert not shipped["depression"].matches("F31.0")
    assert shipped["anxiety"].matches("F41.1") and not shipped["anxiety"].matches("F42.2")
    assert shipped["sleep_disorder"].matches("G47.33") and shipped["sleep_disorder"].matches("F51.01")


# -- user files -------------------------------------------------------------------------------


def _csv(tmp_path, text: str):
    path = tmp_path / "mine.csv"
    path.write_text(text)
    return path


def test_user_file_is_normalised_and_accepts_system_aliases(tmp_path):
    vs = read_valueset(
        "lbp",
        _csv(
            tmp_path,
            "code,system,description,source,valid_from,valid_to\n"
            "m54.50,ICD-10-CM,Low back pain,mine,,\n"
            "M54.5,icd10cm,Legacy,mine,,2021-09-30\n"
            "M48.0*,icd10cm,Spinal stenosis,mine,2020-01-01,\n"
            "64483,CPT,TFESI,mine,,\n",
        ),
    )
    assert [(e.code, e.system, e.valid_from, e.valid_to) for e in vs.entries] == [
        ("M5450", "icd10cm", None, None),
        ("M545", "icd10cm", None, dt.date(2021, 9, 30)),
        ("M480*", "icd10cm", dt.date(2020, 1, 1), None),
        ("64483", "hcpcs", None, None),
    ]
    assert len(vs.sha256) == 64


@pytest.mark.parametrize(
    "body, message",
    [
        ("code,system,description\nM5450,icd10cm,x\n", "lacks column(s) source"),
        ("code,system,description,source,colour\nM5450,icd10cm,x,y,red\n", "unknown column(s) colour"),
        (
            "code,system,description,source\nM54.5X!,icd10cm,x,y\n",
            "line 2, column code: 'M54.5X!' is not a valid icd10cm code",
        ),
        ("code,system,description,source\n62320-62327,cpt,x,y\n", "ranges must be written out code by code"),
        (
            "code,system,description,source\nM5450,snomed,x,y\n",
            "line 2, column system: 'snomed' is not a known code system",
        ),
        ("code,system,description,source\nM5450,icd10cm,x,\n", "line 2, column source is empty"),
        (
            "code,system,description,source,valid_from,valid_to\nM5450,icd10cm,x,y,,2021-02-30\n",
            "line 2, column valid_to: '2021-02-30' is not a date",
        ),
        (
            "code,system,description,source,valid_from,valid_to\nM5450,icd10cm,x,y,2022-01-01,2021-01-01\n",
            "valid_to 2021-01-01 is before valid_from",
        ),
        (
            "code,system,description,source\nM5450,icd10cm,x,y\nM54.50,icd10cm,x,y\n",
            "line 3: code M5450 repeats line 2",
        ),
        ("code,system,description,source\n", "has no codes"),
        ("code,system,description,source,group\nL600,icd10cm,x,y,Ingrown Nail\n", "column group: 'Ingrown Nail'"),
        ("code,system,description,source\n0SG0I0J,icd10pcs,x,y\n", "is not a valid icd10pcs code"),
        ("", "is empty"),
    ],
)
def test_bad_user_file_names_file_line_and_problem(tmp_path, body, message):
    path = _csv(tmp_path, body)
    with pytest.raises(IpmError) as info:
        read_valueset("lbp", path)
    text = str(info.value)
    assert text.startswith(str(path)) and message in text and "\n" not in text


def test_lumbar_surgery_lists_cpt_and_icd10pcs_with_sources(shipped):
    surgery = shipped["lumbar_surgery"]
    assert surgery.systems == {"hcpcs", "icd10pcs"}
    codes = _codes(surgery)
    assert {"22612", "22630", "22633", "63030", "63047", "62380"} <= codes  # fusion, discectomy, decompression
    assert {"0SG0*", "0SG1*", "0SB2*"} <= codes
    assert surgery.matches("0SG00AJ") and not surgery.matches("0SG20AJ")  # lumbar joint, not thoracic
    assert not codes & _codes(shipped["ipm_procedures"])
    assert all("Deyo" in e.source for e in surgery.entries if e.system == "hcpcs")
    assert all("match no claim yet" in e.source for e in surgery.entries if e.system == "icd10pcs")


def test_negative_controls_are_at_least_20_groups_with_sources(shipped):
    controls = shipped["negative_controls"]
    groups = {e.group for e in controls.entries}
    assert None not in groups and len(groups) >= 20
    assert {"ingrown_nail", "otitis_externa"} <= groups
    assert all("Schuemie" in e.source and "no plausible causal path" in e.source for e in controls.entries)
    # no negative control is a study diagnosis (index, red flag or covariate)
    for name in ("lbp", "red_flags", "depression", "anxiety", "sleep_disorder"):
        for entry in controls.entries:
            assert not any(other.matches(entry.match_code) for other in shipped[name].entries), (name, entry.code)


def test_group_column_is_read(tmp_path):
    path = _csv(tmp_path, "code,system,description,source,group\nL600,icd10cm,x,y,ingrown_nail\nH60*,icd10cm,x,y,\n")
    entries = read_valueset("nc", path).entries
    assert [(e.code, e.group) for e in entries] == [("L600", "ingrown_nail"), ("H60*", None)]
