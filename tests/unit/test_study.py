"""Stage keys and the record of which key made the outputs on disk (the flow's caching rules)."""

from pathlib import Path

import pytest

from ipm_outcomes.spec import load_spec, spec_from_dict
from ipm_outcomes.study import (
    STAGE_SECTIONS,
    STAGES,
    StudyPaths,
    current_stages,
    outputs_present,
    record_stage,
    stage_keys,
)

EXTRACT = Path(__file__).parents[1] / "fixtures" / "extract_good"


@pytest.fixture()
def spec_json():
    """The shipped spec (named for the data it was once passed as; stage keys take the spec itself)."""
    return load_spec()


def _changed(spec, section, key, value):
    data = spec.to_toml_dict()
    data[section][key] = value
    return spec_from_dict(data, source=spec.source_path)


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


def _leaves(data, prefix=()):
    if isinstance(data, dict):
        for name, value in data.items():
            yield from _leaves(value, (*prefix, name))
    else:
        yield prefix, data


def _perturbed(value):
    """Another valid value of the same kind (a rule's value changed, a list's last entry moved)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, list) and value and isinstance(value[-1], int | float) and not isinstance(value[-1], bool):
        return [*value[:-1], value[-1] - 1]
    if isinstance(value, list) and len(value) > 1:
        return value[:-1]
    return None


def test_each_spec_key_reruns_exactly_the_stages_that_read_it():
    """``run`` rebuilds the cohort after a change to any cohort-affecting key, and re-fits or re-renders
    without rebuilding after a change to a key only the analysis or the report reads."""
    spec = load_spec()
    base = stage_keys(spec, EXTRACT)
    owner = {section: stage for stage, sections in STAGE_SECTIONS.items() for section in sections}
    tried = 0
    for path, value in _leaves(spec.to_toml_dict()):
        if path[0] == "valuesets":
            continue  # by content: see the test below
        new = _perturbed(value)
        if new is None:
            continue
        data = spec.to_toml_dict()
        node = data
        for name in path[:-1]:
            node = node[name]
        node[path[-1]] = new
        try:
            changed = spec_from_dict(data, source=spec.source_path)
        except Exception:
            continue  # the perturbation broke a cross-section rule; not a spec anyone can run
        first = STAGES.index(owner[path[0]])
        assert _differs(base, stage_keys(changed, EXTRACT)) == set(STAGES[first:]), ".".join(path)
        tried += 1
    assert tried >= 40


def test_an_edited_value_set_rebuilds_the_cohort(tmp_path):
    packaged = load_spec().valueset_paths()["red_flags"]
    edited = tmp_path / "red_flags.csv"
    edited.write_text(packaged.read_text())
    (tmp_path / "mine.toml").write_text(f'extends = "default"\n[valuesets]\nred_flags = "{edited.name}"\n')
    spec = load_spec(tmp_path / "mine.toml")
    base = stage_keys(spec, EXTRACT)
    assert base == stage_keys(load_spec(), EXTRACT)  # by content: the same bytes under another path
    edited.write_text(packaged.read_text() + "Z9989,icd10cm,an added code,test\n")
    assert _differs(base, stage_keys(spec, EXTRACT)) == {"build_cohort", "analyze", "report"}
