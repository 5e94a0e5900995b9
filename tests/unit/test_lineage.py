"""A stage that reads another's outputs checks they were made from the same load, spec and version.

Each refusal is one line naming what differs and the command that fixes it, and writes nothing.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest

from ipm_outcomes import analysis, cohort, ingest, lineage
from ipm_outcomes.errors import IpmError
from ipm_outcomes.spec import StudySpec, load_spec, packaged_spec_path, spec_from_dict
from ipm_outcomes.study import STAGE_SECTIONS, STAGES, stage_spec


def _spec_file(folder: Path, body: str, name: str = "mine.toml") -> StudySpec:
    path = folder / name
    path.write_text('extends = "default"\n' + body)
    return load_spec(path)


@pytest.fixture()
def built(tmp_path, good_extract):
    """A database with the good extract loaded and its cohort built with the default spec."""
    db = tmp_path / "study.duckdb"
    ingest.load_extract(good_extract, db)
    cohort.build(load_spec(), db)
    return db


def _refusal(spec: StudySpec, db: Path, out: Path) -> str:
    with pytest.raises(IpmError) as caught:
        analysis.run(spec, db, out, workers=1)
    assert not out.exists(), "a refused analysis must write nothing"
    return str(caught.value)


def test_every_spec_section_belongs_to_exactly_one_stage():
    declared = [section for stage in STAGES for section in STAGE_SECTIONS[stage]]
    assert sorted(declared) == sorted(StudySpec.model_fields)
    assert len(declared) == len(set(declared))


def test_the_issue_example_grace_period_drift_is_refused_with_the_fix(tmp_path, built):
    spec = _spec_file(tmp_path, "[exposure]\ngrace_period_days = 28\n")
    message = _refusal(spec, built, tmp_path / "results")
    assert message == (
        f"{built}: the cohort was built with exposure.grace_period_days = 42, this spec says 28: "
        f"rebuild it with `ipm-outcomes cohort --db {built} --spec {tmp_path / 'mine.toml'}`"
    )


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ("[cohort]\nwashout_days = 180\n", "cohort.washout_days = 365, this spec says 180"),
        ("[exposure]\ndelay_categories = [14, 42, 120, 180]\n", "exposure.delay_categories = [14, 42, 90, 180]"),
        ("[covariates]\nbaseline_days = 180\n", "covariates.baseline_days = 365, this spec says 180"),
        ("[outcomes.rtw]\ndeath_is_competing = false\n", "outcomes.rtw.death_is_competing = true, this spec says false"),
        ("[outcomes.qol]\nhorizons_days = [90, 180]\n", "outcomes.qol.horizons_days = [90, 180, 365], this spec says [90, 180]"),
    ],
)
def test_drift_in_each_cohort_section_is_refused(tmp_path, built, body, key):
    message = _refusal(_spec_file(tmp_path, body), built, tmp_path / "results")
    assert key in message and "rebuild it with `ipm-outcomes cohort --db" in message


def test_an_edited_value_set_file_is_refused_even_under_the_same_name(tmp_path, built):
    packaged = load_spec().valueset_paths()["red_flags"]
    edited = tmp_path / "red_flags.csv"
    shutil.copy(packaged, edited)
    edited.write_text(edited.read_text() + "Z9989,icd10cm,an added code,test\n")
    spec = _spec_file(tmp_path, f'[valuesets]\nred_flags = "{edited.name}"\n')
    message = _refusal(spec, built, tmp_path / "results")
    assert "valuesets.red_flags = (another file content)" in message


def test_changes_only_the_analysis_or_report_read_need_no_rebuild(tmp_path, built):
    spec = _spec_file(
        tmp_path,
        '[study]\ntitle = "Another title"\nseed = 7\n'
        "[analysis]\nbootstrap_replicates = 3\nhorizons_days = [90, 180]\n[report]\nmin_cell_size = 20\n",
    )
    con = duckdb.connect(str(built), read_only=True)
    try:
        record = lineage.check_cohort(con, spec, built)
    finally:
        con.close()
    assert record.spec == stage_spec(load_spec(), "build_cohort")


def test_a_cohort_left_from_a_previous_load_is_refused(tmp_path, built, good_extract):
    con = duckdb.connect(str(built), read_only=True)
    first = lineage.read_load(con)
    con.close()
    other = tmp_path / "extract_b"
    shutil.copytree(good_extract, other)
    eligibility = other / "eligibility.csv"
    lines = eligibility.read_text().splitlines()
    eligibility.write_text("\n".join(lines + [lines[-1].replace(lines[-1].split(",")[0], "P-NEW", 1)]) + "\n")
    ingest.load_extract(other, built)

    message = _refusal(load_spec(), built, tmp_path / "results")

    assert message.startswith(f"{built}: the cohort was built from the extract {good_extract.resolve()} loaded at ")
    assert f"but the database now holds the extract {other.resolve()} loaded at " in message
    assert first.loaded_at in message
    assert message.endswith(f"rebuild it with `ipm-outcomes cohort --db {built}`")


def test_reloading_the_same_bytes_keeps_the_cohort_valid(built, good_extract):
    ingest.load_extract(good_extract, built)
    con = duckdb.connect(str(built), read_only=True)
    try:
        lineage.check_cohort(con, load_spec(), built)
    finally:
        con.close()


def test_a_cohort_from_another_package_version_is_refused(tmp_path, built, monkeypatch):
    monkeypatch.setattr(lineage, "__version__", "9.9.9")
    message = _refusal(load_spec(), built, tmp_path / "results")
    assert "the cohort was built by ipm-outcomes 0.1.0, this is 9.9.9; rebuild it with" in message


def test_a_cohort_built_before_builds_were_recorded_is_refused(tmp_path, built):
    con = duckdb.connect(str(built))
    con.execute("alter table meta.cohort_build drop column inputs_json")
    con.close()
    message = _refusal(load_spec(), built, tmp_path / "results")
    assert "does not record what it was built from (built by an older version); rebuild it with" in message


def test_spec_differences_name_dotted_keys():
    built = {"exposure": {"grace_period_days": 42, "delay_categories": [14, 42]}, "cohort": {"age_min": 18}}
    now = {"exposure": {"grace_period_days": 28, "delay_categories": [14, 42]}, "cohort": {"age_min": 21}}
    assert lineage.spec_differences(built, now) == [
        ("cohort.age_min", 18, 21),
        ("exposure.grace_period_days", 42, 28),
    ]


def test_the_packaged_spec_is_not_named_in_the_fix(built):
    spec = load_spec(packaged_spec_path())
    assert lineage.rebuild_command(spec, built) == f"`ipm-outcomes cohort --db {built}`"


def test_spec_in_code_has_the_same_cohort_sections_as_from_file():
    from_file = load_spec()
    in_code = spec_from_dict(from_file.to_toml_dict())
    assert stage_spec(in_code, "build_cohort") == stage_spec(from_file, "build_cohort")


def test_results_record_the_load_the_cohort_was_built_from(tmp_path, built):
    """The provenance of results.json names the build's load, taken from the build record."""
    con = duckdb.connect(str(built), read_only=True)
    try:
        record = lineage.check_cohort(con, load_spec(), built)
        now = lineage.read_load(con)
    finally:
        con.close()
    assert record.load == now
    assert json.loads(json.dumps(record.load.to_dict()))["data_sha256"] == now.data_sha256


def test_results_from_an_older_schema_get_a_re_run_line(tmp_path):
    from ipm_outcomes.report_data import READABLE_SCHEMA_VERSIONS, RESULTS_SCHEMA_VERSION, load_results

    results = tmp_path / "results"
    shutil.copytree(Path(__file__).parents[1] / "fixtures" / "results_small", results)
    data = json.loads((results / "results.json").read_text())
    assert data["schema_version"] in READABLE_SCHEMA_VERSIONS
    load_results(results / "results.json")  # the file itself names its folder
    del data["schema_version"]
    (results / "results.json").write_text(json.dumps(data))
    with pytest.raises(IpmError) as caught:
        load_results(results)
    assert str(caught.value) == (
        f"{results / 'results.json'}: results written by ipm-outcomes 0.1.0 in results schema 1; this version "
        f"reads schema 3 or {RESULTS_SCHEMA_VERSION}: re-run `ipm-outcomes analyze --db DB --out {results}`"
    )


def test_ingest_from_omop_passes_on_every_option(tmp_path, monkeypatch):
    """--threads, --memory-limit, --allow-identifiers and --reference-date reach the load for an OMOP source too."""
    from typer.testing import CliRunner

    from ipm_outcomes.cli import app

    seen = {}
    real = ingest.load_extract

    def recording(extract_dir, db_path, **options):
        seen.update(options)
        return real(extract_dir, db_path, **options)

    monkeypatch.setattr(ingest, "load_extract", recording)
    omop = Path(__file__).parents[1] / "fixtures" / "omop_mini"
    db = tmp_path / "omop.duckdb"
    args = ["ingest", "--omop", str(omop), "--db", str(db), "--threads", "1", "--memory-limit", "1GB",
            "--allow-identifiers", "--reference-date", "2040-01-01"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert seen["threads"] == 1 and seen["memory_limit"] == "1GB" and seen["allow_identifiers"] is True
    con = duckdb.connect(str(db), read_only=True)
    load = lineage.read_load(con)
    allowed = con.execute("select allow_identifiers from meta.load").fetchone()[0]
    con.close()
    assert load.reference_date == "2040-01-01" and allowed is True


def test_an_option_that_does_not_apply_is_refused_not_ignored(tmp_path, good_extract):
    from typer.testing import CliRunner

    from ipm_outcomes.cli import app

    result = CliRunner().invoke(
        app, ["ingest", "--extract", str(good_extract), "--db", str(tmp_path / "x.duckdb"), "--omop-schema", "cdm"]
    )
    assert result.exit_code == 1
    assert "--omop-schema applies only to an --omop source" in result.output
    assert not (tmp_path / "x.duckdb").exists()


def test_notebook_warnings_name_a_stale_cohort_and_results_from_another_build(tmp_path, built, good_extract):
    con = duckdb.connect(str(built), read_only=True)
    build = lineage.read_cohort_build(con)
    assert lineage.inconsistencies(con) == []
    matching = {"cohort_built_at": build.built_at, "cohort_load": {"data_sha256": build.load.data_sha256}}
    assert lineage.inconsistencies(con, matching) == []
    older = {**matching, "cohort_built_at": "2020-01-01 00:00:00"}
    assert lineage.inconsistencies(con, older) == [
        "the results were computed from the cohort built at 2020-01-01 00:00:00, but the database holds the one "
        f"built at {build.built_at}: re-run `ipm-outcomes analyze`"
    ]
    con.close()

    other = tmp_path / "extract_b"
    shutil.copytree(good_extract, other)
    (other / "pharmacy_claim.csv").unlink()
    ingest.load_extract(other, built)
    con = duckdb.connect(str(built), read_only=True)
    problems = lineage.inconsistencies(con)
    con.close()
    assert len(problems) == 1
    assert problems[0].startswith(f"the cohort was built from the extract {good_extract.resolve()} loaded at ")
    assert problems[0].endswith("rebuild it with `ipm-outcomes cohort`")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--extract", "{extract}", "--persons", "500"], "--persons sizes the generated synthetic extract; drop it"),
        (["--cluster", "tcp://127.0.0.1:8786"], "--cluster is the address of a Dask or Ray cluster; add --task-runner"),
    ],
)
def test_run_refuses_options_it_would_ignore(tmp_path, good_extract, args, message):
    from typer.testing import CliRunner

    from ipm_outcomes.cli import app

    args = [a.format(extract=good_extract) for a in args]
    result = CliRunner().invoke(app, ["run", "--out", str(tmp_path / "out"), *args])
    assert result.exit_code == 1
    assert message in result.output
    assert not (tmp_path / "out").exists()


def test_an_omop_load_records_its_source_not_the_temporary_folder(tmp_path):
    from ipm_outcomes import omop

    db = tmp_path / "omop.duckdb"
    source = Path(__file__).parents[1] / "fixtures" / "omop_mini"
    omop.load_omop(source, db)
    con = duckdb.connect(str(db), read_only=True)
    load = lineage.read_load(con)
    con.close()
    assert load.extract_path == f"OMOP {source.resolve()}"
