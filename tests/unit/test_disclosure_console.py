"""Load summaries on the console pass the disclosure gate: no count of 1 to 10 rows or persons shows
unless the analyst asks for it on their own terminal."""

from __future__ import annotations

import re
from pathlib import Path

from ipm_outcomes import ingest, omop
from ipm_outcomes.disclosure import DisclosurePolicy

OMOP_MINI = Path(__file__).parents[1] / "fixtures" / "omop_mini"


def _small_numbers(text: str) -> list[str]:
    """Numbers 1..10 standing alone in a line's counts (not inside dates, codes, versions or names)."""
    return [m.group(0) for m in re.finditer(r"(?<![\w.\-/:<])([1-9]|10)(?![\w.\-/:%])", text)]


def test_the_omop_load_summary_shows_no_small_count(tmp_path):
    summary = omop.load_omop(OMOP_MINI, tmp_path / "omop.duckdb")
    gated = summary.describe(DisclosurePolicy())
    raw = summary.describe(None)
    count_lines = [line for line in gated.splitlines() if " rows" in line or "persons" in line]
    assert count_lines and all(not _small_numbers(line.split(":", 1)[-1]) for line in count_lines), gated
    assert "<11" in gated and "persons read: <11" in gated
    assert _small_numbers(raw)  # the analyst's own terminal still sees them (--show-small-counts)


def test_the_load_summary_gates_small_row_counts(good_extract, tmp_path):
    summary = ingest.load_extract(good_extract, tmp_path / "db.duckdb")
    gated = summary.describe(DisclosurePolicy())
    table_lines = [line for line in gated.splitlines() if line.rstrip().endswith(" rows")]
    assert table_lines and all("<11 rows" in line or not _small_numbers(line) for line in table_lines), gated
    assert any("<11 rows" in line for line in table_lines)
