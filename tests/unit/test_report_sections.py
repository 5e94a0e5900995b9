"""The report split by section renders exactly the report the single builder rendered.

``tests/fixtures/report_golden/`` holds, for four cases (the small and tiny results fixtures, an empty
cohort, no early persons), the HTML, every CSV table and the data of every figure as rendered by the code
before issue 15 split ``report.py`` into one module per section (``make_report_golden.py`` made them).
Today's code must render the same bytes: any change of the report's content fails here, and a deliberate
one is recorded by running that script again and reviewing its diff.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "report_golden"
sys.path.insert(0, str(GOLDEN))
import make_report_golden  # noqa: E402


@pytest.mark.parametrize("case", sorted(make_report_golden.CASES))
def test_the_report_is_byte_identical_to_the_stored_copy(case, tmp_path):
    html, record = make_report_golden.render_recorded(make_report_golden.results_for(case, tmp_path), tmp_path / "report")
    stored = json.loads((GOLDEN / f"{case}.json").read_text(encoding="utf-8"))
    assert record["table_order"] == stored["table_order"]
    assert record["figure_order"] == stored["figure_order"]
    for name, text in stored["tables"].items():
        assert record["tables"][name] == text, f"table {name} differs"
    for name, figure in stored["figures"].items():
        assert record["figures"][name] == figure, f"figure {name} is drawn from other data"
    assert (record["verdict"], record["withheld_cells"]) == (stored["verdict"], stored["withheld_cells"])
    assert html == (GOLDEN / f"{case}.html").read_text(encoding="utf-8")


# -- each section on its own ------------------------------------------------------------------------

from ipm_outcomes.disclosure import DisclosurePolicy  # noqa: E402
from ipm_outcomes.report import Section, build_document  # noqa: E402
from ipm_outcomes.report.context import build_context  # noqa: E402
from ipm_outcomes.report.sections import SECTIONS  # noqa: E402
from ipm_outcomes.report_data import load_results  # noqa: E402

SMALL = GOLDEN.parent / "results_small"

#: What each section returns for the small fixture: (its tables, its figures), in report order.
SMALL_SECTIONS = {
    "source": ([], []),
    "summary": ([], []),
    "population": (["attrition", "table1"], ["attrition"]),
    "timing": (["delay_categories", "referral_timing_bins"], ["referral_timing"]),
    "rtw": (["rtw_risk", "rtw_days_off", "numbers_at_risk"], ["rtw_curves_ccw", "rtw_curves_landmark_iptw", "rtw_curves_naive"]),
    "qol": (["qol_means", "qol_differences"], ["qol_means"]),
    "dose": (["dose_response"], ["dose_response"]),
    "robustness": (["robustness_methods", "sensitivity", "subgroups"],
                   ["forest_methods_risk_difference", "forest_methods_hazard_ratio", "forest_sensitivity", "forest_subgroups"]),
    "harms": ([], []),
    "diagnostics": (["diagnostics", "diagnostics_detail"], ["love_plot", "overlap", "weights"]),
    "methods": (["target_trial", "provenance_files", "valuesets", "checklist", "intervals"], []),
    "limitations": ([], []),
    "glossary": ([], []),
}


@pytest.fixture(scope="module")
def ctx():
    """The small fixture's context, built once: it is immutable (test_the_context_cannot_be_changed_by_a_section),
    so every test here sees it as built."""
    data = load_results(SMALL)
    return build_context(data, DisclosurePolicy(data.min_cell_size))


def _csv(table) -> str:
    return table.to_frame().to_csv(index=False)


@pytest.mark.parametrize(("name", "build"), SECTIONS, ids=[name for name, _ in SECTIONS])
def test_each_section_builds_on_its_own(name, build, ctx):
    """A section called alone on the small fixture's context returns exactly the tables the stored report
    shows (CSV text equal) and the figures it draws."""
    section = build(ctx)
    assert isinstance(section, Section)
    tables, figures = SMALL_SECTIONS[name]
    assert list(section.tables) == tables
    assert list(section.figures) == figures
    stored = json.loads((GOLDEN / "small.json").read_text(encoding="utf-8"))
    for table_name, table in section.tables.items():
        assert _csv(table) == stored["tables"][table_name], table_name
    for figure_name, figure in section.figures.items():
        assert figure.caption and callable(figure.make), figure_name


def test_sections_do_not_depend_on_their_order(ctx):
    """Every section built in reverse order from one context returns what it returns in report order."""
    forward = {name: build(ctx) for name, build in SECTIONS}
    backward = {name: build(ctx) for name, build in reversed(SECTIONS)}
    for name, section in forward.items():
        other = backward[name]
        assert other.words == section.words, name
        assert {k: _csv(t) for k, t in other.tables.items()} == {k: _csv(t) for k, t in section.tables.items()}, name
        assert list(other.figures) == list(section.figures), name


def test_the_context_cannot_be_changed_by_a_section(ctx):
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.smds_shown = {}  # type: ignore[misc]
    with pytest.raises(TypeError):
        ctx.counts.estimates[("x",)] = ("y",)  # type: ignore[index]
    with pytest.raises(TypeError):
        ctx.roles.qol["promis_pf"] = "other"  # type: ignore[index]


def test_two_sections_may_not_return_the_same_table(monkeypatch):
    from ipm_outcomes.errors import IpmError
    from ipm_outcomes.report import document
    from ipm_outcomes.report.sections import population

    monkeypatch.setattr(document, "SECTIONS", (*SECTIONS, ("again", population.build)))
    data = load_results(SMALL)
    with pytest.raises(IpmError, match="report section 'again' returns a table 'attrition' that an earlier section returned"):
        build_document(data, DisclosurePolicy(11))
