"""Stage keys and the record of which key made the outputs on disk (the flow's caching rules)."""

from pathlib import Path

import pytest

from ipm_outcomes.spec import load_spec
from ipm_outcomes.study import StudyPaths, current_stages, outputs_present, record_stage, stage_keys

EXTRACT = Path(__file__).parents[1] / "fixtures" / "extract_good"


@pytest.fixture()
def spec_json():
    return load_spec().model_dump(mode="json")


def _changed(spec_json, section, key, value):
    changed = {name: dict(body) if isinstance(body, dict) else body for name, body in spec_json.items()}
    changed[section][key] = value
    return changed


def _differs(a, b):
    return {stage for stage in ("ingest", "build_cohort", "analyze", "report") if getattr(a, stage) != getattr(b, stage)}


def test_keys_are_stable(spec_json):
    assert stage_keys(spec_json, EXTRACT) == stage_keys(spec_json, EXTRACT)


def test_a_report_setting_changes_only_the_report_key(spec_json):
    base = stage_keys(spec_json, EXTRACT)
    other = stage_keys(_changed(spec_json, "report", "min_cell_size", 20), EXTRACT)
    assert _differs(base, other) == {"report"}


def test_an_analysis_setting_refits_but_keeps_the_cohort(spec_json):
    base = stage_keys(spec_json, EXTRACT)
    other = stage_keys(_changed(spec_json, "analysis", "bootstrap_replicates", 7), EXTRACT)
    assert _differs(base, other) == {"analyze", "report"}


def test_a_cohort_rule_rebuilds_everything_after_ingest(spec_json):
    base = stage_keys(spec_json, EXTRACT)
    other = stage_keys(_changed(spec_json, "cohort", "washout_days", 180), EXTRACT)
    assert _differs(base, other) == {"build_cohort", "analyze", "report"}


def test_new_extract_bytes_or_package_version_rerun_everything(spec_json, tmp_path):
    base = stage_keys(spec_json, EXTRACT)
    copy = tmp_path / "extract"
    copy.mkdir()
    for file in EXTRACT.iterdir():
        (copy / file.name).write_bytes(file.read_bytes())
    assert stage_keys(spec_json, copy) == base  # content, not location
    (copy / "eligibility.csv").write_text((copy / "eligibility.csv").read_text() + "\n")
    assert _differs(base, stage_keys(spec_json, copy)) == {"ingest", "build_cohort", "analyze", "report"}
    assert _differs(base, stage_keys(spec_json, EXTRACT, package_version="9.9.9")) == {
        "ingest",
        "build_cohort",
        "analyze",
        "report",
    }


def test_outputs_made_under_another_key_are_not_current(spec_json, tmp_path):
    paths = StudyPaths(root=tmp_path, study="s")
    paths.make_dirs()
    keys_a = stage_keys(spec_json, EXTRACT)
    keys_b = stage_keys(_changed(spec_json, "report", "min_cell_size", 20), EXTRACT)
    assert current_stages(paths, keys_a) == dict.fromkeys(("ingest", "build_cohort", "analyze", "report"), False)

    paths.db_path.write_bytes(b"db")
    (paths.marts_dir / "cohort.parquet").write_bytes(b"p")
    (paths.results_dir / "results.json").write_text("{}")
    (paths.report_dir / "report.html").write_text("<html></html>")
    assert all(outputs_present(paths).values())
    for stage in ("ingest", "build_cohort", "analyze", "report"):
        record_stage(paths, stage, getattr(keys_a, stage))
    assert all(current_stages(paths, keys_a).values())

    record_stage(paths, "report", keys_b.report)  # spec B re-rendered the report
    assert current_stages(paths, keys_a) == {"ingest": True, "build_cohort": True, "analyze": True, "report": False}

    (paths.results_dir / "results.json").unlink()  # deleted outputs are never current
    assert current_stages(paths, keys_b)["analyze"] is False
