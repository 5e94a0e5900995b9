"""Smaller defects of issue 13: fail fast on a missing extract, no empty output folder after a failed
analysis, ``--results DIR/results.json`` accepted, the plots module leaves the matplotlib backend alone."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from ipm_outcomes.cli import app

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def test_run_with_a_missing_extract_fails_at_once_in_one_line(tmp_path):
    started = time.time()
    result = CliRunner().invoke(app, ["run", "--extract", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "no such extract folder" in lines[0], result.output
    assert "Traceback" not in result.output
    assert time.time() - started < 10
    assert not (tmp_path / "out").exists(), "no empty output folders"


def test_failed_analyze_leaves_no_empty_out_folder(tmp_path):
    import duckdb

    db = tmp_path / "empty.duckdb"
    duckdb.connect(str(db)).close()
    out = tmp_path / "results"
    result = CliRunner().invoke(app, ["analyze", "--db", str(db), "--out", str(out)])
    assert result.exit_code == 1
    assert "build the cohort first" in result.output
    assert not out.exists()


def test_report_accepts_the_results_file_itself(tmp_path):
    from ipm_outcomes.report import render

    summary = render(FIXTURES / "results_small" / "results.json", tmp_path / "r", pdf=False)
    assert summary.html.exists()


def test_importing_plots_keeps_the_backend():
    """A notebook's backend survives `import ipm_outcomes.plots` (it used to switch to Agg)."""
    code = ("import matplotlib; matplotlib.use('svg'); import ipm_outcomes.plots, ipm_outcomes.report; "
            "print(matplotlib.get_backend())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "svg"


def test_referral_histogram_bins_are_about_a_week_wide(tmp_path):
    """Stepping by 7 days from a band's start left a one-day bin (day 14 of 0-14) drawn 7x too tall."""
    import csv

    from ipm_outcomes.report import render

    summary = render(FIXTURES / "results_small", tmp_path / "r", pdf=False)
    with open(summary.out_dir / "tables" / "referral_timing_bins.csv", newline="", encoding="utf-8") as handle:
        widths = [int(r["last_day"]) - int(r["first_day"]) + 1 for r in csv.DictReader(handle)]
    assert widths and min(widths) >= 4, widths


def test_analysis_progress_when_not_a_terminal():
    """Piped or logged, the analysis prints one line per stage instead of a silent progress bar."""
    import io

    from ipm_outcomes.progress import StageProgress

    stream = io.StringIO()
    with StageProgress("analysis", True, 3, stream=stream) as bar:
        for what in ("cohort description", "clone-censor-weight", "landmark"):
            bar.step(what)
    lines = stream.getvalue().splitlines()
    assert [line.split(" (")[0] for line in lines] == [
        "analysis: [1/3] cohort description", "analysis: [2/3] clone-censor-weight", "analysis: [3/3] landmark"]


def test_ingest_problems_read_at_80_columns_and_hide_small_person_counts():
    from rich.console import Console

    from ipm_outcomes.validation import Problem, problems_table

    problems = [
        Problem("error", "eligibility.csv", "eligibility", "enrollment_start_date", "date_format",
                "3 enrollment_start_date values are not dates in YYYY-MM-DD format", (3, 7, 9), ("2021/01/01",), 3),
        Problem("warning", "ehr_encounter.csv", "ehr_encounter", "person_id", "orphan_person",
                "1 person with no eligibility row; their ehr_encounter rows cannot enter the cohort (2 rows)",
                (5,), ("P00000301",), 1),
    ]
    console = Console(width=80, record=True)
    console.print(problems_table(problems))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    for whole in ("eligibility.csv", "enrollment_start_date", "date_format", "ehr_encounter.csv", "orphan_person"):
        assert whole in text  # never broken inside a word ("eligibil ity.csv")
    assert "P00000301" not in text and not re.search(r"(?<![<\d])1 person", text) and "<11 persons" in text


def test_flags_show_without_a_type():
    """`--debug` is a switch: the help must not show it as `--debug <bool>`."""
    result = CliRunner().invoke(app, ["--help"], terminal_width=100)
    line = next(x for x in result.output.splitlines() if "--debug" in x)
    assert "<bool>" not in line
    cohort = CliRunner().invoke(app, ["cohort", "--help"], terminal_width=100)
    assert "<bool>" not in next(x for x in cohort.output.splitlines() if "--show-small-counts" in x)
