"""Render an analysis results directory as a self-contained HTML report, a PDF, PNG figures and CSV tables.

``ipm-outcomes report --results DIR --out DIR`` calls :func:`render`. The report step fits nothing: it
reads ``results.json`` and the result tables (through :mod:`ipm_outcomes.report_data`), passes every
displayed count through :mod:`ipm_outcomes.disclosure`, draws figures with :mod:`ipm_outcomes.plots`
and fills the Jinja2 templates in ``templates/``.

Outputs under ``out_dir``: ``report.html`` (one file: inline CSS, figures as base64 PNG, no network
requests), ``report.pdf`` (WeasyPrint, same HTML), ``figures/<name>.png`` and ``tables/<name>.csv``
(the tables exactly as displayed, after suppression).
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import math
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__, plots
from .disclosure import (
    COMPLEMENT_LABEL,
    MISSING_LABEL,
    CountLedger,
    DisclosurePolicy,
    format_percent,
    merge_attrition_steps,
    merge_small_bins,
    truncate_curve,
)
from .errors import IpmError
from .report_data import TABLES, Estimate, ReportData, estimate_from_row, load_results, spec_as_toml
from .vocabulary import ARMS, INSTRUMENTS, METHODS, OUTCOMES

# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------


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
    builder = _Builder(data, policy)
    context = builder.build()

    say(f"drawing {len(builder.figures)} figures")
    figure_paths, figure_text = [], {}
    with plots.report_style():
        for name, spec in builder.figures.items():
            fig = spec["make"]()
            path = figures_dir / f"{name}.png"
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png", dpi=150, bbox_inches="tight", facecolor="white")
            figure_text[name] = plots.figure_texts(fig)
            path.write_bytes(buffer.getvalue())
            figure_paths.append(path)
            context["figures"][name] = {
                "src": "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii"),
                "caption": spec["caption"],
                "alt": spec.get("alt") or spec["caption"],
                "file": f"figures/{name}.png",
            }
            fig.clear()

    say(f"writing {len(builder.tables)} tables")
    table_paths = []
    for name, table in builder.tables.items():
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
        withheld_cells=builder.withheld_count,
        verdict=context["summary"]["verdict"],
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


# --------------------------------------------------------------------------------------------------
# Plain-language wording
# --------------------------------------------------------------------------------------------------

_NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight",
                 9: "nine", 10: "ten", 11: "eleven", 12: "twelve"}


def days_in_words(days: int) -> str:
    """A period for a lay reader: 42 -> "six weeks", 180 -> "six months", 365 -> "one year"."""
    days = int(days)
    if days in (365, 366):
        return "one year"
    if days % 30 == 0 and 2 <= days // 30 <= 12 and days >= 60:
        return f"{_NUMBER_WORDS[days // 30]} months"
    if days % 7 == 0 and 1 <= days // 7 <= 12:
        weeks = days // 7
        return f"{_NUMBER_WORDS[weeks]} week{'s' if weeks > 1 else ''}"
    return f"{days} days"


def _opt_int(value) -> int | None:
    """A whole number from a results cell, or None when missing."""
    return None if value is None or pd.isna(value) else int(value)


def _short(instrument: str) -> str:
    """An instrument's short name for tables and text (its code when the vocabulary does not know it)."""
    known = INSTRUMENTS.get(instrument)
    return known.short if known else instrument


def classify(ci_low: float | None, ci_high: float | None, null: float = 0.0, higher_is_better: bool = True) -> str:
    """``"beneficial"``, ``"harmful"`` or ``"null"`` from a confidence interval and the direction of benefit."""
    if ci_low is None or ci_high is None:
        return "null"
    if ci_low > null:
        return "beneficial" if higher_is_better else "harmful"
    if ci_high < null:
        return "harmful" if higher_is_better else "beneficial"
    return "null"


def _f(x: float, digits: int, sign: str = "") -> str:
    """A number to ``digits`` decimals without a negative zero ("-0.0" reads as a loss that is not there)."""
    text = f"{x:{sign}.{digits}f}"
    if text.lstrip("+-").strip("0.") == "":
        text = f"{0.0:{sign}.{digits}f}"
    return text


def _fmt_points(x: float, digits: int) -> str:
    return _f(abs(x), digits)


@dataclass(frozen=True)
class Finding:
    """A plain-language result: its verdict and the sentence(s) stating it."""

    verdict: str  # beneficial | harmful | null | unavailable | empty
    sentence: str
    headline: str


def primary_finding(
    difference: Estimate | None,
    early: Estimate | None,
    delayed: Estimate | None,
    *,
    grace_days: int,
    horizon_days: int,
    policy: DisclosurePolicy,
) -> Finding:
    """The executive-summary sentence for the primary return-to-work contrast.

    The wording follows the direction of the risk difference (early minus delayed) and whether its 95%
    confidence interval excludes zero; arm levels are quoted only when each comes from at least
    ``min_cell_size`` persons.
    """
    grace = days_in_words(grace_days)
    when = days_in_words(horizon_days)
    who = f"Patients first seen by IPM within {grace}"
    if difference is None or not _finite(difference.estimate) or policy.too_few(difference.n):
        return Finding(
            "unavailable",
            f"Too few patients followed one of the two strategies to estimate the difference in return to work by "
            f"{when}: fewer than {policy.min_cell_size} persons were referred within {grace} (or not), or were still "
            f"off work and followed by {when}.",
            "Too few patients to estimate the primary result",
        )
    if not _finite(difference.ci_low) or not _finite(difference.ci_high):
        return Finding(
            "unavailable",
            f"By {when}, the difference in the share back at work (early minus delayed) was "
            f"{_f(100 * difference.estimate, 1, '+')} percentage points, but no confidence interval could be "
            "computed (the bootstrap replicates failed), so these data cannot say whether early referral helps.",
            "Primary result without a confidence interval",
        )
    d, lo, hi = (100 * difference.estimate, 100 * difference.ci_low, 100 * difference.ci_high)
    verdict = classify(difference.ci_low, difference.ci_high)
    levels = None
    if (
        early is not None and delayed is not None and early.estimate is not None and delayed.estimate is not None
        and not policy.too_few(early.n) and not policy.too_few(delayed.n)
    ):
        levels = (100 * early.estimate, 100 * delayed.estimate)
    # Whole numbers read best; one decimal when rounding would make the arms and the difference disagree.
    digits = 0
    if levels is not None and round(levels[0]) - round(levels[1]) != round(d):
        digits = 1
    if round(d, digits) == 0 or round(lo, digits) == round(hi, digits):
        digits = 1
    num = lambda x: _f(x, digits)  # noqa: E731
    ci = f"95% CI {num(lo)} to {num(hi)}"
    level_text = f"{num(levels[0])}% vs {num(levels[1])}% were back at work by {when}, " if levels else ""
    unit = "percentage point" + ("" if abs(round(d, digits)) == 1 else "s")
    if verdict == "beneficial":
        sentence = (f"{who} returned to work sooner: {level_text}"
                    f"a difference of {_fmt_points(d, digits)} {unit} ({ci}).")
        if not levels:
            sentence = (f"{who} returned to work sooner: by {when}, {_fmt_points(d, digits)} {unit} more were back "
                        f"at work ({ci}).")
        headline = "Early IPM referral: faster return to work"
    elif verdict == "harmful":
        sentence = (f"{who} returned to work more slowly: {level_text}"
                    f"{_fmt_points(d, digits)} {unit} fewer ({ci}).")
        if not levels:
            sentence = (f"{who} returned to work more slowly: by {when}, {_fmt_points(d, digits)} {unit} fewer were "
                        f"back at work ({ci}).")
        headline = "Early IPM referral: slower return to work"
    else:
        sentence = (f"The study found no clear difference in return to work between patients first seen by IPM "
                    f"within {grace} and those seen later: {level_text}"
                    f"a difference of {num(d)} {unit} ({ci}). The interval includes zero, so the data are "
                    f"compatible with early referral helping by up to {_fmt_points(max(hi, 0), digits)} points "
                    f"or hindering by up to {_fmt_points(min(lo, 0), digits)} points.")
        headline = "Early IPM referral: no clear difference in return to work"
    return Finding(verdict, sentence, headline)


def qol_finding(
    difference: Estimate | None,
    *,
    instrument: str,
    horizon_days: int,
    mcid: float | None,
    policy: DisclosurePolicy,
) -> str | None:
    """One sentence on a quality-of-life contrast (adjusted mean difference, early minus delayed)."""
    if difference is None or not _finite(difference.estimate) or policy.too_few(difference.n):
        return None
    if not _finite(difference.ci_low) or not _finite(difference.ci_high):
        return None  # no interval: nothing can be said about the difference
    outcome = OUTCOMES.get(instrument)
    higher_better = outcome.higher_is_better if outcome else True
    name = _short(instrument)
    digits = 2 if instrument == "eq5d_index" else 1
    d, lo, hi = difference.estimate, difference.ci_low, difference.ci_high
    verdict = classify(lo, hi, 0.0, higher_better)
    better = "higher is better" if higher_better else "lower is better"
    when = days_in_words(horizon_days)
    ci = f"95% CI {_f(lo, digits)} to {_f(hi, digits)}"
    direction = "higher" if d > 0 else "lower"
    mcid_text = ""
    if mcid:
        mcid_text = (f" The smallest change patients notice is about {mcid:g} points, so the difference is "
                     f"{'at least' if abs(d) >= mcid else 'smaller than'} that.")
    if verdict == "null":
        return (f"On {name} ({better}) at {when}, there was no clear difference between the groups: "
                f"{_f(d, digits, '+')} points ({ci}).{mcid_text}")
    word = "better" if verdict == "beneficial" else "worse"
    return (f"On {name} ({better}) at {when}, early referral was followed by {word} scores: "
            f"{_f(abs(d), digits)} points {direction} ({ci}).{mcid_text}")


def e_value_sentence(estimate: float, ci_bound: float | None, rr_low: float | None, rr_high: float | None) -> str:
    """The E-value in words; when the interval of the risk ratio already includes 1, no confounding is
    needed to make it compatible with no effect, and the sentence says that instead of "1.00 to move it"."""
    head = (f"An unmeasured confounder would need to be associated with both early referral and return to work by a "
            f"risk ratio of {estimate:.2f} each (beyond the measured covariates) to explain away the primary estimate")
    includes_null = _finite(rr_low) and _finite(rr_high) and rr_low <= 1.0 <= rr_high
    if includes_null or (_finite(ci_bound) and float(ci_bound) <= 1.0 + 1e-9):
        return (head + "; its confidence interval already includes no effect, so no unmeasured confounding is "
                "needed to make the data compatible with no effect (VanderWeele & Ding 2017).")
    if not _finite(ci_bound):
        return head + "; the confidence interval was not available (VanderWeele & Ding 2017)."
    return (head + f", and of {float(ci_bound):.2f} to move its confidence interval to include no effect "
            "(VanderWeele & Ding 2017).")


def naive_sentence(naive: float, primary: float, *, horizon_days: int, grace_days: int) -> str:
    """What the naive comparison would have said, in points at a day, and why it is biased.

    Grouping patients by when they were eventually referred puts everyone who went back to work before a
    referral in the delayed group (they are never referred), and sicker patients are referred sooner:
    both push the naive estimate against early referral, often past zero.
    """
    n, p = 100 * naive, 100 * primary
    unit = lambda x: "point" if abs(round(x, 1)) == 1 else "points"  # noqa: E731
    if n * p < 0 and abs(p) >= 0.5:
        how = "It points the opposite way"
    elif abs(n) > abs(p):
        how = "It is further from no difference"
    else:
        how = "It is closer to no difference"
    return (f"A simple comparison of patients by when they were eventually referred would have given "
            f"{_f(n, 1, '+')} percentage {unit(n)} back at work by day {horizon_days} (early minus delayed), against "
            f"{_f(p, 1, '+')} {unit(p)} from the primary analysis. {how}, because patients who return to work quickly "
            f"are never referred and so count as delayed, and sicker patients are referred sooner (within "
            f"{grace_days} days). This report does not rely on it.")


def diagnostics_sentence(checks) -> tuple[str, bool | None]:
    """Whether the study diagnostics passed, in one sentence; and the overall pass (None if unknown)."""
    known = [c for c in checks if c.passed is not None]
    if not known:
        return "Study diagnostics were not available in these results.", None
    failed = [c for c in known if not c.passed]
    names = ", ".join(c.label[0].lower() + c.label[1:] for c in known)
    if not failed:
        return f"All {len(known)} study diagnostics passed ({names}).", True
    what = "; ".join(
        f"{c.label}: {c.value:.3g} (threshold {c.threshold})" if c.value is not None else c.label for c in failed
    )
    return (f"{len(failed)} of {len(known)} study diagnostics failed ({what}): the estimates should be read "
            "with caution.", False)


# --------------------------------------------------------------------------------------------------
# Display tables
# --------------------------------------------------------------------------------------------------


@dataclass
class DisplayTable:
    """A table as displayed: string cells, CSV column names, HTML headers, which columns are counts."""

    columns: list[tuple[str, str]]  # (csv name, header)
    rows: list[list[str]]
    caption: str
    notes: list[str] = field(default_factory=list)
    count_columns: set[str] = field(default_factory=set)
    numeric_columns: set[str] = field(default_factory=set)
    group_column: str | None = None  # rows whose other cells are all empty render as headings

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=[c for c, _ in self.columns])

    def to_context(self, file: str) -> dict:
        cols = [
            {"name": c, "header": h, "count": c in self.count_columns, "numeric": c in self.numeric_columns or c in self.count_columns}
            for c, h in self.columns
        ]
        return {"columns": cols, "rows": self.rows, "caption": self.caption, "notes": self.notes, "file": file}


def _fmt_num(x: float | None, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return MISSING_LABEL
    return f"{x:,.{digits}f}"


#: The parameter space of each kind of estimate (as a fraction for pct / pp): outside it, an estimate
#: is not a value at all (a share of 110%); an interval bound outside it is cut at its edge.
_SPACE = {"pct": (0.0, 1.0), "pp": (-1.0, 1.0), "ratio": (0.0, math.inf), "days": (-math.inf, math.inf),
          "score1": (-math.inf, math.inf), "score2": (-math.inf, math.inf)}


def _finite(x) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x)) and math.isfinite(float(x))


def _fmt_ci(e: Estimate | None, kind: str) -> str:
    """An estimate with its 95% CI for tables: kind pct | pp | ratio | days | score2 | score1.

    Never prints nan or an impossible value: a missing or non-finite estimate, or one outside the
    parameter space (a share above 100%), shows as not estimable; an interval that could not be
    computed (every bootstrap replicate failed) is left out; interval bounds are cut at the edges of
    the parameter space (a share cannot fall below 0%).
    """
    if e is None or not _finite(e.estimate):
        return MISSING_LABEL
    lo_space, hi_space = _SPACE[kind]
    if not (lo_space - 1e-9 <= float(e.estimate) <= hi_space + 1e-9) or (kind == "ratio" and e.estimate <= 0):
        return "not estimable"
    scale, digits, suffix = {
        "pct": (100, 1, "%"),
        "pp": (100, 1, ""),
        "ratio": (1, 2, ""),
        "days": (1, 1, ""),
        "score1": (1, 1, ""),
        "score2": (1, 2, ""),
    }[kind]
    sign = "+" if kind in ("pp", "days", "score1", "score2") else ""
    est = f"{_f(scale * e.estimate, digits, sign)}{suffix}"
    if not _finite(e.ci_low) or not _finite(e.ci_high):
        return f"{est} (no interval)"
    lo, hi = max(float(e.ci_low), lo_space), min(float(e.ci_high), hi_space)
    return f"{est} ({_f(scale * lo, digits)} to {_f(scale * hi, digits)})"


def _withheld_text(policy: DisclosurePolicy) -> str:
    return f"fewer than {policy.min_cell_size}"


# --------------------------------------------------------------------------------------------------
# The builder: registers every count, protects, then formats tables and figure data
# --------------------------------------------------------------------------------------------------

_CHECKLIST = [
    # (section id, guideline, item, what the section reports)
    ("summary", "TARGET (abstract, introduction)", "Study identified as a target-trial emulation; causal question stated",
     "The question, the compared strategies and the primary answer with its 95% CI."),
    ("population", "RECORD 6.1 / STROBE 6a", "Eligibility criteria; codes and algorithms used to select the population",
     "CONSORT flow with each criterion; the value sets are listed under Methods."),
    ("population", "RECORD 13.1 / STROBE 13", "Selection of persons in each stage, with a flow diagram",
     "Attrition diagram and table for the cohort and the return-to-work population."),
    ("population", "STROBE 14 / TARGET (results)", "Baseline characteristics by treatment strategy",
     "Table 1 by exposure group with standardized mean differences before and after weighting."),
    ("timing", "TARGET (methods: treatment strategies, assignment)", "Treatment strategies and the grace period",
     "Distribution of days to first IPM contact with the grace period marked; delay categories."),
    ("rtw", "STROBE 16 / TARGET (results: estimates)", "Effect estimates for each causal contrast with precision",
     "Cumulative incidence curves, risk differences and ratios at each horizon, days off work."),
    ("qol", "STROBE 16 / TARGET (results: estimates)", "Secondary outcomes with precision; missing data",
     "Adjusted means, differences, responder rates; numbers observed and missing."),
    ("dose", "STROBE 17", "Other analyses: dose-response", "Return to work across referral-delay categories."),
    ("robustness", "STROBE 17 / TARGET (results: sensitivity)", "Sensitivity and subgroup analyses",
     "Method comparison incl. the naive (biased) contrast, grace periods, referral definition, E-value, subgroups."),
    ("robustness", "RECORD 19.1", "Limitations: bias from data not collected for research (immortal time, misclassification)",
     "The naive contrast shown as biased; the E-value for unmeasured confounding."),
    ("diagnostics", "TARGET (methods: identifying assumptions)", "Positivity and exchangeability diagnostics",
     "Preference-score overlap, covariate balance (love plot), weight distribution, pass/fail table."),
    ("methods", "TARGET (methods: target trial protocol and emulation)", "Protocol components and how each is emulated",
     "Target-trial specification table (eligibility, strategies, time zero, follow-up, outcomes, contrasts, analysis)."),
    ("methods", "RECORD 7.1", "Complete list of codes and algorithms for exposure, outcomes, confounders",
     "Value sets with their versions (content hashes); the study spec as run."),
    ("methods", "RECORD 12.1 / 12.2 / 12.3", "Data access, cleaning and linkage",
     "Input files with hashes and row counts; claims and EHR linked by person identifier at ingest."),
    ("methods", "RECORD 22.1 / TARGET (other information)", "Access to protocol, code and data",
     "Study spec as run, package version, random seed; the pipeline is open source."),
]


class _Builder:
    def __init__(self, data: ReportData, policy: DisclosurePolicy):
        self.data = data
        self.policy = policy
        self.ledger = CountLedger(policy)
        self.figures: dict[str, dict] = {}
        self.tables: dict[str, DisplayTable] = {}
        self.withheld_count = 0
        self.t = policy.min_cell_size
        #: (analysis id, arm) -> last day its curve is shown (min_cell_size or more persons at risk); -1: none.
        self.curve_reach: dict[tuple[str, str], int] = {}
        # The analyses of the plan the report reads, by role (results are keyed by these ids).
        primary = data.primary_analysis
        self.P = primary.id if primary else None
        #: return-to-work comparisons by method: the primary, the secondary ones and the biased one, in plan order
        self.comparisons = data.analyses("rtw", ("primary", "secondary", "bias_illustration"))
        self.NAIVE = next((a.id for a in self.comparisons if a.role == "bias_illustration"), None)
        #: quality-of-life outcome -> the id of its analysis
        self.Q = {a.outcome: a.id for a in data.plan if a.method == "ancova_iptw"}
        self.K_N, self.K_E, self.K_D, self.K_RTW = ("cohort", "n"), ("cohort", "n_early"), ("cohort", "n_delayed"), ("cohort", "n_rtw")

    # -- helpers ------------------------------------------------------------------------------------

    def _alias(self, value: int, candidates: Iterable, fallback, *, displayed: bool = True, priority: int = 0):
        """The key of a registered count with this value among ``candidates``, else register ``fallback``."""
        for key in candidates:
            cell = self.ledger.cells.get(key)
            if cell is not None and cell.value == int(value):
                self.ledger.add(key, value, displayed=displayed, priority=priority)  # now shown here too
                return key
        self.ledger.add(fallback, value, displayed=displayed, priority=priority)
        return fallback

    def _alias_any(self, value: int, fallback):
        """A registered displayed count with this value (cohort sizes first), else ``fallback`` as an unshown count.

        Used for the total of a partition that is not printed itself: if a reader can see that total
        elsewhere, the identity must hold against that number. Tying it to an unrelated equal number only
        adds a constraint, which can only make the protection stricter.
        """
        value = int(value)
        for key in (self.K_N, self.K_E, self.K_D, self.K_RTW):
            if key in self.ledger.cells and self.ledger.cells[key].value == value:
                return key
        for key, cell in self.ledger.cells.items():
            if cell.displayed and cell.value == value:
                return key
        self.ledger.add(fallback, value, displayed=False)
        return fallback

    def c(self, key) -> str:
        return self.ledger.display(key) if key in self.ledger.cells else MISSING_LABEL

    def v(self, key) -> int | None:
        return self.ledger.value_if_shown(key) if key in self.ledger.cells else None

    def pct(self, key, den_key, digits: int = 1) -> str:
        return format_percent(self.v(key), self.v(den_key), digits)

    def est(self, analysis, outcome, measure, horizon=None, arm=None) -> Estimate | None:
        """The estimate with this key (analysis id, outcome, measure, horizon, arm), else None."""
        return self.data.estimate(analysis, outcome, measure, horizon, arm)

    def enough(self, *estimates: Estimate | None) -> bool:
        """Every estimate may be shown: present, finite, and passed by the disclosure gate (:meth:`_supported`)."""
        return all(self._supported(e) for e in estimates)

    def _supported(self, e: Estimate | None) -> bool:
        """The disclosure gate for one estimate: the persons it describes are a shown count of at least
        min_cell_size (its arm size, registered in the ledger), and for a return-to-work arm the curve it
        is read from still has min_cell_size persons at risk at its horizon (persons uncensored, i.e.
        still following the strategy, not clones)."""
        if e is None or e.estimate is None or not math.isfinite(e.estimate) or self.policy.too_few(e.n):
            return False
        key = self.est_keys.get((e.analysis, e.outcome, e.measure, e.horizon_days, e.arm))
        if key is not None and not self.ledger.supports(key):
            return False
        if e.arm is not None and e.horizon_days is not None and (e.analysis, e.arm) in self.curve_reach:
            return self.curve_reach[(e.analysis, e.arm)] >= e.horizon_days
        return True

    def _arm_ok(self, analysis, outcome, horizon=None) -> bool:
        """Both arms of a contrast pass the gate (arms at any horizon when horizon is None)."""
        df = self.data.estimates
        arms = df[(df["analysis"] == analysis) & (df["outcome"] == outcome) & df["arm"].notna()]
        if horizon is not None:
            arms = arms[arms["horizon_days"] == horizon]
        return all(self._supported(estimate_from_row(r)) for r in arms.to_dict("records"))

    def _contrast(self, analysis, outcome, measure, horizon=None) -> Estimate | None:
        e = self.est(analysis, outcome, measure, horizon)
        if e is None or e.estimate is None or not math.isfinite(e.estimate) or self.policy.too_few(e.n):
            return None
        if not self._arm_ok(analysis, outcome, horizon):
            return None
        return e

    # -- registration -------------------------------------------------------------------------------

    def register(self) -> None:
        d, L = self.data, self.ledger
        co = d.cohort
        L.add(self.K_N, co.n, priority=3)
        L.add(self.K_E, co.n_early, priority=2)
        L.add(self.K_D, co.n_delayed, priority=2)
        L.add(self.K_RTW, co.n_rtw_population, priority=2)
        L.add_identity(self.K_N, [self.K_E, self.K_D], only_if_holds=True)
        self._register_attrition()
        self._register_table1()
        self._register_timing()
        self._register_estimates()
        self._register_dose()
        self._register_curves()
        self._register_qol()
        self._register_subgroups()
        self._register_distributions()
        for i, f in enumerate(d.provenance.get("files") or []):
            if f.get("rows") is not None:
                L.add(("prov", i), int(f["rows"]))
        trunc = (d.diagnostics.get("weight_truncation") or {}).get("n_truncated")
        if trunc is not None:
            L.add(("diag", "n_truncated"), int(trunc))
        for arm, ess in (d.diagnostics.get("effective_sample_size") or {}).items():
            if ess is not None and not pd.isna(ess):
                L.add(("diag", "ess", arm), int(round(float(ess))))

    def _register_attrition(self) -> None:
        L = self.ledger
        self.attrition: dict[str, list[dict]] = {}
        for pop, steps in self.data.attrition.items():
            merged = merge_attrition_steps(
                [{"step": s.step, "remaining": s.remaining, "excluded": s.excluded} for s in steps], self.policy
            )
            keys = []
            for i, s in enumerate(merged):
                last = i == len(merged) - 1
                cands = []
                if pop == "cohort" and last:
                    cands = [self.K_N]
                if pop != "cohort" and i == 0:
                    cands = [self.K_N]
                if pop == "rtw" and last:
                    cands = [self.K_RTW]
                rk = self._alias(s["remaining"], cands, ("attr", pop, i, "remaining"), priority=2 if i == 0 else 1)
                ek = None
                if i > 0:
                    ek = ("attr", pop, i, "excluded")
                    L.add(ek, s["excluded"])
                    L.add_identity(keys[-1][0], [rk, ek], only_if_holds=True)
                keys.append((rk, ek))
            self.attrition[pop] = [dict(s, rkey=rk, ekey=ek) for s, (rk, ek) in zip(merged, keys)]

    def _register_table1(self) -> None:
        t1 = self.data.table("table1")
        if t1 is None or t1.empty:
            return
        L = self.ledger
        arms = {"early": self.K_E, "delayed": self.K_D}
        t1 = t1[t1["arm"].isin(list(arms))].copy()
        t1["level"] = t1["level"].where(t1["level"].notna(), None)
        order = list(dict.fromkeys(t1["variable"]))
        for var in order:
            part = t1[t1["variable"] == var]
            stat = str(part["statistic"].iloc[0] or "n_pct")
            levels = list(dict.fromkeys(part["level"]))
            if stat == "n_pct":
                for arm, arm_key in arms.items():
                    rows = part[part["arm"] == arm]
                    if rows.empty:
                        continue
                    den = rows["denominator"].iloc[0]
                    den_key = self._alias(int(den), [arm_key], ("t1", "den", var, arm), priority=1) if den is not None and not pd.isna(den) else None
                    keys = []
                    for level in levels:
                        r = rows[rows["level"].isna()] if level is None else rows[rows["level"] == level]
                        if r.empty:
                            continue
                        k = ("t1", var, level, arm)
                        L.add(k, int(r["n"].iloc[0]))
                        keys.append(k)
                    if den_key is not None:
                        rest = int(L.cells[den_key].value) - sum(L.cells[k].value for k in keys)
                        if rest >= 0:
                            if rest > 0 or levels == [None]:
                                rk = ("t1", var, "__rest__", arm)
                                L.add(rk, rest, displayed=False)
                                keys.append(rk)
                            L.add_identity(den_key, keys, only_if_holds=True)
        self.t1 = t1

    def _delay_bands(self) -> list[tuple[str, int | None, int | None]]:
        """Referral-delay categories as (label, first day, last day); never referred: (label, None, None)."""
        cats = self.data.table("delay_categories")
        if cats is None:
            return []
        return [(str(r["delay_category"]), _opt_int(r["first_day"]), _opt_int(r["last_day"])) for r in cats.to_dict("records")]

    def _register_timing(self) -> None:
        L = self.ledger
        self.delay_keys: dict[str, tuple] = {}
        self.ref_bins = pd.DataFrame(columns=["left", "right", "key", "category"])
        cats = self.data.table("delay_categories")
        if cats is None or cats.empty:
            return
        bands = self._delay_bands()
        for label, n in zip(cats["delay_category"], cats["n"]):
            k = ("delay", str(label))
            L.add(k, int(n))
            self.delay_keys[str(label)] = k
        all_keys = list(self.delay_keys.values())
        L.add_identity(self.K_N, all_keys, only_if_holds=True)
        grace = self.data.grace_period_days
        early = [self.delay_keys[lab] for lab, lo, hi in bands if hi is not None and hi <= grace]
        late = [self.delay_keys[lab] for lab in self.delay_keys if self.delay_keys[lab] not in early]
        if early:
            L.add_identity(self.K_E, early, only_if_holds=True)
            L.add_identity(self.K_D, late, only_if_holds=True)
        timing = self.data.table("referral_timing")
        if timing is None or timing.empty:
            return
        per_day = timing.groupby("day")["n"].sum()
        max_day = int(per_day.index.max())
        rows = []
        for label, lo, hi in bands:
            if lo is None or (label in self.delay_keys and self.ledger.cells[self.delay_keys[label]].value == 0):
                continue
            hi_eff = max(hi if hi is not None else max_day, lo)
            # Bins of (nearly) equal width within each band, about a week each: stepping by 7 from the band's
            # start left a one-day bin at its end (day 14 of 0-14), drawn as a weekly rate seven times too tall.
            k = max(1, math.ceil((hi_eff + 1 - lo) / 7))
            edges = sorted(set(int(round(x)) for x in np.linspace(lo, hi_eff + 1, k + 1)))
            counts = [int(per_day[(per_day.index >= a) & (per_day.index < b)].sum()) for a, b in zip(edges[:-1], edges[1:])]
            merged = merge_small_bins(edges, counts, self.policy)
            keys = []
            for j, b in enumerate(merged.itertuples(index=False)):
                true_n = sum(c for c, a in zip(counts, edges[:-1]) if b.left <= a < b.right)
                k = ("refbin", label, j)
                L.add(k, true_n)
                keys.append(k)
                rows.append({"left": int(b.left), "right": int(b.right) - 1, "key": k, "category": label})
            if label in self.delay_keys:
                L.add_identity(self.delay_keys[label], keys, only_if_holds=True)
        self.ref_bins = pd.DataFrame(rows)
        self.ref_per_day = per_day

    def _register_estimates(self) -> None:
        """Arm sizes and contrast sizes of every estimate, with the identity contrast = early + delayed."""
        L = self.ledger
        df = self.data.estimates
        self.est_keys: dict[tuple, tuple] = {}
        if df.empty:
            return
        for row in df.itertuples(index=False):
            if pd.isna(row.n):
                continue
            h = None if pd.isna(row.horizon_days) else int(row.horizon_days)
            arm = row.arm if isinstance(row.arm, str) else None
            ek = (row.analysis, row.outcome, row.measure, h, arm)
            cands = []
            if arm == "early":
                cands = [self.K_E]
            elif arm == "delayed":
                cands = [self.K_D]
            elif row.outcome == "rtw":
                cands = [self.K_RTW, self.K_N]
            else:
                cands = [self.K_N]
            key = ("est", row.analysis, row.outcome, h, arm or "all")
            if key in L.cells and L.cells[key].value != int(row.n):
                key = ("est", row.analysis, row.outcome, row.measure, h, arm or "all")
            self.est_keys[ek] = self._alias(int(row.n), cands, key)
        groups: dict[tuple, dict] = {}
        for (analysis, outcome, measure, h, arm), key in self.est_keys.items():
            groups.setdefault((analysis, outcome, h), {})[arm or "all"] = key
        for g in groups.values():
            if {"all", "early", "delayed"} <= set(g) and len({g["all"], g["early"], g["delayed"]}) == 3:
                L.add_identity(g["all"], [g["early"], g["delayed"]], only_if_holds=True)

    def _register_dose(self) -> None:
        dr = self.data.table("dose_response")
        self.dose_keys: dict[tuple, tuple] = {}
        if dr is None or dr.empty:
            return
        for r in dr.to_dict("records"):
            if r["n"] is None or pd.isna(r["n"]):
                continue
            label, h = str(r["delay_category"]), int(r["horizon_days"])
            cands = [self.delay_keys[label]] if label in self.delay_keys else []
            self.dose_keys[(label, h)] = self._alias(int(r["n"]), cands, ("dose", label, h))

    def _register_curves(self) -> None:
        curves = self.data.table("rtw_curves")
        self.curves: dict[str, dict[str, pd.DataFrame]] = {}
        self.risk_rows: dict[str, dict[str, list]] = {}
        if curves is None or curves.empty:
            return
        days = [0, 90, 180, 270, 365]
        for analysis in [a.id for a in self.data.plan if a.id in set(curves["analysis"])]:
            self.curves[analysis], self.risk_rows[analysis] = {}, {}
            for arm in ("early", "delayed"):
                c = curves[(curves["analysis"] == analysis) & (curves["arm"] == arm)].sort_values("day")
                if c.empty:
                    continue
                kept = truncate_curve(c, self.policy)
                self.curves[analysis][arm] = kept[["day", "estimate", "ci_low", "ci_high"]]
                self.curve_reach[(analysis, arm)] = int(kept["day"].max()) if not kept.empty else -1
                cells = []
                for day in days:
                    upto = c[c["day"] <= day]
                    if upto.empty:
                        continue
                    n = int(upto["n_at_risk"].iloc[-1])
                    k = ("nar", analysis, arm, day)
                    self.ledger.add(k, n)
                    cells.append((day, k))
                self.risk_rows[analysis][arm] = cells

    def _register_qol(self) -> None:
        q = self.data.table("qol_summary")
        self.qol_keys: dict[tuple, tuple] = {}
        if q is None or q.empty:
            return
        L = self.ledger
        arms = {"early": self.K_E, "delayed": self.K_D}
        for row in q.itertuples(index=False):
            arm_key = arms.get(row.arm)
            if arm_key is None:
                continue
            h = int(row.horizon_days)
            k = ("qol", row.instrument, h, row.arm)
            k = self._alias(int(row.n), [self.est_keys.get((self.Q.get(row.instrument), row.instrument, "adjusted_mean", h, row.arm))], k)
            self.qol_keys[(row.instrument, h, row.arm)] = k
            missing = getattr(row, "n_missing", None)
            if missing is not None and not pd.isna(missing):
                mk = ("qol_missing", row.instrument, h, row.arm)
                L.add(mk, int(missing))
                self.qol_keys[(row.instrument, h, row.arm, "missing")] = mk
                L.add_identity(arm_key, [k, mk], only_if_holds=True)

    def _register_subgroups(self) -> None:
        s = self.data.table("subgroups")
        self.sub_keys: dict[tuple, dict] = {}
        if s is None or s.empty:
            return
        L = self.ledger
        for name in dict.fromkeys(s["subgroup"]):
            part = s[s["subgroup"] == name]
            # the table's person counts (the results data model says which columns count persons), each with
            # the cohort count its levels partition
            totals = {"n": self.K_N, "n_early": self.K_E, "n_delayed": self.K_D}
            cols = {c: totals[c] for c in TABLES["subgroups"].person_counts}
            per_col: dict[str, list] = {c: [] for c in cols}
            for row in part.to_dict("records"):
                keys = {}
                level = str(row["level"])
                for col in cols:
                    if col in row and row[col] is not None and not pd.isna(row[col]):
                        # The same group counts appear in Table 1: one number, one key.
                        arm = {"n_early": "early", "n_delayed": "delayed"}.get(col)
                        cands = []
                        if arm:
                            cands = [("t1", name, level, arm)]
                            if level.lower() in ("yes", "true", "1"):
                                cands.append(("t1", name, None, arm))
                            if level.lower() in ("no", "false", "0"):
                                cands.append(("t1", name, "__rest__", arm))
                        keys[col] = self._alias(int(row[col]), cands, ("sub", name, level, col))
                        per_col[col].append(keys[col])
                if {"n", "n_early", "n_delayed"} <= set(keys):
                    L.add_identity(keys["n"], [keys["n_early"], keys["n_delayed"]], only_if_holds=True)
                self.sub_keys[(name, str(row["level"]))] = keys
            for col in cols:
                if per_col[col]:
                    total_value = sum(L.cells[k].value for k in per_col[col])
                    total = self._alias_any(total_value, ("sub", name, "__total__", col))
                    L.add_identity(total, per_col[col], only_if_holds=True)

    def _binned(self, name: str, values: pd.Series, arms: pd.Series, edges: np.ndarray) -> dict[str, list]:
        """Merge per-arm histogram bins and register them with their arm total."""
        out = {}
        for arm in ("early", "delayed"):
            x = values[arms == arm].to_numpy(dtype=float)
            x = x[~np.isnan(x)]
            if x.size == 0:
                continue
            counts, _ = np.histogram(np.clip(x, edges[0], edges[-1]), bins=edges)
            merged = merge_small_bins(edges, counts, self.policy)
            total_key = self._alias_any(int(x.size), (name, arm, "total"))
            keys = []
            rows = []
            for j, b in enumerate(merged.itertuples(index=False)):
                mask = (edges[:-1] >= b.left - 1e-12) & (edges[:-1] < b.right - 1e-12)
                true_n = int(counts[mask].sum())
                k = (name, arm, j)
                self.ledger.add(k, true_n)
                keys.append(k)
                rows.append((float(b.left), float(b.right), k))
            self.ledger.add_identity(total_key, keys, only_if_holds=True)
            out[arm] = rows
        return out

    def _register_distributions(self) -> None:
        self.overlap_bins, self.weight_bins = {}, {}
        ov = self.data.table("overlap")
        if ov is not None and not ov.empty:
            self.overlap_bins = self._binned("overlap", ov["preference_score"], ov["arm"], np.linspace(0, 1, 21))
        w = self.data.table("weights")
        if w is not None and not w.empty:
            if "method" in w.columns:
                methods = list(dict.fromkeys(w["method"]))
                w = w[w["method"] == methods[0]]
                self.weight_method = methods[0]
            pos = w["weight"][w["weight"] > 0]
            if not pos.empty:
                lo, hi = float(pos.min()), float(pos.max())
                edges = np.geomspace(max(lo * 0.999, 1e-3), hi * 1.001 + 1e-9, 31)
                self.weight_bins = self._binned("weights", w["weight"].clip(lower=edges[0]), w["arm"], edges)
                self.weight_summary = w.groupby("arm")["weight"].describe(percentiles=[0.5, 0.99])

    # -- build ----------------------------------------------------------------------------------------

    def build(self) -> dict:
        self.register()
        self.ledger.protect()
        counts = self.ledger.counts()
        self.withheld_count = counts["small"] + counts["complement"]
        d = self.data
        ctx: dict = {
            "figures": {},
            "tables": {},
            "title": d.title,
            "study": d.study,
            "generated_at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "results_generated_at": d.generated_at,
            "package_version": d.package_version or __version__,
            "report_version": __version__,
            "min_cell_size": self.t,
            "small_label": self.policy.small_label,
            "complement_label": COMPLEMENT_LABEL,
            "grace_days": d.grace_period_days,
            "grace_words": days_in_words(d.grace_period_days),
            "empty": d.empty,
            "unavailable": d.unavailable,
            "withheld": counts,
            "source": self._source(),
        }
        ctx["summary"] = self._summary_cache()
        ctx["population"] = self._population()
        ctx["timing"] = self._timing()
        ctx["rtw"] = self._rtw()
        ctx["qol"] = self._qol()
        ctx["dose"] = self._dose()
        ctx["robustness"] = self._robustness()
        ctx["diagnostics"] = self._diagnostics()
        ctx["methods"] = self._methods()
        ctx["limitations"] = self._limitations(ctx["robustness"])
        ctx["glossary"] = GLOSSARY
        return ctx

    def _limitations(self, robustness: dict) -> list[tuple[str, str]]:
        """What the reader should discount: missing follow-up, instruments not analysed, unmeasured
        confounding, how work status was measured. Counts pass the same gate as every table."""
        d, s = self.data, self.data.spec_get
        out = []
        if not d.empty:
            h = d.primary_horizon
            missing = []
            for inst in ("promis_pf", "odi"):
                parts = []
                for arm in ("early", "delayed"):
                    mk = self.qol_keys.get((inst, h, arm, "missing"))
                    if mk is not None:
                        parts.append(f"{self.c(mk)} of {self.c(self.K_E if arm == 'early' else self.K_D)} {arm}")
                if parts:
                    missing.append(f"{_short(inst)}: {', '.join(parts)}")
            if missing:
                out.append(("Missing quality-of-life follow-up",
                            f"Not every patient had a score near day {h} ({'; '.join(missing)} patients had none). "
                            "The estimates weight the patients with a score by the inverse of their chance of having "
                            "one (given referral timing and the baseline characteristics), which removes bias only if "
                            "those characteristics explain who answered."))
        not_analysed = [why for key, why in d.unavailable.items() if key.startswith("qol/")]
        if not_analysed:
            out.append(("Instruments not analysed", " ".join(not_analysed) + "."))
        ev = (robustness or {}).get("e_value")
        out.append(("Unmeasured confounding",
                    "Patients were not randomised: the comparison adjusts only for what the claims and records "
                    "measure (age, sex, payer, comorbidities, prior care, baseline severity). "
                    + (ev["sentence"] if ev else "The E-value could not be computed for these results.")))
        statuses = ", ".join(s("outcomes", "rtw", "population_statuses", default=["off_work"]))
        events = ", ".join(s("outcomes", "rtw", "event_statuses", default=["working"]))
        out.append(("How work status was measured",
                    f"Work status comes from EHR work-status records, not from employers: a patient counts as off work "
                    f"at the start with a record of {statuses} around the first visit, and as back at work at the first "
                    f"later record of {events}. A return between visits is dated at the next record, so days off work "
                    "are over-counted by the gap between records, equally in both groups."))
        return out

    def _source(self) -> dict:
        """Where the data come from, for the banner: synthetic (the generator's marker) or the extract's name
        and the period of its index dates, from the provenance the analysis recorded."""
        src = self.data.provenance.get("data_source") or {}
        period = src.get("index_period")
        when = f"index dates {period[0]} to {period[1]}" if period else "period not recorded"
        if src.get("synthetic"):
            return {"synthetic": True,
                    "text": "Synthetic data: this report was made from a generated extract (ipm-outcomes synth). "
                            "Its numbers describe no real patients and must not be used for decisions.",
                    "page": "SYNTHETIC DATA — no real patients"}
        if src.get("extract"):
            return {"synthetic": False, "text": f"Data: extract “{src['extract']}”, {when}.", "page": ""}
        return {"synthetic": False, "text": "Data source: not recorded in these results.", "page": ""}

    # -- 1. executive summary -----------------------------------------------------------------------

    def _summary(self) -> dict:
        d = self.data
        h = d.primary_horizon
        question = (
            f"Does a first visit with an Interventional Pain Medicine (IPM) specialist within "
            f"{days_in_words(d.grace_period_days)} of a new episode of low back pain, rather than later or not at all, "
            "help people return to work sooner and feel better?"
        )
        diag_text, diag_pass = diagnostics_sentence(d.checks)
        if d.empty:
            return {
                "question": question,
                "population": "No persons met the cohort criteria, so there is nothing to compare: "
                "no estimates were made. Section 2 shows at which step persons were excluded.",
                "finding": Finding("empty", "No persons met the cohort criteria; no estimates could be made.",
                                   "No persons met the cohort criteria"),
                "qol": [],
                "diagnostics": "Study diagnostics do not apply to an empty cohort.",
                "diagnostics_pass": None,
                "verdict": "empty",
                "key_numbers": [],
                "naive": None,
                "days_off": None,
                "reliability": "No patients met the study criteria: nothing to judge.",
            }
        grace = days_in_words(d.grace_period_days)
        age = f"{d.spec_get('cohort', 'age_min', default=18)}-{d.spec_get('cohort', 'age_max', default=64)}"
        population = (
            f"The study followed {self.c(self.K_N)} adults aged {age} with a new episode of low back pain. "
            f"Of these, {self.c(self.K_E)} were first seen by IPM within {grace} (early) and {self.c(self.K_D)} later or not "
            f"at all (delayed). Return to work was studied among the {self.c(self.K_RTW)} who were off work at the start."
        )
        rd = self._contrast(self.P, "rtw", "risk_difference", h)
        shown_h = h
        if rd is None:
            # The primary day may be withheld while an earlier one is not (most of a small group is back at
            # work by then, fewer than min_cell_size still followed): answer at the latest day shown, and say so.
            for earlier in sorted((x for x in d.horizons if x < h), reverse=True):
                if (rd := self._contrast(self.P, "rtw", "risk_difference", earlier)) is not None:
                    shown_h = earlier
                    break
        early = self.est(self.P, "rtw", "cumulative_incidence", shown_h, "early")
        delayed = self.est(self.P, "rtw", "cumulative_incidence", shown_h, "delayed")
        finding = primary_finding(rd, early, delayed, grace_days=d.grace_period_days, horizon_days=shown_h,
                                  policy=self.policy)
        if shown_h != h:
            finding = Finding(finding.verdict, finding.sentence + (
                f" The estimate at {days_in_words(h)} is not shown: fewer than {self.t} patients of a group were still "
                "off work and followed by then."), finding.headline)
        qol = []
        for inst in ("promis_pf", "odi"):
            s = qol_finding(self._contrast(self.Q.get(inst), inst, "mean_difference", h), instrument=inst,
                            horizon_days=h, mcid=d.mcid.get(inst), policy=self.policy)
            if s:
                qol.append(s)
        naive = self._contrast(self.NAIVE, "rtw", "risk_difference", h)
        naive_text = None
        if naive is not None and rd is not None:
            naive_text = naive_sentence(naive.estimate, rd.estimate, horizon_days=h, grace_days=d.grace_period_days)
        key_numbers = []
        for horizon in d.horizons:
            e = self.est(self.P, "rtw", "cumulative_incidence", horizon, "early")
            l = self.est(self.P, "rtw", "cumulative_incidence", horizon, "delayed")
            r = self._contrast(self.P, "rtw", "risk_difference", horizon)
            key_numbers.append({
                "label": f"Back at work by day {horizon}",
                "early": _fmt_ci(e, "pct") if self.enough(e) else MISSING_LABEL,
                "delayed": _fmt_ci(l, "pct") if self.enough(l) else MISSING_LABEL,
                "difference": _fmt_ci(r, "pp") if r is not None else MISSING_LABEL,
            })
        return {
            "question": question,
            "population": population,
            "finding": finding,
            "qol": qol,
            "diagnostics": diag_text,
            "diagnostics_pass": diag_pass,
            "verdict": finding.verdict,
            "key_numbers": key_numbers,
            "naive": naive_text,
            "days_off": self._days_off_sentence(),
            "reliability": self._reliability(finding, diag_pass),
        }

    def _days_off_sentence(self) -> str | None:
        """The answer in days off work in the first year (restricted mean time not back at work)."""
        h = self._rmst_horizon(self.P)
        rm = self._contrast(self.P, "rtw", "rmst_difference", h) if h else None
        if rm is None or not _finite(rm.ci_low) or not _finite(rm.ci_high):
            return None
        if h in (365, 366):
            period = "in the first year"
        else:
            period = f"in the first {h} days (about {h / 30.44:.0f} months)"
            if self.data.horizons and max(self.data.horizons) >= 365:
                period += (", the longest time for which enough patients of both groups were still followed "
                           "(the first year cannot be shown)")
        days = abs(rm.estimate)
        fewer = "fewer" if rm.estimate < 0 else "more"
        ci = f"95% CI {_f(rm.ci_low, 0, '+')} to {_f(rm.ci_high, 0, '+')} days"
        if round(days) == 0:
            return f"Days off work {period}: about the same with early referral ({ci})."
        return (f"Days off work {period}: about {days:.0f} {fewer} days off work per patient with early referral "
                f"({ci}; the interval {'includes' if rm.ci_low <= 0 <= rm.ci_high else 'excludes'} no difference).")

    def _reliability(self, finding: Finding, diag_pass: bool | None) -> str:
        """One line a reader can act on: how far to trust the answer (the detailed table is in section 8)."""
        if finding.verdict == "empty":
            return "No patients met the study criteria: nothing to judge."
        if finding.verdict == "unavailable":
            return "Too few patients referred early to judge: the study cannot answer the question with these data."
        if diag_pass is True:
            return "All study checks passed: the groups were comparable after weighting."
        if diag_pass is False:
            failed = sum(1 for c in self.data.checks if c.passed is False)
            known = sum(1 for c in self.data.checks if c.passed is not None)
            return (f"{failed} of {known} study checks failed: the groups may not be comparable, so read the answer "
                    "with caution (details in section 8).")
        return "The study checks are not available in these results."

    # -- 2. study population ----------------------------------------------------------------------------

    def _population(self) -> dict:
        d = self.data
        out = {"attrition": [], "table1": False}
        rows = []
        for pop, steps in self.attrition.items():
            name = {"cohort": "Study cohort", "rtw": "Return-to-work population"}.get(pop, pop)
            for i, s in enumerate(steps):
                rows.append([name, str(i), s["step"], self.c(s["rkey"]), self.c(s["ekey"]) if s["ekey"] else ""])
        if rows:
            notes = [f"Counts below {self.t} are shown as {self.policy.small_label}; {COMPLEMENT_LABEL} marks a count "
                     "withheld so that a small count cannot be worked out from the others."]
            if any(s.get("merged", 1) > 1 for steps in self.attrition.values() for s in steps):
                notes.append("Steps joined by ';' were merged because one of them excluded fewer than "
                             f"{self.t} persons.")
            self.tables["attrition"] = DisplayTable(
                columns=[("population", "Population"), ("step_order", "Step"), ("step", "Criterion"),
                         ("remaining", "Remaining"), ("excluded", "Excluded")],
                rows=rows, caption="Attrition: persons remaining after each eligibility criterion.",
                notes=notes, count_columns={"remaining", "excluded"},
            )
        cohort_steps = self.attrition.get("cohort", [])
        if cohort_steps:
            steps = []
            for i, s in enumerate(cohort_steps):
                steps.append({
                    "label": s["step"] if i == 0 else s["step"],
                    "remaining": self.c(s["rkey"]),
                    "excluded": self.c(s["ekey"]) if s["ekey"] else None,
                    "excluded_label": s["step"] if i > 0 else "",
                })
            arms = []
            if not d.empty:
                arms = [(f"Early IPM (within {d.grace_period_days} days)", self.c(self.K_E)),
                        (f"Delayed or no IPM (after day {d.grace_period_days})", self.c(self.K_D))]
            title = (f"{self.c(self.K_N)} persons met the cohort criteria; {self.c(self.K_E)} were seen by IPM "
                     f"within {d.grace_period_days} days" if not d.empty else "No persons met the cohort criteria")
            self.figures["attrition"] = {
                "make": lambda steps=steps, arms=arms, title=title: plots.attrition_diagram(steps, arms, title=title),
                "caption": "Figure 1. Flow of persons from the extract to the study cohort (CONSORT style).",
            }
            out["attrition"] = True
        if hasattr(self, "t1") and not d.empty:
            self.tables["table1"] = self._table1()
            out["table1"] = True
        return out

    def _table1(self) -> DisplayTable:
        t1 = self.t1
        smd_map = self._smds_shown()
        arms = {"early": self.K_E, "delayed": self.K_D}
        rows = []
        seen = set()
        for var in dict.fromkeys(t1["variable"]):
            part = t1[t1["variable"] == var]
            stat = str(part["statistic"].iloc[0] or "n_pct")
            levels = list(dict.fromkeys(part["level"]))
            label = _covariate_label(var)
            if stat == "n_pct" and levels != [None]:
                s = smd_map.get(var, (None, None))
                rows.append([label, "", "", "", "", _fmt_smd(s[0]), _fmt_smd(s[1])])
            for level in levels:
                cells = []
                for arm, arm_key in arms.items():
                    r = part[(part["arm"] == arm) & (part["level"].isna() if level is None else part["level"] == level)]
                    if r.empty:
                        cells += [MISSING_LABEL, MISSING_LABEL]
                        continue
                    r = r.iloc[0]
                    if stat == "n_pct":
                        k = ("t1", var, level, arm)
                        den_key = arm_key if self.ledger.cells.get(arm_key) and self.ledger.cells[arm_key].value == r["denominator"] else ("t1", "den", var, arm)
                        cells += [self.c(k), self.pct(k, den_key)]
                    else:
                        n_obs = r["n"]
                        if self.policy.too_few(n_obs):
                            cells += ["", f"withheld ({_withheld_text(self.policy)})"]
                        else:
                            digits = 2 if "eq5d" in var else 1
                            cells += ["", f"{_fmt_num(r['mean'], digits)} ({_fmt_num(r['sd'], digits)})"]
                if level is None:
                    s = smd_map.get(var, (None, None))
                    name = label + (", mean (SD)" if stat != "n_pct" else "")
                    rows.append([name, *cells, _fmt_smd(s[0]), _fmt_smd(s[1])])
                else:
                    s = smd_map.get(f"{var}_{level}", (None, None))
                    rows.append([f"\u2003{_level_label(level)}", *cells, _fmt_smd(s[0]), _fmt_smd(s[1])])
            seen.add(var)
        header_e = f"Early IPM (n = {self.c(self.K_E)})"
        header_d = f"Delayed or no IPM (n = {self.c(self.K_D)})"
        return DisplayTable(
            columns=[("characteristic", "Characteristic"), ("early_n", header_e), ("early_pct", "%"),
                     ("delayed_n", header_d), ("delayed_pct", "%"), ("smd_before", "SMD before"), ("smd_after", "SMD after")],
            rows=rows,
            caption="Table 1. Baseline characteristics by exposure group (before weighting), with standardized "
                    "mean differences (SMD) before and after weighting.",
            notes=[f"n (%) for categories; mean (SD) for measurements. Counts below {self.t} shown as "
                   f"{self.policy.small_label}; {COMPLEMENT_LABEL} withheld to prevent back-calculation; percentages "
                   "of withheld counts are not shown. |SMD| < 0.1 indicates balance."],
            count_columns={"early_n", "delayed_n"},
            numeric_columns={"early_pct", "delayed_pct", "smd_before", "smd_after"},
        )

    def _smds_shown(self) -> dict[str, tuple[float, float]]:
        """Covariate -> (SMD before, SMD after), only where the disclosure gate lets them through.

        An SMD is a formula in the counts of its row and the group sizes: for a yes/no row it has a
        single solution, so next to a withheld cell it gives the cell back. It is shown only when every
        count of its row (each level, for a categorical characteristic) is shown and both groups it
        compares pass :meth:`CountLedger.supports`; for a measurement, when each group's mean rests on
        at least min_cell_size persons. Table 1 and the love plot read this one decision.
        """
        smd = self.data.table("smd")
        t1 = getattr(self, "t1", None)
        if smd is None or smd.empty or t1 is None:
            return {}
        L = self.ledger
        shown = lambda k: k in L.cells and L.status(k) == "shown"  # noqa: E731
        out = {}
        for var in dict.fromkeys(t1["variable"]):
            part = t1[t1["variable"] == var]
            stat = str(part["statistic"].iloc[0] or "n_pct")
            levels = list(dict.fromkeys(part["level"]))
            groups_ok = True
            for arm, arm_key in (("early", self.K_E), ("delayed", self.K_D)):
                rows = part[part["arm"] == arm]
                if rows.empty:
                    groups_ok = False
                    continue
                den = rows["denominator"].iloc[0]
                den_key = arm_key if L.cells.get(arm_key) and L.cells[arm_key].value == den else ("t1", "den", var, arm)
                if not L.supports(den_key) or (stat != "n_pct" and self.policy.too_few(rows["n"].min())):
                    groups_ok = False
            if not groups_ok:
                continue
            if stat != "n_pct":
                names = [var]
            else:
                cells = [("t1", var, level, arm) for level in levels for arm in ("early", "delayed")]
                if not all(shown(k) for k in cells):
                    continue
                names = [var] if levels == [None] else [var] + [f"{var}_{level}" for level in levels]
            for r in smd[smd["covariate"].astype(str).isin(names)].itertuples(index=False):
                if pd.notna(r.smd_before) and pd.notna(r.smd_after):
                    out[str(r.covariate)] = (float(r.smd_before), float(r.smd_after))
        return out

    # -- 3. referral timing ---------------------------------------------------------------------------

    def _timing(self) -> dict:
        d = self.data
        out = {"available": bool(self.delay_keys)}
        if not self.delay_keys:
            return out
        rows = []
        cats = d.table("delay_categories")
        for label, first, _ in self._delay_bands():
            k = self.delay_keys[label]
            rows.append([f"{label} days" if first is not None else label, self.c(k), self.pct(k, self.K_N)])
        self.tables["delay_categories"] = DisplayTable(
            columns=[("delay_category", "Days from index to first IPM contact"), ("n", "Persons"), ("pct", "% of cohort")],
            rows=rows, caption="Referral-delay categories.",
            notes=[f"Counts below {self.t} shown as {self.policy.small_label}; {COMPLEMENT_LABEL} withheld to prevent back-calculation."],
            count_columns={"n"}, numeric_columns={"pct"},
        )
        if not self.ref_bins.empty:
            bins = self.ref_bins.copy()
            bins["n"] = [self.v(k) for k in bins["key"]]
            bins["label"] = [self.c(k) for k in bins["key"]]
            per_day = self.ref_per_day
            total = int(per_day.sum())
            title = "Days from index to first IPM contact"
            if not self.policy.too_few(total):
                cum = per_day.sort_index().cumsum()
                median = int(cum.index[np.searchsorted(cum.to_numpy(), total / 2.0)])
                within = int(per_day[per_day.index <= d.grace_period_days].sum())
                title = f"Half of referred patients had their first IPM contact by day {median}"
                # A share of the referred: its numerator (the early group) and denominator (everyone but the
                # never-referred) must both be shown counts, or it would pin them.
                never = [self.delay_keys[label] for label, first, _ in self._delay_bands() if first is None]
                if self.ledger.supports(self.K_E) and all(self.ledger.supports(k) or self.ledger.cells[k].value == 0 for k in never) \
                        and not self.policy.implied_count_small(within / total, total):
                    title += f"; {100 * within / total:.0f}% within the {d.grace_period_days}-day grace period"
            plot_bins = bins[["left", "right", "n", "label"]].astype({"n": float})
            self.figures["referral_timing"] = {
                "make": lambda b=plot_bins, t=title: plots.referral_histogram(b, grace_days=d.grace_period_days, title=t),
                "caption": "Figure 2. Days from index to first IPM contact among persons with a contact in follow-up. "
                           "Bins are merged where fewer than "
                           f"{self.t} persons would be shown; blue = within the grace period.",
            }
            self.tables["referral_timing_bins"] = DisplayTable(
                columns=[("first_day", "First day"), ("last_day", "Last day"), ("n", "Persons")],
                rows=[[str(r.left), str(r.right), r.label] for r in bins.itertuples(index=False)],
                caption="Histogram bins of Figure 2.", count_columns={"n"},
            )
            out["histogram"] = True
        return out

    # -- 4. return to work ----------------------------------------------------------------------------

    def _rtw(self) -> dict:
        d = self.data
        out = {"available": False, "curves": [], "days_off": False}
        if d.empty:
            return out
        rows = []
        for a in self.comparisons:
            for h in d.horizons:
                e = self.est(a.id, "rtw", "cumulative_incidence", h, "early")
                l = self.est(a.id, "rtw", "cumulative_incidence", h, "delayed")
                rd = self._contrast(a.id, "rtw", "risk_difference", h)
                rr = self._contrast(a.id, "rtw", "risk_ratio", h)
                if e is None and l is None and rd is None:
                    continue
                ke = self.est_keys.get((a.id, "rtw", "cumulative_incidence", h, "early"))
                kd = self.est_keys.get((a.id, "rtw", "cumulative_incidence", h, "delayed"))
                rows.append([
                    METHODS[a.method], str(h),
                    _fmt_ci(e, "pct") if self.enough(e) else MISSING_LABEL,
                    _fmt_ci(l, "pct") if self.enough(l) else MISSING_LABEL,
                    _fmt_ci(rd, "pp"), _fmt_ci(rr, "ratio"),
                    self.c(ke) if ke else MISSING_LABEL, self.c(kd) if kd else MISSING_LABEL,
                ])
        if rows:
            out["available"] = True
            self.tables["rtw_risk"] = DisplayTable(
                columns=[("method", "Method"), ("horizon_days", "Day"), ("early", "Early IPM, % (95% CI)"),
                         ("delayed", "Delayed, % (95% CI)"), ("risk_difference", "Difference, points (95% CI)"),
                         ("risk_ratio", "Ratio (95% CI)"), ("n_early", "n early"), ("n_delayed", "n delayed")],
                rows=rows,
                caption="Return to work: cumulative incidence (competing events accounted for) by strategy, risk "
                        "differences (early minus delayed, percentage points) and risk ratios.",
                notes=["n early and n delayed are persons, not clones: in the clone-censor-weight analysis every "
                       "person starts in both strategies, and n counts the persons who actually followed each one "
                       f"(first IPM contact within {d.grace_period_days} days, or not). An arm's estimate at a day is "
                       f"shown only while at least {self.t} of its persons are still followed.",
                       "The naive comparison classifies patients by when they were eventually referred and is biased "
                       "by immortal time; it is shown only for contrast.",
                       f"Estimates from fewer than {self.t} persons are not shown ({MISSING_LABEL})."],
                count_columns={"n_early", "n_delayed"},
            )
        # Days off work and hazard ratios.
        hr_rows = []
        for a in self.comparisons:
            h_rm = self._rmst_horizon(a.id)
            rm = self._contrast(a.id, "rtw", "rmst_difference", h_rm)
            hr = self._contrast(a.id, "rtw", "hazard_ratio", None)
            if rm is None and hr is None:
                continue
            levels = []
            for arm in ("early", "delayed"):
                e = self.est(a.id, "rtw", "restricted_mean_days_off_work", h_rm, arm) if h_rm else None
                levels.append(_fmt_ci(e, "days").lstrip("+") if self.enough(e) else MISSING_LABEL)
            hr_rows.append([METHODS[a.method], str(h_rm or ""), *levels, _fmt_ci(rm, "days"), _fmt_ci(hr, "ratio")])
        if hr_rows:
            out["days_off"] = True
            self.tables["rtw_days_off"] = DisplayTable(
                columns=[("method", "Method"), ("horizon_days", "Within days"), ("days_off_early", "Days off work, early (95% CI)"),
                         ("days_off_delayed", "Days off work, delayed (95% CI)"),
                         ("days_off_difference", "Difference in days off work (95% CI)"),
                         ("hazard_ratio", "Hazard ratio of return to work (95% CI)")],
                rows=hr_rows,
                caption="Days off work (restricted mean time not back at work, early minus delayed: negative = "
                        "fewer days off with early IPM) and cause-specific hazard ratios (> 1 = faster return).",
                numeric_columns={"days_off_early", "days_off_delayed", "days_off_difference", "hazard_ratio"},
            )
        # Curves: primary method first.
        finding = self._summary_cache().get("finding")
        for i, a in enumerate(a for a in self.comparisons if a.id in self.curves):
            method = a.method
            curves = self.curves[a.id]
            risk = {arm: [(day, self.c(k)) for day, k in cells] for arm, cells in self.risk_rows[a.id].items()}
            if a.primary and finding is not None:
                title = self._curve_title(finding)
            else:
                title = f"{METHODS[method]}: cumulative incidence of return to work"
            name = f"rtw_curves_{method}"
            self.figures[name] = {
                "make": lambda c=curves, r=risk, t=title: plots.cumulative_incidence(c, r, horizons=d.horizons, title=t),
                "caption": f"Figure 3{'abc'[i]}. Return to work by strategy, {METHODS[method]}; shaded: 95% confidence "
                           f"bands. Curves stop where fewer than {self.t} persons remain at risk.",
            }
            out["curves"].append(name)
            for arm, cells in risk.items():
                for day, text in cells:
                    self.tables.setdefault("numbers_at_risk", DisplayTable(
                        columns=[("method", "Method"), ("arm", "Arm"), ("day", "Day"), ("n_at_risk", "Number at risk")],
                        rows=[], caption="Numbers at risk under the curves.", count_columns={"n_at_risk"},
                    )).rows.append([METHODS[method], ARMS[arm], str(day), text])
        return out

    def _rmst_horizon(self, analysis) -> int | None:
        """The longest horizon at which the days-off difference of ``analysis`` may be shown (both arms
        still followed by enough persons up to it); its last horizon, withheld, when none may."""
        df = self.data.estimates
        part = df[(df["analysis"] == analysis) & (df["outcome"] == "rtw") & (df["measure"] == "rmst_difference")]
        horizons = sorted({int(h) for h in part["horizon_days"].dropna()}, reverse=True)
        if not horizons:
            return None
        return next((h for h in horizons if self._contrast(analysis, "rtw", "rmst_difference", h)), horizons[0])

    def _summary_cache(self) -> dict:
        if not hasattr(self, "_summary_value"):
            self._summary_value = self._summary()
        return self._summary_value

    def _curve_title(self, finding: Finding) -> str:
        h = self.data.primary_horizon
        e = self.est(self.P, "rtw", "cumulative_incidence", h, "early")
        l = self.est(self.P, "rtw", "cumulative_incidence", h, "delayed")
        levels = ""
        if self.enough(e, l):
            levels = f": {100 * e.estimate:.0f}% vs {100 * l.estimate:.0f}% back at work by day {h}"
        return {
            "beneficial": f"Early IPM patients returned to work sooner{levels}",
            "harmful": f"Early IPM patients returned to work more slowly{levels}",
            "null": f"No clear difference in return to work between early and delayed IPM{levels}",
        }.get(finding.verdict, "Return to work by strategy")

    # -- 5. quality of life -----------------------------------------------------------------------------

    def _qol(self) -> dict:
        d = self.data
        out = {"available": False, "sentences": []}
        if d.empty:
            return out
        instruments = [o for o in OUTCOMES if o != "rtw" and (d.estimates["outcome"] == o).any()]
        if not instruments:
            return out
        q = d.table("qol_summary")
        mean_rows, diff_rows, plot_rows = [], [], []
        for inst in instruments:
            digits = 2 if inst == "eq5d_index" else 1
            for h in d.horizons:
                for arm in ("early", "delayed"):
                    k = self.qol_keys.get((inst, h, arm))
                    mk = self.qol_keys.get((inst, h, arm, "missing"))
                    obs = None
                    if q is not None:
                        r = q[(q["instrument"] == inst) & (q["horizon_days"] == h) & (q["arm"] == arm)]
                        obs = r.iloc[0] if not r.empty else None
                    am = self.est(self.Q.get(inst), inst, "adjusted_mean", h, arm)
                    # a share or mean of the persons with a score: its group must be a shown count of 11+
                    ok_obs = obs is not None and not self.policy.too_few(obs["n"]) and k is not None and self.ledger.supports(k)
                    resp = MISSING_LABEL
                    adj_resp = self.est(self.Q.get(inst), inst, "responder_proportion", h, arm)
                    if adj_resp is not None and self.enough(adj_resp) and ok_obs and not self.policy.implied_count_small(
                        adj_resp.estimate, float(obs["n"])
                    ):
                        resp = _fmt_ci(adj_resp, "pct")
                    elif ok_obs and "responder_proportion" in obs and not pd.isna(obs["responder_proportion"]) \
                            and 0.0 <= float(obs["responder_proportion"]) <= 1.0:
                        if not self.policy.implied_count_small(float(obs["responder_proportion"]), float(obs["n"])):
                            resp = f"{100 * obs['responder_proportion']:.1f}%"
                    row = [
                        _short(inst), str(h), ARMS[arm],
                        self.c(k) if k else MISSING_LABEL,
                        self.c(mk) if mk else MISSING_LABEL,
                        f"{_fmt_num(obs['mean'], digits)} ({_fmt_num(obs['sd'], digits)})" if ok_obs else MISSING_LABEL,
                        _fmt_ci(am, f"score{digits}").lstrip("+") if self.enough(am) else MISSING_LABEL,
                        resp,
                    ]
                    if any(c != MISSING_LABEL for c in row[3:]):
                        mean_rows.append(row)
                    if self.enough(am):
                        plot_rows.append({"instrument": inst, "horizon_days": h, "arm": arm, "estimate": am.estimate,
                                          "ci_low": am.ci_low, "ci_high": am.ci_high})
                md = self._contrast(self.Q.get(inst), inst, "mean_difference", h)
                rr = self._contrast(self.Q.get(inst), inst, "responder_risk_difference", h)
                if md is not None or rr is not None:
                    mcid = d.mcid.get(inst)
                    diff_rows.append([_short(inst), str(h), _fmt_ci(md, f"score{digits}"),
                                      f"{mcid:g} points" if mcid else MISSING_LABEL, _fmt_ci(rr, "pp"),
                                      "higher" if OUTCOMES[inst].higher_is_better else "lower"])
        if mean_rows:
            self.tables["qol_means"] = DisplayTable(
                columns=[("instrument", "Instrument"), ("horizon_days", "Day"), ("arm", "Group"),
                         ("n", "With a score"), ("n_missing", "Missing"), ("observed", "Observed mean (SD)"),
                         ("adjusted", "Adjusted mean (95% CI)"), ("responders", "Responders (improved by at least the MCID)")],
                rows=mean_rows,
                caption="Quality of life at follow-up by group: persons with a score and without (missing), observed "
                        "means, IPTW-adjusted means, and the share improving by at least the MCID (responders).",
                notes=[f"Means and shares from fewer than {self.t} persons, or revealing fewer than {self.t} "
                       "responders or non-responders, are not shown."],
                count_columns={"n", "n_missing"},
                numeric_columns={"observed", "adjusted", "responders"},
            )
        if diff_rows:
            self.tables["qol_differences"] = DisplayTable(
                columns=[("instrument", "Instrument"), ("horizon_days", "Day"), ("mean_difference", "Adjusted difference (95% CI)"),
                         ("mcid", "MCID"), ("responder_difference", "Responder difference, points (95% CI)"),
                         ("better", "Better is")],
                rows=diff_rows,
                caption="Quality of life: IPTW-weighted ANCOVA differences (early minus delayed, adjusted for the "
                        "baseline score and covariates) and responder risk differences at the MCID.",
                numeric_columns={"mean_difference", "responder_difference"},
            )
            out["available"] = True
        if plot_rows:
            frame = pd.DataFrame(plot_rows)
            labels = {k: f"{o.label}, {'higher' if o.higher_is_better else 'lower'} is better" for k, o in OUTCOMES.items()}
            h = d.primary_horizon
            pf = self._contrast(self.Q.get("promis_pf"), "promis_pf", "mean_difference", h)
            title = "Adjusted quality-of-life scores by group"
            if pf is not None:
                v = classify(pf.ci_low, pf.ci_high)
                title = {
                    "beneficial": f"Physical function was {pf.estimate:.1f} points higher with early IPM at day {h}",
                    "harmful": f"Physical function was {abs(pf.estimate):.1f} points lower with early IPM at day {h}",
                    "null": f"No clear difference in physical function at day {h}",
                }[v]
            self.figures["qol_means"] = {
                "make": lambda f=frame, lab=labels, t=title: plots.qol_means(f, labels=lab, title=t, mcid=d.mcid),
                "caption": "Figure 4. IPTW-adjusted mean scores (95% CI) by group at each follow-up horizon. Grey band: "
                           "the smallest change patients notice (MCID), centred on the delayed group's mean; each "
                           "axis spans at least three MCIDs.",
            }
        out["sentences"] = [
            s for inst in instruments
            if (s := qol_finding(self._contrast(self.Q.get(inst), inst, "mean_difference", d.primary_horizon),
                                 instrument=inst, horizon_days=d.primary_horizon, mcid=d.mcid.get(inst), policy=self.policy))
        ]
        return out

    # -- 6. dose-response -------------------------------------------------------------------------------

    def _dose(self) -> dict:
        d = self.data
        dr = d.table("dose_response")
        if d.empty or dr is None or dr.empty:
            return {"available": False}
        rows, points = [], []
        for r in dr.to_dict("records"):
            label = str(r["delay_category"])
            n = int(r["n"]) if r["n"] is not None and not pd.isna(r["n"]) else None
            # Persons referred in this band (the delay category), not the clones the estimator started
            # from: a band strategy's estimate rests on the persons who followed it.
            k = self.delay_keys.get(label) or self.dose_keys.get((label, int(r["horizon_days"])))
            persons = self.ledger.cells[k].value if k in self.ledger.cells else n
            ok = n is not None and not self.policy.too_few(n) and not self.policy.too_few(persons) \
                and k is not None and self.ledger.supports(k)
            e = Estimate("rtw", "ccw", "cumulative_incidence", None, int(r["horizon_days"]),
                         r["estimate"], r.get("ci_low"), r.get("ci_high"), n, analysis="dose_response")
            n_text = self.c(k) if k else MISSING_LABEL
            rows.append([label, str(int(r["horizon_days"])), n_text, _fmt_ci(e, "pct") if ok else MISSING_LABEL])
            points.append({"delay_category": label, "horizon_days": int(r["horizon_days"]),
                           "estimate": r["estimate"] if ok else np.nan,
                           "ci_low": r.get("ci_low") if ok else np.nan, "ci_high": r.get("ci_high") if ok else np.nan,
                           "label": "" if ok else f"n {n_text}"})
        self.tables["dose_response"] = DisplayTable(
            columns=[("delay_category", "Days to first IPM contact"), ("horizon_days", "Day"),
                     ("n", "Persons referred in this band"), ("estimate", "Back at work, % (95% CI)")],
            rows=rows,
            caption="How early matters: return to work by referral-delay category.",
            notes=[f"Estimates from fewer than {self.t} persons are not shown."], count_columns={"n"},
        )
        frame = pd.DataFrame(points)
        shown = frame.dropna(subset=["estimate"])
        if shown.empty:
            return {"available": True, "note": f"Too few persons were referred in each referral-delay band (fewer than "
                                               f"{self.t}) to estimate return to work by band; no figure is drawn."}
        horizons = sorted(int(x) for x in shown["horizon_days"].unique())
        h = 180 if 180 in horizons else horizons[-1]
        series = shown[(shown["horizon_days"] == h) & (shown["delay_category"] != "never")]["estimate"].to_numpy()
        # A trend is claimed only over three or more bands shown at that day, consecutive in the table.
        if len(series) >= 3 and np.all(np.diff(series) < 0):
            title = f"Return to work by day {h} falls with each longer delay band shown"
        elif len(series) >= 3 and np.all(np.diff(series) > 0):
            title = f"Return to work by day {h} rises with each longer delay band shown"
        else:
            title = f"Return to work by day {h} across referral-delay categories"
        days = " and ".join(str(x) for x in horizons)
        self.figures["dose_response"] = {
            "make": lambda f=frame, t=title: plots.dose_response(f, title=t),
            "caption": f"Figure 5. Return to work (95% CI) across referral-delay categories at {days} days.",
        }
        return {"available": True, "note": None}

    # -- 7. robustness ----------------------------------------------------------------------------------

    def _robustness(self) -> dict:
        d = self.data
        out = {"methods": False, "sensitivity": False, "subgroups": False, "e_value": None,
               "sensitivity_note": None, "subgroups_note": None}
        if d.empty:
            return out
        h = d.primary_horizon
        rows = []
        for measure, kind, header in (("risk_difference", "pp", f"Risk difference at day {h}"), ("hazard_ratio", "ratio", "Hazard ratio")):
            block = []
            for a in self.comparisons:
                e = self._contrast(a.id, "rtw", measure, h if measure == "risk_difference" else None)
                if e is None:
                    continue
                block.append({"label": METHODS[a.method], "estimate": e.estimate, "ci_low": e.ci_low, "ci_high": e.ci_high,
                              "text": _fmt_ci(e, kind), "style": "biased" if a.role == "bias_illustration" else "",
                              "colour": plots.METHOD_COLOURS[a.method], "measure": measure, "role": a.role})
            if block:
                rows.append((measure, header, block))
        if rows:
            table_rows = [[b["label"], header, b["text"]] for _, header, block in rows for b in block]
            self.tables["robustness_methods"] = DisplayTable(
                columns=[("method", "Method"), ("measure", "Measure"), ("estimate", "Estimate (95% CI)")],
                rows=table_rows, caption="Primary estimate by analysis method (early vs delayed).",
                notes=["The naive comparison is biased by immortal time and confounding by indication; it is shown "
                       "to make the size of that bias visible."],
            )
            for measure, header, block in rows:
                frame = pd.DataFrame(block)
                ccw = next((b for b in block if b["role"] == "primary"), None)
                naive = next((b for b in block if b["role"] == "bias_illustration"), None)
                if ccw and naive:
                    null = 0.0 if measure == "risk_difference" else 1.0
                    a, b = naive["estimate"] - null, ccw["estimate"] - null
                    if a * b < 0:
                        how = "points the opposite way to"
                    elif abs(a) > abs(b):
                        how = "is further from no effect than"
                    else:
                        how = "is closer to no effect than"
                    title = f"The naive comparison {how} the primary estimate; bias-corrected methods in colour"
                else:
                    title = f"{header} by method"
                is_rd = measure == "risk_difference"
                self.figures[f"forest_methods_{measure}"] = {
                    "make": lambda f=frame, t=title, rd=is_rd, hd=header: plots.forest(
                        f, null=0.0 if rd else 1.0, log=not rd, percent=rd, title=t,
                        xlabel=("Risk difference, percentage points (early minus delayed)" if rd
                                else "Hazard ratio of return to work (> 1 = faster with early IPM)")),
                    "caption": f"Figure 6{'a' if is_rd else 'b'}. {header}: clone-censor-weight (primary), landmark, "
                               "time-varying Cox and the naive comparison (hollow grey: biased).",
                }
            out["methods"] = True
        sens = d.table("sensitivity")
        if sens is not None and not sens.empty:
            srows, frows = [], []
            for r in sens.to_dict("records"):
                # the strategies' arms are persons who followed each one (not the clones in n)
                ok = not self.policy.too_few(r.get("n")) and all(
                    not self.policy.too_few(r[c]) for c in ("n_early", "n_delayed") if c in r and r[c] is not None
                ) and r.get("estimate") is not None and not pd.isna(r.get("estimate"))
                e = Estimate("rtw", "ccw", str(r.get("measure") or "risk_difference"), None, r.get("horizon_days"),
                             r["estimate"], r.get("ci_low"), r.get("ci_high"), r.get("n"), analysis=str(r["analysis"]))
                kind = "ratio" if "ratio" in e.measure else "pp"
                label = str(r.get("label") or r["analysis"])
                srows.append([label, str(r.get("horizon_days") or ""), _fmt_ci(e, kind) if ok else MISSING_LABEL])
                frows.append({"label": label, "estimate": e.estimate if ok else np.nan, "ci_low": e.ci_low if ok else np.nan,
                              "ci_high": e.ci_high if ok else np.nan, "text": _fmt_ci(e, kind) if ok else MISSING_LABEL})
            self.tables["sensitivity"] = DisplayTable(
                columns=[("analysis", "Analysis"), ("horizon_days", "Day"), ("estimate", "Risk difference, points (95% CI)")],
                rows=srows, caption="Sensitivity analyses: grace period and referral definition (clone-censor-weight).",
            )
            frame = pd.DataFrame(frows)
            est = frame["estimate"].dropna()
            out["sensitivity"] = True
            if len(est) >= 2:
                # a statement about direction only, and only over the estimates the figure shows
                if np.all(est > 0) or np.all(est < 0):
                    title = f"All {len(est)} estimates shown point the same way"
                else:
                    title = "The direction of the estimate depends on the grace period or referral definition"
                self.figures["forest_sensitivity"] = {
                    "make": lambda f=frame, t=title: plots.forest(f, null=0.0, percent=True, title=t,
                                                                 xlabel="Risk difference, percentage points"),
                    "caption": "Figure 7. Sensitivity of the primary estimate to the grace period and the referral definition.",
                }
            else:
                out["sensitivity_note"] = (f"Too few persons followed the strategies of the sensitivity analyses (fewer than "
                                           f"{self.t} in a group) to estimate them; no figure is drawn.")
        ev = d.diagnostics.get("e_value")
        primary_rr = self._contrast(self.P, "rtw", "risk_ratio", h)
        if isinstance(ev, dict) and _finite(ev.get("estimate")) and primary_rr is not None:
            out["e_value"] = {"sentence": e_value_sentence(float(ev["estimate"]), ev.get("ci_bound"),
                                                           ev.get("ci_low"), ev.get("ci_high"))}
        sub = d.table("subgroups")
        if sub is not None and not sub.empty:
            srows, frows = [], []
            p_values, complete = {}, set()
            for name in dict.fromkeys(sub["subgroup"]):
                part = sub[sub["subgroup"] == name]
                p = part["p_interaction"].dropna().iloc[0] if "p_interaction" in part and part["p_interaction"].notna().any() else None
                levels = []
                for r in part.to_dict("records"):
                    keys = self.sub_keys.get((name, str(r["level"])), {})
                    n_e, n_d = r.get("n_early"), r.get("n_delayed")
                    ok = all(k in self.ledger.cells and self.ledger.supports(k) for k in keys.values()) and len(keys) == 3 \
                        and not self.policy.too_few(r.get("n")) and not (n_e is not None and self.policy.too_few(n_e)) \
                        and not (n_d is not None and self.policy.too_few(n_d)) and _finite(r.get("estimate"))
                    levels.append((r, keys, ok))
                # The interaction test compares the levels: shown only when every level's estimate is.
                if all(ok for _, _, ok in levels):
                    complete.add(name)
                else:
                    p = None
                p_values[name] = p
                frows.append({"label": f"{_covariate_label(name)}" + (f"  (interaction p = {p:.2f})" if p is not None else ""),
                              "header": True})
                for r, keys, ok in levels:
                    e = Estimate("rtw", "ccw", "risk_difference", None, r.get("horizon_days"), r["estimate"],
                                 r.get("ci_low"), r.get("ci_high"), r.get("n"), analysis="subgroups")
                    text = _fmt_ci(e, "pp") if ok else MISSING_LABEL
                    srows.append([_covariate_label(name), _level_label(r["level"]), self.c(keys.get("n")),
                                  self.c(keys.get("n_early")), self.c(keys.get("n_delayed")), text,
                                  f"{p:.3f}" if p is not None else MISSING_LABEL])
                    frows.append({"label": _level_label(r["level"]), "estimate": e.estimate if ok else np.nan,
                                  "ci_low": e.ci_low if ok else np.nan, "ci_high": e.ci_high if ok else np.nan,
                                  "text": text})
            self.tables["subgroups"] = DisplayTable(
                columns=[("subgroup", "Subgroup"), ("level", "Level"), ("n", "Persons"), ("n_early", "n early"),
                         ("n_delayed", "n delayed"), ("risk_difference", "Risk difference, points (95% CI)"),
                         ("p_interaction", "Interaction p")],
                rows=srows, caption="Subgroups: risk difference of return to work (clone-censor-weight).",
                notes=[f"Estimates where either group has fewer than {self.t} persons are not shown."],
                count_columns={"n", "n_early", "n_delayed"},
            )
            testable = {n: p for n, p in p_values.items() if p is not None and n in complete}
            smallest = min(((p, n) for n, p in testable.items()), default=None)
            if smallest is not None and smallest[0] < 0.05:
                title = f"The effect may differ by {_covariate_label(smallest[1]).lower()} (interaction p = {smallest[0]:.3f})"
            elif testable:
                title = "No interaction test below p = 0.05 among the subgroups shown"
            else:
                title = "Subgroup estimates"
            frame = pd.DataFrame(frows)
            out["subgroups"] = True
            if frame.get("estimate") is None or frame["estimate"].dropna().empty:
                out["subgroups_note"] = (f"Too few persons in each subgroup's early or delayed group (fewer than {self.t}) "
                                         "to estimate the effect by subgroup; no figure is drawn.")
                return out
            self.figures["forest_subgroups"] = {
                "make": lambda f=frame, t=title: plots.forest(f, null=0.0, percent=True, title=t,
                                                             xlabel="Risk difference, percentage points (early minus delayed)"),
                "caption": "Figure 8. Subgroup estimates of the primary contrast with interaction tests.",
            }
            out["subgroups"] = True
        return out

    # -- 8. diagnostics ---------------------------------------------------------------------------------

    def _diagnostics(self) -> dict:
        d = self.data
        out = {"checks": False}
        if d.checks:
            self.tables["diagnostics"] = DisplayTable(
                columns=[("check", "Diagnostic"), ("value", "Value"), ("threshold", "Threshold"), ("result", "Result")],
                rows=[[c.label, self._diagnostic_value(c.name, c.value, "{:.3g}"), c.threshold,
                       "pass" if c.passed else ("fail" if c.passed is not None else MISSING_LABEL)] for c in d.checks],
                caption="Study diagnostics (OHDSI CohortMethod thresholds).",
            )
            out["checks"] = True
        extra = []
        for arm in ("early", "delayed"):
            if ("diag", "ess", arm) in self.ledger.cells:
                extra.append([f"Effective sample size after weighting, {ARMS[arm]} group", self.c(("diag", "ess", arm))])
        if ("diag", "n_truncated") in self.ledger.cells:
            pct = (d.diagnostics.get("weight_truncation") or {}).get("percentiles")
            extra.append([f"Persons whose weight was truncated{f' (at percentiles {pct[0]:g} and {pct[1]:g})' if pct else ''}",
                          self.c(("diag", "n_truncated"))])
        for key, label in (("max_abs_smd_before", "Largest |SMD| before weighting"), ("max_abs_smd_after", "Largest |SMD| after weighting"),
                           ("equipoise_fraction", "Share of persons with preference score 0.3-0.7")):
            if d.diagnostics.get(key) is not None:
                extra.append([label, self._diagnostic_value(key, float(d.diagnostics[key]), "{:.3f}")])
        if extra:
            self.tables["diagnostics_detail"] = DisplayTable(
                columns=[("quantity", "Quantity"), ("value", "Value")], rows=extra,
                caption="Weights and balance in numbers.",
            )
            out["detail"] = True
        if d.empty:
            return out
        smd = d.table("smd")
        threshold = float(d.spec_get("analysis", "diagnostics", "max_abs_smd", default=0.1))
        allowed = self._smds_shown()
        if smd is not None and not smd.empty and allowed:
            smd = smd[smd["covariate"].astype(str).isin(allowed)]
            frame = smd.assign(label=[_covariate_label(c) for c in smd["covariate"]])
            worst = float(frame["smd_after"].abs().max())
            n_bad = int((frame["smd_after"].abs() >= threshold).sum())
            title = (f"After weighting every covariate is balanced (largest |SMD| {worst:.2f} < {threshold:g})" if n_bad == 0
                     else f"After weighting {n_bad} covariate(s) remain imbalanced (|SMD| >= {threshold:g})")
            self.figures["love_plot"] = {
                "make": lambda f=frame, t=title: plots.love_plot(f, threshold=threshold, title=t),
                "caption": "Figure 9. Love plot: absolute standardized mean differences before and after weighting.",
            }
        if self.overlap_bins:
            bins = {arm: pd.DataFrame([(l, r, self.v(k)) for l, r, k in rows], columns=["left", "right", "n"]).astype(float)
                    for arm, rows in self.overlap_bins.items()}
            bounds = d.spec_get("analysis", "diagnostics", "equipoise_bounds", default=[0.3, 0.7])
            eq = d.diagnostics.get("equipoise_fraction")
            title = "Preference-score distributions by group"
            if eq is not None and not self._diagnostic_value("equipoise_fraction", float(eq), "{}").startswith("withheld"):
                title = (f"{100 * float(eq):.0f}% of persons are in equipoise (preference score "
                         f"{bounds[0]:g}-{bounds[1]:g})")
            self.figures["overlap"] = {
                "make": lambda b=bins, t=title: plots.binned_distribution(
                    b, xlabel="Preference score (propensity of early IPM, adjusted for prevalence)",
                    ylabel="Share of group per unit of score", shade=tuple(bounds), shade_label="equipoise band", title=t),
                "caption": f"Figure 10. Overlap of preference scores. Bins merged where fewer than {self.t} persons.",
            }
        if self.weight_bins:
            bins = {arm: pd.DataFrame([(l, r, self.v(k)) for l, r, k in rows], columns=["left", "right", "n"]).astype(float)
                    for arm, rows in self.weight_bins.items()}
            title = "Distribution of analysis weights by group"
            summ = getattr(self, "weight_summary", None)
            if summ is not None and "max" in summ:
                title = f"Weights stay moderate: the largest weight is {float(summ['max'].max()):.1f}"
            self.figures["weights"] = {
                "make": lambda b=bins, t=title: plots.binned_distribution(
                    b, xlabel=f"Weight ({getattr(self, 'weight_method', 'IPTW')}, log scale)", ylabel="Share of group per unit of weight",
                    log_x=True, title=t),
                "caption": f"Figure 11. Weight distribution by group. Bins merged where fewer than {self.t} persons.",
            }
        return out

    def _diagnostic_value(self, name: str, value: float | None, fmt: str) -> str:
        """A cohort-level diagnostic through the disclosure gate.

        The largest |SMD| of the cohort is the SMD of one Table 1 row: shown only when that row's SMD is
        shown (else it would give back the SMD Table 1 withholds). A share of the cohort (equipoise) is
        shown only when the cohort size is shown and the share implies no small count of persons.
        """
        if value is None or not math.isfinite(value):
            return MISSING_LABEL
        cohort_smd = name in ("max_abs_smd_before", "max_abs_smd_after") or name == "cohort_iptw:covariate_balance"
        if cohort_smd:
            which = 0 if name == "max_abs_smd_before" else 1
            shown = {round(abs(v[which]), 3) for v in self._smds_shown().values()}
            if round(abs(value), 3) not in shown:
                return f"withheld (a characteristic with fewer than {self.t} persons in a group)"
        if name in ("equipoise_fraction", "cohort_iptw:equipoise"):
            n = self.v(self.K_N)
            if n is None or self.policy.implied_count_small(value, n):
                return f"withheld (would reveal fewer than {self.t} persons)"
        return fmt.format(value)

    # -- 9. methods and provenance ----------------------------------------------------------------------

    def _methods(self) -> dict:
        d = self.data
        s = d.spec_get
        grace = d.grace_period_days
        protocol = [
            ("Eligibility", f"Adults aged {s('cohort', 'age_min', default='?')}-{s('cohort', 'age_max', default='?')} with a new "
             f"low back pain episode (no LBP diagnosis in the prior {s('cohort', 'washout_days', default='?')} days), "
             f"continuously enrolled {s('cohort', 'baseline_enrollment_days', default='?')} days before index, no red-flag "
             "diagnosis, no IPM contact in the prior year.",
             "Claims diagnoses and enrollment spans (value sets below); first eligible episode per person."),
            ("Treatment strategies", f"(1) First IPM contact within {grace} days of index; (2) no IPM contact within {grace} days.",
             "IPM contact = IPM procedure code or pain-medicine provider taxonomy on a claim."),
            ("Assignment", "Randomised in the target trial.",
             "Each person is cloned into both strategies; clones are censored when they deviate and weighted by "
             "inverse probability of remaining uncensored given baseline covariates."),
            ("Time zero and follow-up", f"Index date (first LBP visit); follow-up to {s('cohort', 'followup_days', default=365)} days, "
             "end of enrollment or data, or death.", "Same; eligibility and strategy assignment align at index (no immortal time)."),
            ("Outcomes", "Return to work (competing: long-term disability, retirement, death); quality of life at "
             f"{', '.join(str(x) for x in s('outcomes', 'qol', 'horizons_days', default=d.horizons))} days.",
             "EHR work-status records; PROMIS, ODI, EQ-5D, NRS assessments nearest each horizon."),
            ("Causal contrast", "Per-protocol effect of the two strategies.",
             "Risk differences and ratios of cumulative incidence (Aalen-Johansen, weighted); cause-specific hazard ratio; "
             "days off work; IPTW-ANCOVA mean differences."),
            ("Analysis", f"Person-level bootstrap ({d.provenance.get('bootstrap_replicates', s('analysis', 'bootstrap_replicates', default='?'))} replicates), "
             f"seed {d.seed}.", "Sensitivity: landmark IPTW, time-varying Cox, grace periods, referral definition, E-value."),
        ]
        self.tables["target_trial"] = DisplayTable(
            columns=[("component", "Component"), ("target_trial", "Target trial"), ("emulation", "Emulation with these data")],
            rows=[list(r) for r in protocol],
            caption="Target-trial specification and its emulation.",
        )
        files = d.provenance.get("files") or []
        if files:
            self.tables["provenance_files"] = DisplayTable(
                columns=[("table", "Table"), ("file", "File"), ("rows", "Rows"), ("sha256", "SHA-256")],
                rows=[[str(f.get("table", "")), str(f.get("file", "")), self.c(("prov", i)) if f.get("rows") is not None else MISSING_LABEL,
                       str(f.get("sha256", ""))] for i, f in enumerate(files)],
                caption="Input files loaded, with their content hashes and row counts.",
                count_columns={"rows"},
            )
        vs = d.provenance.get("valuesets") or []
        if vs:
            self.tables["valuesets"] = DisplayTable(
                columns=[("name", "Value set"), ("source", "Source"), ("codes", "Codes"), ("sha256", "SHA-256")],
                rows=[[str(v.get("name", "")), str(v.get("source", v.get("file", ""))), str(v.get("codes", v.get("rows", ""))),
                       str(v.get("sha256", ""))] for v in vs],
                caption="Value sets (code lists) as run; the hash identifies the exact version.",
            )
        packages = d.provenance.get("packages") or {}
        self.tables["checklist"] = DisplayTable(
            columns=[("section", "Report section"), ("guideline", "Guideline item"), ("item", "Requirement"), ("where", "What this report shows")],
            rows=[[_SECTION_TITLES[sec], g, item, what] for sec, g, item, what in _CHECKLIST],
            caption="Reporting checklist: where this report addresses RECORD (routinely collected health data) and "
                    "TARGET (target-trial emulation) items.",
        )
        if d.intervals:
            self.tables["intervals"] = DisplayTable(
                columns=[("method", "Method"), ("interval", "How the 95% confidence interval was computed")],
                rows=[[METHODS.get(m, m), text] for m, text in d.intervals.items()],
                caption="Confidence intervals by method.",
            )
        return {
            "cohort_load": _cohort_load_facts(d.provenance),
            "spec_toml": spec_as_toml(d.spec) if d.spec else "(the results do not include the study spec)",
            "spec_sha256": d.spec_sha256,
            "data_sha256": d.data_sha256,
            "seed": d.seed,
            "packages": sorted(packages.items()),
            "results_dir": str(d.results_dir),
            "table_grains": sorted(d.table_grains.items()),
        }


def _cohort_load_facts(provenance: dict) -> list[tuple[str, str]]:
    """What the cohort was built from, as (term, description) pairs: the load, its time, its calendar."""
    load = provenance.get("cohort_load") or {}
    if not load:
        return []
    facts = [
        ("Extract analysed", str(load.get("extract_path") or "—")),
        ("Extract loaded", f"{load.get('loaded_at') or '—'}; cohort built {provenance.get('cohort_built_at') or '—'}"),
    ]
    if load.get("dates_shifted"):
        facts.append(
            (
                "Dates",
                f"shifted for de-identification: plausibility checked against the reference date "
                f"{load.get('reference_date')}, and the code systems' calendar rules moved by "
                f"{load.get('date_shift_days')} days with them; calendar years shown are shifted years",
            )
        )
    else:
        facts.append(("Dates", "as recorded in the extract (not shifted)"))
    return facts


#: Short definitions for administrators (section "Glossary").
GLOSSARY: list[tuple[str, str]] = [
    ("Grace period", "The window after the first back-pain visit (here six weeks) within which a first IPM visit "
     "counts as early referral."),
    ("Clone-censor-weight", "The primary method: every patient starts in both strategies (early and delayed) at the "
     "first visit, is dropped from a strategy when their care stops matching it, and the remaining patients are "
     "weighted to stand in for those dropped. It avoids crediting the delayed group with the time patients had to "
     "wait to be referred."),
    ("Risk difference", "The share of patients back at work with early referral minus the share with delayed referral, "
     "in percentage points."),
    ("Days off work", "The average number of days not back at work within the first year (restricted mean time)."),
    ("E-value", "How strongly an unmeasured factor would have to be linked to both early referral and return to work "
     "to explain the result away; larger means more robust."),
    ("95% confidence interval", "The range of effects compatible with the data; an interval that includes zero means "
     "the data cannot rule out no effect."),
]

_SECTION_TITLES = {
    "summary": "1. Executive summary",
    "population": "2. Study population",
    "timing": "3. Referral timing",
    "rtw": "4. Return to work",
    "qol": "5. Quality of life",
    "dose": "6. How early matters",
    "robustness": "7. Robustness",
    "diagnostics": "8. Diagnostics",
    "methods": "9. Methods and provenance",
    "limitations": "10. Limitations",
}

_COVARIATE_LABELS = {
    "age": "Age, years",
    "sex": "Sex",
    "sex_F": "Sex: female",
    "payer_type": "Payer type",
    "index_year": "Index year",
    "charlson_index": "Charlson comorbidity index",
    "depression": "Depression",
    "anxiety": "Anxiety",
    "sleep_disorder": "Sleep disorder",
    "prior_pt": "Physical therapy in prior year",
    "prior_imaging": "Lumbar imaging in prior year",
    "radiculopathy": "Radiculopathy",
    "opioid_use": "Opioid use (prior 90 days)",
    "mean_daily_mme": "Mean daily MME",
    "prior_year_allowed": "Allowed amount in prior year, USD",
    "age_band": "Age band",
    "baseline_severity": "Baseline severity",
}


def _covariate_label(name: str) -> str:
    name = str(name)
    if name in _COVARIATE_LABELS:
        return _COVARIATE_LABELS[name]
    if name.startswith("baseline_"):
        inst = name.removeprefix("baseline_")
        return f"Baseline {_short(inst)}"
    if name.startswith("cci_"):
        return "Charlson: " + name.removeprefix("cci_").replace("_", " ")
    for prefix in ("payer_type_", "sex_"):
        if name.startswith(prefix):
            return f"{_COVARIATE_LABELS[prefix[:-1]]}: {_level_label(name.removeprefix(prefix))}"
    return name.replace("_", " ").capitalize()


def _level_label(level) -> str:
    text = {"F": "female", "M": "male"}.get(str(level), str(level)).replace("_", " ")
    return text[:1].upper() + text[1:]


def _fmt_smd(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return f"{float(x):.3f}"
