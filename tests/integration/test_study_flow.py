"""The study flow end to end under a temporary Prefect API: outputs, caching, and a failing ingest."""

from __future__ import annotations

import shutil

import pytest

from ipm_outcomes import synth
from ipm_outcomes.errors import ValidationFailed
from ipm_outcomes.fingerprint import sha256_file
from ipm_outcomes.spec import spec_from_dict

prefect_testing = pytest.importorskip("prefect.testing.utilities")


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory):
    from prefect.settings import PREFECT_LOCAL_STORAGE_PATH, temporary_settings

    # Cached task results live in result storage, not in the harness's temporary database: keep
    # them per test session so a cache hit can only come from this session's runs.
    storage = tmp_path_factory.mktemp("prefect-results")
    with temporary_settings({PREFECT_LOCAL_STORAGE_PATH: storage}):
        with prefect_testing.prefect_test_harness(server_startup_timeout=180):
            yield


@pytest.fixture(scope="module")
def extract_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("extract")
    synth.generate(folder, persons=3_000, seed=7, file_format="parquet")
    return folder


@pytest.fixture(scope="module")
def first_run(prefect_api, fast_spec, extract_dir, tmp_path_factory):
    from pipelines.flows import study_flow

    out = tmp_path_factory.mktemp("study")
    return study_flow(spec=fast_spec, extract_dir=extract_dir, out_dir=out), out


def test_study_flow_produces_every_output(first_run):
    run, _ = first_run
    assert run.stages_run == ["ingest", "build_cohort", "analyze", "report"]
    assert run.stages_cached == []
    assert (run.paths.results_dir / "results.json").is_file()
    assert run.report_html is not None and run.report_html.is_file()
    assert any(run.paths.marts_dir.glob("cohort.parquet"))


def test_second_run_is_served_from_cache(first_run, fast_spec, extract_dir):
    from pipelines.flows import study_flow

    run, out = first_run
    results_hash = sha256_file(run.paths.results_dir / "results.json")
    again = study_flow(spec=fast_spec, extract_dir=extract_dir, out_dir=out)
    assert again.stages_run == []
    assert again.stages_cached == ["ingest", "build_cohort", "analyze", "report"]
    # the fit did not run again: its output file is untouched
    assert sha256_file(run.paths.results_dir / "results.json") == results_hash


def test_changing_only_report_settings_rerenders_without_refitting(first_run, fast_spec, extract_dir):
    from pipelines.flows import study_flow

    _, out = first_run
    data = fast_spec.to_toml_dict()
    data["report"]["min_cell_size"] = fast_spec.report.min_cell_size + 5
    again = study_flow(spec=spec_from_dict(data), extract_dir=extract_dir, out_dir=out)
    assert again.stages_run == ["report"]
    assert again.stages_cached == ["ingest", "build_cohort", "analyze"]


def test_failing_ingest_fails_the_flow_and_keeps_earlier_outputs(first_run, fast_spec, extract_dir, tmp_path):
    from pipelines.flows import study_flow

    run, out = first_run
    bad = tmp_path / "bad_extract"
    shutil.copytree(extract_dir, bad)
    (bad / "eligibility.parquet").unlink()  # a required table is missing
    before = {p: sha256_file(p) for p in (run.paths.db_path, run.paths.results_dir / "results.json")}
    with pytest.raises(ValidationFailed, match="eligibility"):
        study_flow(spec=fast_spec, extract_dir=bad, out_dir=out)
    assert {p: sha256_file(p) for p in before} == before
