"""Date-shifted extracts: refused as "future" without the option, loaded with ``--reference-date``, and
analysed to the same estimates as the unshifted extract."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from ipm_outcomes import analysis, cohort, ingest, lineage, synth
from ipm_outcomes.cli import app
from ipm_outcomes.errors import ValidationFailed
from ipm_outcomes.spec import load_spec
from ipm_outcomes.synth import date_shift_days

#: A multiple of 4 years that crosses no century year: every date keeps its month and day.
SHIFT_YEARS = 56
PERSONS, SEED = 1500, 3

runner = CliRunner()


def _spec(root: Path):
    path = root / "spec.toml"
    path.write_text('extends = "default"\n[analysis]\nbootstrap_replicates = 4\n')
    return load_spec(path)


@pytest.fixture(scope="module")
def extracts(tmp_path_factory):
    root = tmp_path_factory.mktemp("shift")
    synth.generate(root / "plain", persons=PERSONS, seed=SEED, file_format="parquet")
    synth.generate(root / "shifted", persons=PERSONS, seed=SEED, file_format="parquet", shift_years=SHIFT_YEARS)
    return root


def _reference_date() -> date:
    return date.today() + timedelta(days=date_shift_days(SHIFT_YEARS))


def test_a_shift_keeps_month_and_day_and_every_interval():
    days = date_shift_days(SHIFT_YEARS)
    for day in (date(2016, 2, 29), date(2019, 12, 31), date(2024, 3, 1)):
        moved = day + timedelta(days=days)
        assert (moved.year, moved.month, moved.day) == (day.year + SHIFT_YEARS, day.month, day.day)


def test_shifted_extract_is_refused_without_the_option(extracts, tmp_path):
    db = tmp_path / "db.duckdb"
    with pytest.raises(ValidationFailed) as caught:
        ingest.load_extract(extracts / "shifted", db)
    rules = {p.rule for p in caught.value.problems if p.is_error}
    assert rules == {"future_date", "birth_year_range"}
    assert not db.exists()


def test_cli_loads_it_with_a_reference_date_and_says_so(extracts, tmp_path):
    db = tmp_path / "db.duckdb"
    reference = _reference_date().isoformat()
    refused = runner.invoke(app, ["ingest", "--extract", str(extracts / "shifted"), "--db", str(db)])
    assert refused.exit_code == 1
    assert "if the extract's dates were shifted for de-identification, load it with --reference-date" in refused.output
    loaded = runner.invoke(
        app, ["ingest", "--extract", str(extracts / "shifted"), "--db", str(db), "--reference-date", reference]
    )
    assert loaded.exit_code == 0, loaded.output
    assert f"dates are shifted: plausibility checked against the reference date {reference}" in loaded.output
    con = duckdb.connect(str(db), read_only=True)
    load = lineage.read_load(con)
    con.close()
    assert load.reference_date == reference and load.date_shift_days == date_shift_days(SHIFT_YEARS)


def test_cli_refuses_a_reference_date_that_is_not_a_date(extracts, tmp_path):
    result = runner.invoke(
        app, ["ingest", "--extract", str(extracts / "plain"), "--db", str(tmp_path / "x.duckdb"), "--reference-date", "2131/01/01"]
    )
    assert result.exit_code == 1
    assert "--reference-date '2131/01/01' is not a date; give it as YYYY-MM-DD" in result.output


def test_cohort_and_estimates_equal_those_of_the_unshifted_extract(extracts, tmp_path):
    spec = _spec(tmp_path)
    days = date_shift_days(SHIFT_YEARS)
    results = {}
    cohorts = {}
    for name, reference in (("plain", None), ("shifted", _reference_date())):
        db = tmp_path / f"{name}.duckdb"
        ingest.load_extract(extracts / name, db, reference_date=reference)
        cohort.build(spec, db)
        analysis.run(spec, db, tmp_path / f"results_{name}", workers=1)
        results[name] = json.loads((tmp_path / f"results_{name}" / "results.json").read_text())
        con = duckdb.connect(str(db), read_only=True)
        cohorts[name] = con.execute("select * from marts.cohort order by person_id").df()
        con.close()

    plain, shifted = cohorts["plain"], cohorts["shifted"]
    assert len(plain) > 500
    date_columns = [c for c in plain.columns if str(plain[c].dtype).startswith("datetime")]
    assert "index_date" in date_columns
    for column in date_columns:
        assert (shifted[column] - plain[column]).dropna().dt.days.eq(days).all(), column
    assert (shifted["index_year"] - plain["index_year"]).eq(SHIFT_YEARS).all()
    others = [c for c in plain.columns if c not in date_columns and c != "index_year"]
    assert shifted[others].equals(plain[others])
    assert results["shifted"]["estimates"] == results["plain"]["estimates"]
    load = results["shifted"]["provenance"]["cohort_load"]
    assert load["dates_shifted"] is True and load["reference_date"] == _reference_date().isoformat()
    assert results["plain"]["provenance"]["cohort_load"]["dates_shifted"] is False

    from ipm_outcomes import report

    html = report.render(tmp_path / "results_shifted", tmp_path / "report", pdf=False).html.read_text()
    assert f"shifted for de-identification: plausibility checked against the reference date {_reference_date()}" in html
    assert str((extracts / "shifted").resolve()) in html
