"""The command line: commands chain, errors are one line with a non-zero exit, --debug shows the traceback."""

import json

import pytest
from typer.testing import CliRunner

from ipm_outcomes.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def loaded_db(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    extract, db = root / "extract", root / "study.duckdb"
    synth = runner.invoke(app, ["synth", "--out", str(extract), "--persons", "400", "--seed", "3"])
    assert synth.exit_code == 0, synth.output
    assert (extract / "truth.json").is_file()
    ingest = runner.invoke(app, ["ingest", "--extract", str(extract), "--db", str(db)])
    assert ingest.exit_code == 0, ingest.output
    return root, extract, db


def test_cohort_builds_marts_and_exports(loaded_db):
    root, extract, db = loaded_db
    result = runner.invoke(app, ["cohort", "--db", str(db), "--export", str(root / "marts")])
    assert result.exit_code == 0, result.output
    counts = json.loads((extract / "truth.json").read_text())["counts"]
    assert (root / "marts" / "cohort.parquet").is_file()
    assert f"exposure: {counts['early']} early, {counts['delayed']} delayed" in result.output


def test_bad_extract_is_one_line_and_exit_1(tmp_path):
    result = runner.invoke(app, ["ingest", "--extract", str(tmp_path / "missing"), "--db", str(tmp_path / "x.duckdb")])
    assert result.exit_code == 1
    assert "no such extract folder" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "x.duckdb").exists()


def test_report_is_written_whatever_the_failure(tmp_path):
    folder_as_file = tmp_path / "extract.csv"
    folder_as_file.write_text("person_id\n")
    report = tmp_path / "report.json"
    args = ["ingest", "--extract", str(folder_as_file), "--db", str(tmp_path / "x.duckdb"), "--report", str(report)]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    content = json.loads(report.read_text())
    assert (content["passed"], [p["rule"] for p in content["problems"]]) == (False, ["load_failed"])
    assert content["problems"][0]["message"] == f"{folder_as_file}: no such extract folder; give the folder that holds eligibility.csv etc."
    report.unlink()
    result = runner.invoke(app, ["ingest", "--db", str(tmp_path / "x.duckdb"), "--report", str(report)])
    assert result.exit_code == 1
    assert [p["message"] for p in json.loads(report.read_text())["problems"]] == [
        "give exactly one of --extract DIR or --omop SOURCE"
    ]


def test_debug_shows_the_traceback(tmp_path):
    result = runner.invoke(
        app, ["--debug", "ingest", "--extract", str(tmp_path / "missing"), "--db", str(tmp_path / "x.duckdb")]
    )
    assert result.exit_code != 0
    assert result.exception is not None and "no such extract folder" in str(result.exception)


def test_ingest_needs_exactly_one_source(tmp_path):
    result = runner.invoke(app, ["ingest", "--db", str(tmp_path / "x.duckdb")])
    assert result.exit_code == 1
    assert "give exactly one of --extract DIR or --omop SOURCE" in result.output


def test_unknown_spec_key_is_reported(tmp_path, loaded_db):
    _, _, db = loaded_db
    spec = tmp_path / "mine.toml"
    spec.write_text('extends = "default"\n[cohort]\nwashout_dayz = 100\n')
    result = runner.invoke(app, ["cohort", "--db", str(db), "--spec", str(spec)])
    assert result.exit_code == 1
    assert "mine.toml" in result.output and "washout_dayz" in result.output


def test_synth_writes_the_real_referral_world_on_request(tmp_path):
    plain = runner.invoke(app, ["synth", "--out", str(tmp_path / "plain"), "--persons", "300", "--seed", "3", "--format", "parquet"])
    real = runner.invoke(
        app, ["synth", "--out", str(tmp_path / "real"), "--persons", "300", "--seed", "3", "--format", "parquet", "--real-referral"]
    )
    assert plain.exit_code == 0 and real.exit_code == 0, real.output
    mechanisms = json.loads((tmp_path / "real" / "truth.json").read_text())["mechanisms"]
    assert mechanisms["post_rtw_referral_rate"] == 0.3 and mechanisms["logistic_referral"] is True
    assert json.loads((tmp_path / "plain" / "truth.json").read_text())["mechanisms"]["post_rtw_referral_rate"] == 0.0


def test_synth_secondary_hr_sets_every_secondary_outcome(tmp_path):
    args = ["synth", "--out", str(tmp_path / "null"), "--persons", "300", "--seed", "3", "--format", "parquet"]
    result = runner.invoke(app, [*args, "--secondary-hr", "1"])
    assert result.exit_code == 0, result.output
    secondary = json.loads((tmp_path / "null" / "truth.json").read_text())["secondary_outcomes"]
    assert set(secondary["effect_hazard_ratios"].values()) == {1.0}
    bad = runner.invoke(app, [*args, "--secondary-hr", "-2"])
    assert bad.exit_code == 1 and "must be a positive finite hazard ratio" in bad.output


def test_validate_checks_an_extract_without_loading_it(good_extract, tmp_path):
    clean = runner.invoke(app, ["validate", "--extract", str(good_extract), "--reference-date", "2025-06-30"])
    assert clean.exit_code == 0, clean.output
    assert clean.output.strip() == f"{good_extract}: meets the input contract (0 warnings)"
    rows = (good_extract / "eligibility.csv").read_text().splitlines()
    rows[3] = rows[3].replace(",male,", ",M,")
    (good_extract / "eligibility.csv").write_text("\n".join(rows) + "\n")
    report = tmp_path / "problems.json"
    bad = runner.invoke(
        app, ["validate", "--extract", str(good_extract), "--reference-date", "2025-06-30", "--report", str(report)]
    )
    assert bad.exit_code == 1
    assert "eligibility.csv, column gender, row 3: 1 value is not one of male, female, unknown (e.g. 'm')" in " ".join(bad.output.split())
    assert "Traceback" not in bad.output
    written = json.loads(report.read_text())
    assert (written["passed"], [(p["file"], p["column"], p["rule"], p["rows"]) for p in written["problems"]]) == (
        False,
        [("eligibility.csv", "gender", "allowed_values", [3])],
    )
    assert not list(tmp_path.glob("*.duckdb"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source-path", "x"], "--source-path applies only to --engine spark"),
        ([], "give the extract folder as --extract DIR"),
        (["--engine", "spark", "--extract", "x"], "with --engine spark give --source-path DIR (Parquet) or --source-schema NAME"),
        (["--engine", "spark", "--source-path", "x", "--threads", "2"], "--threads applies only to --engine duckdb"),
        (["--engine", "oracle", "--extract", "x"], "unknown engine 'oracle'"),
    ],
)
def test_validate_refuses_options_of_the_other_engine(args, message):
    result = runner.invoke(app, ["validate", *args])
    assert result.exit_code == 1
    assert message in " ".join(result.output.split())
