"""The study spec: the shipped default, one-line errors for bad specs, extends, hashing, SQL parameters."""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from pathlib import Path

import pytest

from ipm_outcomes import marts
from ipm_outcomes.errors import IpmError
from ipm_outcomes.spec import (
    CHARLSON_COMPONENTS,
    StudySpec,
    load_spec,
    packaged_spec_path,
    spec_from_dict,
    spec_sha256,
)


def _default_data() -> dict:
    with open(packaged_spec_path(), "rb") as handle:
        return tomllib.load(handle)


def _write(tmp_path: Path, text: str, name: str = "study.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _error(tmp_path: Path, text: str) -> str:
    path = _write(tmp_path, 'extends = "default"\n' + text)
    with pytest.raises(IpmError) as info:
        load_spec(path)
    message = str(info.value)
    assert "\n" not in message, "errors are one line"
    assert message.startswith(f"{path}: ")
    return message.removeprefix(f"{path}: ")


def test_default_spec_holds_the_issue_defaults():
    spec = load_spec()
    assert isinstance(spec, StudySpec)
    c = spec.cohort
    assert (c.washout_days, c.baseline_enrollment_days, c.enrollment_gap_days) == (365, 365, 30)
    assert (c.age_min, c.age_max, c.followup_days, c.data_end_date) == (18, 64, 365, "auto")
    assert (spec.exposure.grace_period_days, spec.exposure.delay_categories) == (42, [14, 42, 90, 180])
    assert spec.outcomes.rtw.population_window_days == (-7, 14)
    assert spec.outcomes.qol.baseline_window_days == (-30, 0)
    assert (spec.outcomes.qol.horizons_days, spec.outcomes.qol.horizon_window_days) == ([90, 180, 365], 30)
    a = spec.analysis
    assert (a.bootstrap_replicates, a.weight_truncation_percentiles, a.sensitivity_grace_periods) == (
        200,
        (0, 100),
        [28, 42, 90],
    )
    assert spec.landmark_day == 42
    assert a.model_l2_penalty == 1e-4  # the penalty the study's models have always used, now stated
    assert a.mcid.model_dump() == {"odi": 10, "nrs_pain": 2, "promis_pi": 3.5, "promis_pf": 5, "eq5d_index": 0.08}
    assert a.horizons_days == [90, 180, 365]
    assert a.subgroups == ["age_band", "sex", "payer_type", "radiculopathy", "baseline_severity"]
    assert set(a.covariates) <= set(marts.COHORT_COLUMNS)
    assert spec.report.min_cell_size == 11
    assert spec.study.seed == 20261128
    assert spec.source_path == packaged_spec_path().resolve()


def test_repo_root_studies_default_is_the_packaged_spec():
    root = Path(__file__).resolve().parents[2] / "studies" / "default.toml"
    assert root.read_bytes() == packaged_spec_path().read_bytes()


def test_delay_categories_labels():
    assert [label for label, _, _ in load_spec().delay_categories()] == [
        "0-14",
        "15-42",
        "43-90",
        "91-180",
        ">180",
        "never",
    ]


def test_sql_params_are_plain_values():
    params = load_spec().sql_params()
    assert params["grace_period_days"] == 42
    assert params["data_end_date"] is None
    assert (params["rtw_window_start"], params["rtw_window_end"]) == (-7, 14)
    assert all(isinstance(v, (int, bool, type(None), dt.date)) for v in params.values())


def test_unknown_key_names_the_key_and_suggests_the_right_one(tmp_path):
    assert _error(tmp_path, "[cohort]\nage_mni = 20\n") == "unknown key cohort.age_mni (did you mean cohort.age_min?)"


def test_unknown_section(tmp_path):
    message = _error(tmp_path, "[cohrot]\nage_min = 20\n")
    assert message.startswith("unknown key cohrot (did you mean cohort?)")


def test_wrong_type_names_the_key_and_the_value(tmp_path):
    message = _error(tmp_path, '[cohort]\nage_min = "eighteen"\n')
    assert message.startswith("cohort.age_min: ")
    assert "'eighteen'" in message


def test_age_min_above_age_max_is_impossible(tmp_path):
    message = _error(tmp_path, "[cohort]\nage_min = 70\n")
    assert message == "cohort: age_min (70) is greater than age_max (64); no one could be eligible"


@pytest.mark.parametrize("grace", [0, -5])
def test_grace_period_must_be_positive(tmp_path, grace):
    assert _error(tmp_path, f"[exposure]\ngrace_period_days = {grace}\n") == (
        f"exposure.grace_period_days: must be at least 1 day, got {grace}"
    )


def test_horizon_beyond_follow_up(tmp_path):
    message = _error(tmp_path, "[outcomes.qol]\nhorizons_days = [90, 180, 400]\n")
    assert (
        message == "outcomes.qol.horizons_days [400] lie beyond cohort.followup_days (365); follow-up ends before them"
    )


def test_analysis_horizon_beyond_follow_up(tmp_path):
    message = _error(tmp_path, "[cohort]\nfollowup_days = 180\n")
    assert "beyond cohort.followup_days (180)" in message


@pytest.mark.parametrize(
    "text, expected",
    [
        ("[outcomes.rtw]\npopulation_window_days = [14, -7]\n", "population_window_days [14, -7] starts after it ends"),
        ("[outcomes.qol]\nhorizon_window_days = 90\n", "overlaps the baseline window"),
        ("[outcomes.qol]\nbaseline_window_days = [-30, 14]\n", "baseline_window_days [-30, 14] ends after index"),
        ("[outcomes.qol]\nbaseline_window_days = [-30, 1]\n", "a baseline score must be measured on or before the index day"),
        ("[outcomes.qol]\nhorizons_days = [90, 120]\n", "follow-up windows 90 +- 30 and 120 +- 30 days overlap"),
        ("[exposure]\ndelay_categories = [14, 90, 42]\n", "delay_categories must be strictly increasing"),
        ("[exposure]\ngrace_period_days = 400\n", "must be shorter than cohort.followup_days"),
        ("[analysis]\nweight_truncation_percentiles = [99, 1]\n", "need 0 <= low < high <= 100"),
        ("[analysis]\nlandmark_day = 0\n", "must be > 0 days"),
        ("[analysis]\nmodel_l2_penalty = -1e-4\n", "analysis.model_l2_penalty"),
        ('[analysis]\ncovariates = ["age", "shoe_size"]\n', "'shoe_size' not columns of marts.cohort"),
        ('[analysis]\nsubgroups = ["star_sign"]\n', "analysis.subgroups[0]"),
        (
            '[outcomes.rtw]\nevent_statuses = ["working", "off_work"]\n',
            "'off_work' is in both population_statuses and event_statuses",
        ),
        ('[outcomes.rtw]\nevent_statuses = ["employed"]\n', "outcomes.rtw.event_statuses[0]"),
        ('[outcomes.qol]\ninstruments = ["sf36"]\n', "outcomes.qol.instruments[0]"),
        ('[covariates.charlson_hierarchy]\ncci_mi = "cci_heart"\n', "'cci_heart' is not a Charlson component"),
        ("[report]\nmin_cell_size = 0\n", "report.min_cell_size"),
        ("[outcomes.long_term_opioid]\ndays_supply = 0\n", "outcomes.long_term_opioid.days_supply"),
        ("[outcomes.long_term_opioid]\nwindow = 180\n", "unknown key outcomes.long_term_opioid.window"),
        (
            '[outcomes.new_sleep_disorder]\ndiagnosis_valuesets = ["insomnia"]\n',
            "outcomes.new_sleep_disorder.diagnosis_valuesets: 'insomnia' is not a value set of [valuesets]",
        ),
        (
            '[outcomes.new_depression_anxiety]\ndiagnosis_valuesets = ["depression", "depression"]\n',
            "lists a value set twice",
        ),
        ('[outcomes.ed_visit_lbp]\nplaces_of_service = ["ER"]\n', "are not CMS place-of-service codes"),
        ('[outcomes.ed_visit_lbp]\nencounter_types = ["urgent"]\n', "outcomes.ed_visit_lbp.encounter_types[0]"),
        ("[outcomes.cost_lbp_365]\nrelated_only = false\n", "related_only = false would count every claim"),
        ("[outcomes.cost_total_365]\nrelated_only = true\n", "related_only = true needs diagnosis_valuesets"),
        ("[outcomes.negative_controls]\nnew_lookback_days = -1\n", "outcomes.negative_controls.new_lookback_days"),
    ],
)
def test_impossible_settings_are_rejected(tmp_path, text, expected):
    assert expected in _error(tmp_path, text)


def test_secondary_outcomes_hold_the_issue_defaults():
    out = load_spec().outcomes
    assert (out.long_term_opioid.days_supply, out.long_term_opioid.window_days) == (90, 180)
    assert out.new_depression_anxiety.diagnosis_valuesets == ["depression", "anxiety"]
    assert out.new_depression_anxiety.new_lookback_days == out.new_sleep_disorder.new_lookback_days == 365
    assert out.lumbar_surgery.procedure_valuesets == ["lumbar_surgery"]
    assert (out.ed_visit_lbp.places_of_service, out.ed_visit_lbp.encounter_types) == (["23"], ["ed"])
    assert out.cost_lbp_365.procedure_valuesets == ["ipm_procedures", "physical_therapy", "lumbar_imaging"]
    assert not out.cost_total_365.related_only and out.negative_controls.valueset == "negative_controls"
    params = load_spec().sql_params()
    assert (params["ltot_days_supply"], params["ltot_window_days"], params["opioid_naive_lookback_days"]) == (90, 180, 365)


def test_missing_key_without_extends(tmp_path):
    data = _default_data()
    del data["cohort"]["followup_days"]
    with pytest.raises(IpmError, match=r"^my\.toml: missing key cohort\.followup_days"):
        spec_from_dict(data, source="my.toml")


def test_several_problems_are_reported_together_on_one_line(tmp_path):
    message = _error(tmp_path, "[cohort]\nage_mni = 20\nwashout_days = 0\n")
    assert "unknown key cohort.age_mni" in message and "cohort.washout_days" in message
    assert "; " in message


def test_not_toml(tmp_path):
    path = _write(tmp_path, "[cohort\nage_min = 1\n")
    with pytest.raises(IpmError, match=r"not valid TOML"):
        load_spec(path)


def test_missing_file(tmp_path):
    with pytest.raises(IpmError, match=r"no such study spec file"):
        load_spec(tmp_path / "nope.toml")


def test_extends_overrides_only_what_it_names(tmp_path):
    path = _write(tmp_path, 'extends = "default"\n[exposure]\ngrace_period_days = 28\n[analysis]\nlandmark_day = 60\n')
    spec = load_spec(path)
    assert spec.exposure.grace_period_days == 28
    assert spec.exposure.delay_categories == [14, 42, 90, 180]  # inherited
    assert spec.landmark_day == 60
    assert spec.cohort.age_max == 64


def test_landmark_day_follows_the_grace_period_by_default(tmp_path):
    spec = load_spec(_write(tmp_path, 'extends = "default"\n[exposure]\ngrace_period_days = 28\n'))
    assert spec.landmark_day == 28


def test_extends_a_file_and_cycles_are_caught(tmp_path):
    _write(tmp_path, 'extends = "default"\n[cohort]\nage_max = 60\n', "base.toml")
    child = load_spec(_write(tmp_path, 'extends = "base.toml"\n[cohort]\nage_min = 21\n', "child.toml"))
    assert (child.cohort.age_min, child.cohort.age_max) == (21, 60)
    _write(tmp_path, 'extends = "b.toml"\n', "a.toml")
    _write(tmp_path, 'extends = "a.toml"\n', "b.toml")
    with pytest.raises(IpmError, match="a cycle"):
        load_spec(tmp_path / "a.toml")


def test_user_value_set_paths_are_relative_to_the_spec_file(tmp_path):
    folder = tmp_path / "sets"
    folder.mkdir()
    (folder / "my_lbp.csv").write_text("code,system,description,source\nM54.50,icd10cm,Low back pain,mine\n")
    spec = load_spec(_write(tmp_path, 'extends = "default"\n[valuesets]\nlbp = "sets/my_lbp.csv"\n'))
    paths = spec.valueset_paths()
    assert paths["lbp"] == (folder / "my_lbp.csv").resolve()
    assert paths["red_flags"].name == "red_flags.csv"


def test_unknown_packaged_value_set_is_an_error(tmp_path):
    spec = load_spec(_write(tmp_path, 'extends = "default"\n[valuesets]\nlbp = "lbp_v9"\n'))
    with pytest.raises(IpmError, match=r"valuesets\.lbp: no packaged value set named 'lbp_v9'"):
        spec.valueset_paths()


def test_spec_hash_is_stable_and_tracks_design_and_value_set_content(tmp_path):
    default = spec_sha256(load_spec())
    assert re.fullmatch(r"[0-9a-f]{64}", default)
    assert spec_sha256(load_spec()) == default
    # the same design from another file (and another folder) hashes the same
    assert spec_sha256(load_spec(_write(tmp_path, 'extends = "default"\n'))) == default
    assert (
        spec_sha256(load_spec(_write(tmp_path, 'extends = "default"\n[report]\nmin_cell_size = 5\n', "b.toml")))
        != default
    )
    csv = tmp_path / "lbp.csv"
    csv.write_text("code,system,description,source\nM5450,icd10cm,Low back pain,mine\n")
    spec = load_spec(_write(tmp_path, 'extends = "default"\n[valuesets]\nlbp = "lbp.csv"\n', "c.toml"))
    before = spec_sha256(spec)
    csv.write_text("code,system,description,source\nM5451,icd10cm,Vertebrogenic low back pain,mine\n")
    assert spec_sha256(spec) != before


def test_charlson_weights_cover_every_component():
    spec = load_spec()
    assert tuple(spec.covariates.charlson_weights.model_dump()) == CHARLSON_COMPONENTS
    assert set(spec.valuesets.model_dump()) >= set(CHARLSON_COMPONENTS)


def test_spec_is_immutable():
    spec = load_spec()
    with pytest.raises(Exception):  # noqa: B017 - pydantic raises its own ValidationError subclass
        spec.cohort.age_min = 30


def test_a_value_of_several_allowed_forms_gets_one_message(tmp_path):
    message = _error(tmp_path, '[cohort]\ndata_end_date = "2024-13-01"\n')
    assert message.startswith("cohort.data_end_date: input should be a valid date")
    assert message.endswith("or input should be 'auto' (got '2024-13-01')")


def test_a_fixed_data_end_date_is_a_date(tmp_path):
    spec = load_spec(_write(tmp_path, 'extends = "default"\n[cohort]\ndata_end_date = 2024-12-31\n'))
    assert spec.sql_params()["data_end_date"] == dt.date(2024, 12, 31)
