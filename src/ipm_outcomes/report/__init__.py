"""Render an analysis results directory as a self-contained HTML report, a PDF, PNG figures and CSV tables.

``ipm-outcomes report --results DIR --out DIR`` calls :func:`render`. The report step fits nothing: it
reads ``results.json`` and the result tables (through :mod:`ipm_outcomes.report_data`), passes every
displayed count through :mod:`ipm_outcomes.disclosure`, draws figures with :mod:`ipm_outcomes.plots`
and fills the Jinja2 templates in ``templates/``.

The report is built by section (:mod:`ipm_outcomes.report.sections`, one module per section, listed in
``SECTIONS``). Each section is a function of one immutable :class:`~ipm_outcomes.report.context.ReportContext`
(the typed results, the disclosure policy, the analyses by role, and the disclosure decisions made in one
first pass over every count the report shows, :mod:`ipm_outcomes.report.counts`) and returns its words,
tables and figures (:class:`~ipm_outcomes.report.display.Section`). :mod:`~ipm_outcomes.report.document`
builds them all; :func:`render` draws, writes and fills the template.

Outputs under ``out_dir``: ``report.html`` (one file: inline CSS, figures as base64 PNG, no network
requests), ``report.pdf`` (WeasyPrint, same HTML), ``figures/<name>.png`` and ``tables/<name>.csv``
(the tables exactly as displayed, after suppression).
"""

from __future__ import annotations

import base64
import io
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .. import plots
from ..disclosure import DisclosurePolicy
from ..errors import IpmError
from ..report_data import load_results
from .display import DisplayTable, FigureSpec, Section
from .document import Document, build_document
from .sections.limitations import GLOSSARY
from .words import (
    Finding,
    classify,
    days_in_words,
    diagnostics_sentence,
    e_value_sentence,
    naive_sentence,
    primary_finding,
    qol_finding,
)

__all__ = [
    "GLOSSARY",
    "DisplayTable",
    "Document",
    "FigureSpec",
    "Finding",
    "ReportSummary",
    "Section",
    "build_document",
    "classify",
    "days_in_words",
    "diagnostics_sentence",
    "e_value_sentence",
    "naive_sentence",
    "primary_finding",
    "qol_finding",
    "render",
]


@dataclass(frozen=True)
class ReportSummary:
    """What :func:`render` wrote."""

    out_dir: Path
    html: Path
    pdf: Path | None
    figures: list[Path]
    tables: list[Path]
    min_cell_size: int
    withheld_cells: int
    verdict: str
    pdf_pages: int | None = None
    #: Figure name -> every text drawn in it as (text, gid); for disclosure tests, not written to disk.
    figure_text: dict[str, list[tuple[str, str | None]]] = field(default_factory=dict, repr=False)

    def describe(self) -> str:
        """A few lines for the command line."""
        lines = [
            f"report written to {self.out_dir}",
            f"  html:    {self.html.name}",
            f"  pdf:     {self.pdf.name + (f' ({self.pdf_pages} pages)' if self.pdf_pages else '') if self.pdf else 'not requested'}",
            f"  figures: {len(self.figures)} PNG in figures/",
            f"  tables:  {len(self.tables)} CSV in tables/",
            f"  disclosure: counts below {self.min_cell_size} withheld; {self.withheld_cells} cell(s) withheld",
            f"  primary result: {_VERDICT_WORDS.get(self.verdict, self.verdict)}",
        ]
        return "\n".join(lines)


_VERDICT_WORDS = {
    "beneficial": "early referral was followed by a faster return to work",
    "harmful": "early referral was followed by a slower return to work",
    "null": "no clear difference in return to work (the interval includes zero)",
    "unavailable": "not estimable from these results (too few persons)",
    "empty": "no persons met the cohort criteria",
}


def render(
    results_dir: str | Path,
    out_dir: str | Path,
    *,
    pdf: bool = True,
    progress: bool = False,
    min_cell_size: int | None = None,
) -> ReportSummary:
    """Render the report for one analysis results directory.

    Parameters
    ----------
    results_dir
        Folder written by ``ipm-outcomes analyze`` (``results.json`` + Parquet tables).
    out_dir
        Folder to write into (created); existing report files in it are replaced.
    pdf
        Also write ``report.pdf`` with WeasyPrint.
    progress
        Print one line per stage to stderr.
    min_cell_size
        Smallest displayable count of persons; default: the spec's ``report.min_cell_size`` recorded
        in the results (11 if absent).

    Returns
    -------
    ReportSummary
    """
    say = (lambda msg: print(f"report: {msg}", file=sys.stderr, flush=True)) if progress else (lambda msg: None)
    data = load_results(results_dir)
    policy = DisclosurePolicy(min_cell_size if min_cell_size is not None else data.min_cell_size)
    out_dir = Path(out_dir)
    figures_dir, tables_dir = out_dir / "figures", out_dir / "tables"
    for folder in (figures_dir, tables_dir):
        folder.mkdir(parents=True, exist_ok=True)
        for old in list(folder.glob("*.png")) + list(folder.glob("*.csv")):
            old.unlink()

    say("applying disclosure control")
    document = build_document(data, policy)
    context = dict(document.variables, figures={}, tables={})

    say(f"drawing {len(document.figures)} figures")
    figure_paths, figure_text = [], {}
    with plots.report_style():
        for name, spec in document.figures.items():
            fig = spec.make()
            path = figures_dir / f"{name}.png"
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png", dpi=150, bbox_inches="tight", facecolor="white")
            figure_text[name] = plots.figure_texts(fig)
            path.write_bytes(buffer.getvalue())
            figure_paths.append(path)
            context["figures"][name] = {
                "src": "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii"),
                "caption": spec.caption,
                "alt": spec.alt or spec.caption,
                "file": f"figures/{name}.png",
            }
            fig.clear()

    say(f"writing {len(document.tables)} tables")
    table_paths = []
    for name, table in document.tables.items():
        path = tables_dir / f"{name}.csv"
        table.to_frame().to_csv(path, index=False)
        table_paths.append(path)
        context["tables"][name] = table.to_context(f"tables/{name}.csv")

    say("rendering HTML")
    html = _environment().get_template("report.html.j2").render(**context)
    html_path = out_dir / "report.html"
    html_path.write_text(html, encoding="utf-8")

    pdf_path, pages = None, None
    if pdf:
        say("rendering PDF")
        pdf_path = out_dir / "report.pdf"
        pages = _write_pdf(html, pdf_path)
    elif (out_dir / "report.pdf").exists():
        (out_dir / "report.pdf").unlink()  # a stale PDF would contradict the new HTML

    return ReportSummary(
        out_dir=out_dir,
        html=html_path,
        pdf=pdf_path,
        figures=figure_paths,
        tables=table_paths,
        min_cell_size=policy.min_cell_size,
        withheld_cells=document.withheld_cells,
        verdict=document.verdict,
        pdf_pages=pages,
        figure_text=figure_text,
    )


def _environment():
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=PackageLoader("ipm_outcomes", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env


def _write_pdf(html: str, path: Path) -> int:
    try:
        import weasyprint
    except ImportError:  # pragma: no cover - depends on the installation
        raise IpmError(
            "PDF output needs WeasyPrint: install it (`pip install weasyprint`, needs the pango library) "
            "or pass --no-pdf"
        ) from None
    import logging

    # WeasyPrint logs every CSS property it ignores; the report's CSS is shared with browsers on purpose.
    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    document = weasyprint.HTML(string=html, base_url=str(path.parent)).render()
    document.write_pdf(path)
    return len(document.pages)

