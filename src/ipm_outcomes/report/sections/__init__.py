"""The report's sections, in the order of the report: one module each, one line each in :data:`SECTIONS`.

A section is a function ``build(ctx: ReportContext) -> Section``: it reads the typed results and the
disclosure decisions in the context (:mod:`ipm_outcomes.report.context`) and returns its words (what its
part of ``templates/report.html.j2`` reads under the section's name), its tables and its figures. It
changes nothing another section sees, so sections may be built, tested and read on their own.

To add a section (say, secondary outcomes):

1. write ``sections/secondary.py`` with ``build(ctx) -> Section``; show counts with ``ctx.c(key)`` and an
   estimate only when ``ctx.enough(e)`` (or a contrast from ``ctx.contrast(...)``). Its counts of persons must
   be registered in the first pass (:func:`ipm_outcomes.report.counts.count_everything`, one step there),
   since whether a count may be shown is decided over the whole report at once. A table column that shows a
   results table's column names it in ``DisplayTable.sources``: the release gate
   (:func:`ipm_outcomes.disclosure.check_released_table`) then refuses any 1-10 in it when the results data
   model declares that column a person count;
2. add ``("secondary", secondary.build)`` to :data:`SECTIONS`;
3. add its part to the template: ``{% include "sections/secondary.html.j2" %}`` or a ``<section>`` that reads
   ``secondary`` (its words) and ``table("...")`` / ``figure("...")`` by the names it returned.

Table and figure names are the CSV and PNG file names; two sections may not return the same name.
"""

from __future__ import annotations

from collections.abc import Callable

from ..context import ReportContext
from ..display import Section
from . import diagnostics, dose, harms, limitations, methods, population, qol, robustness, rtw, source, summary, timing

#: (the name the template reads the section's words under, its build function), in report order.
SECTIONS: tuple[tuple[str, Callable[[ReportContext], Section]], ...] = (
    ("source", source.build),
    ("summary", summary.build),
    ("population", population.build),
    ("timing", timing.build),
    ("rtw", rtw.build),
    ("qol", qol.build),
    ("dose", dose.build),
    ("robustness", robustness.build),
    ("harms", harms.build),
    ("diagnostics", diagnostics.build),
    ("methods", methods.build),
    ("limitations", limitations.build),
    ("glossary", limitations.glossary),
)
