"""What a report section returns, and how numbers and labels are written in it.

A section (:mod:`ipm_outcomes.report.sections`) returns a :class:`Section`: the words its part of the
template reads, its tables as :class:`DisplayTable` (string cells, already through the disclosure gate) and
its figures as :class:`FigureSpec` (a function that draws the figure from data already through the gate).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import pandas as pd

from ..disclosure import MISSING_LABEL, DisclosurePolicy
from ..report_data import TABLES, Estimate
from ..vocabulary import INSTRUMENTS


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
    #: column -> (results table, its column) the cells show, where a column shows a results table's column
    sources: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def person_count_columns(self) -> set[str]:
        """The columns that count persons: those marked as counts, and those showing a column the results data
        model declares a person count (:data:`~ipm_outcomes.report_data.TABLES`)."""
        declared = {c for c, (table, column) in self.sources.items() if column in TABLES[table].person_counts}
        return set(self.count_columns) | declared

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=[c for c, _ in self.columns])

    def to_context(self, file: str) -> dict:
        counts = self.person_count_columns
        cols = [
            {"name": c, "header": h, "count": c in counts, "numeric": c in self.numeric_columns or c in counts}
            for c, h in self.columns
        ]
        return {"columns": cols, "rows": self.rows, "caption": self.caption, "notes": self.notes, "file": file}


@dataclass(frozen=True)
class FigureSpec:
    """A figure to draw: ``make()`` returns the matplotlib Figure (the report step saves it), with its caption
    and alternative text (the caption when None)."""

    make: Callable[[], Any]
    caption: str
    alt: str | None = None


@dataclass(frozen=True)
class Section:
    """What one report section returns: the words its template part reads (``words``; any value the template
    reads under the section's name), and its tables and figures by name (the names of the CSV and PNG files)."""

    words: Any
    tables: Mapping[str, DisplayTable] = field(default_factory=dict)
    figures: Mapping[str, FigureSpec] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tables", MappingProxyType(dict(self.tables)))
        object.__setattr__(self, "figures", MappingProxyType(dict(self.figures)))


# --------------------------------------------------------------------------------------------------
# Numbers


def finite(x) -> bool:
    """True for a number that is neither missing, NaN nor infinite."""
    return x is not None and not (isinstance(x, float) and math.isnan(x)) and math.isfinite(float(x))


def opt_int(value) -> int | None:
    """A whole number from a results cell, or None when missing."""
    return None if value is None or pd.isna(value) else int(value)


def fixed(x: float, digits: int, sign: str = "") -> str:
    """A number to ``digits`` decimals without a negative zero ("-0.0" reads as a loss that is not there)."""
    text = f"{x:{sign}.{digits}f}"
    if text.lstrip("+-").strip("0.") == "":
        text = f"{0.0:{sign}.{digits}f}"
    return text


def fmt_num(x: float | None, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return MISSING_LABEL
    return f"{x:,.{digits}f}"


#: The parameter space of each kind of estimate (as a fraction for pct / pp): outside it, an estimate
#: is not a value at all (a share of 110%); an interval bound outside it is cut at its edge.
_SPACE = {"pct": (0.0, 1.0), "pp": (-1.0, 1.0), "ratio": (0.0, math.inf), "days": (-math.inf, math.inf),
          "score1": (-math.inf, math.inf), "score2": (-math.inf, math.inf)}


def fmt_ci(e: Estimate | None, kind: str) -> str:
    """An estimate with its 95% CI for tables: kind pct | pp | ratio | days | score2 | score1.

    Never prints nan or an impossible value: a missing or non-finite estimate, or one outside the
    parameter space (a share above 100%), shows as not estimable; an interval that could not be
    computed (every bootstrap replicate failed) is left out; interval bounds are cut at the edges of
    the parameter space (a share cannot fall below 0%).
    """
    if e is None or not finite(e.estimate):
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
    est = f"{fixed(scale * e.estimate, digits, sign)}{suffix}"
    if not finite(e.ci_low) or not finite(e.ci_high):
        return f"{est} (no interval)"
    lo, hi = max(float(e.ci_low), lo_space), min(float(e.ci_high), hi_space)
    return f"{est} ({fixed(scale * lo, digits)} to {fixed(scale * hi, digits)})"


def fmt_money(e: Estimate | None, sign: str = "") -> str:
    """A mean cost (or, with ``sign="+"``, a difference) with its 95% CI in whole currency units, thousands
    separated: "4,689 (3,163 to 46,821)"; missing as an em dash, no interval as "(no interval)"."""
    if e is None or not finite(e.estimate):
        return MISSING_LABEL

    def money(x: float, how: str = "") -> str:
        x = float(x)
        return f"{0.0 if round(x) == 0 else x:{how},.0f}"  # no "-0"

    est = money(e.estimate, sign)
    if not finite(e.ci_low) or not finite(e.ci_high):
        return f"{est} (no interval)"
    return f"{est} ({money(e.ci_low)} to {money(e.ci_high)})"


def fmt_smd(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return f"{float(x):.3f}"


def withheld_text(policy: DisclosurePolicy) -> str:
    return f"fewer than {policy.min_cell_size}"


# --------------------------------------------------------------------------------------------------
# Labels


def short_name(instrument: str) -> str:
    """An instrument's short name for tables and text (its code when the vocabulary does not know it)."""
    known = INSTRUMENTS.get(instrument)
    return known.short if known else instrument


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


def covariate_label(name: str) -> str:
    """A covariate (or covariate level, ``payer_type_medicaid``) as a reader names it."""
    name = str(name)
    if name in _COVARIATE_LABELS:
        return _COVARIATE_LABELS[name]
    if name.startswith("baseline_"):
        inst = name.removeprefix("baseline_")
        return f"Baseline {short_name(inst)}"
    if name.startswith("cci_"):
        return "Charlson: " + name.removeprefix("cci_").replace("_", " ")
    for prefix in ("payer_type_", "sex_"):
        if name.startswith(prefix):
            return f"{_COVARIATE_LABELS[prefix[:-1]]}: {level_label(name.removeprefix(prefix))}"
    return name.replace("_", " ").capitalize()


def level_label(level) -> str:
    """A level of a characteristic as a reader names it ("F" -> "Female")."""
    text = {"F": "female", "M": "male"}.get(str(level), str(level)).replace("_", " ")
    return text[:1].upper() + text[1:]
