"""The report as data: every section built from one context, before anything is drawn or written."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from .. import __version__
from ..disclosure import COMPLEMENT_LABEL, DisclosurePolicy, check_released_table
from ..errors import IpmError
from ..report_data import ReportData
from .context import build_context
from .display import DisplayTable, FigureSpec
from .sections import SECTIONS
from .words import days_in_words


@dataclass(frozen=True)
class Document:
    """Everything the report shows, before rendering.

    ``variables`` are the template's variables (each section's words under its name, and the cover's facts);
    ``tables`` and ``figures`` every section's, by file name, in report order.
    """

    variables: Mapping[str, Any]
    tables: Mapping[str, DisplayTable]
    figures: Mapping[str, FigureSpec]
    withheld_cells: int
    verdict: str


def build_document(data: ReportData, policy: DisclosurePolicy, *, now: dt.datetime | None = None) -> Document:
    """Build every section of :data:`~ipm_outcomes.report.sections.SECTIONS` from one context."""
    ctx = build_context(data, policy)
    withheld = ctx.withheld_cells()
    now = now or dt.datetime.now(dt.timezone.utc)
    variables: dict[str, Any] = {
        "title": data.title,
        "study": data.study,
        "generated_at": now.strftime("%Y-%m-%d %H:%M UTC"),
        "results_generated_at": data.generated_at,
        "package_version": data.package_version or __version__,
        "report_version": __version__,
        "min_cell_size": policy.min_cell_size,
        "small_label": policy.small_label,
        "complement_label": COMPLEMENT_LABEL,
        "grace_days": data.grace_period_days,
        "grace_words": days_in_words(data.grace_period_days),
        "empty": data.empty,
        "unavailable": data.unavailable,
        "withheld": withheld,
    }
    tables: dict[str, DisplayTable] = {}
    figures: dict[str, FigureSpec] = {}
    for name, build in SECTIONS:
        section = build(ctx)
        variables[name] = section.words
        for kind, made, into in (("table", section.tables, tables), ("figure", section.figures, figures)):
            for item in made:
                if item in into:
                    raise IpmError(f"report section {name!r} returns a {kind} {item!r} that an earlier section returned")
            into.update(made)
    # one gate for every table a reader gets (CSV and HTML are written from these): no count of 1 to 10
    for name, table in tables.items():
        check_released_table(name, table.to_frame(), sorted(table.person_count_columns), policy)
    return Document(
        variables=MappingProxyType(variables),
        tables=MappingProxyType(tables),
        figures=MappingProxyType(figures),
        withheld_cells=withheld["small"] + withheld["complement"],
        verdict=variables["summary"]["verdict"],
    )
