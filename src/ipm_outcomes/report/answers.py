"""The study's answers that more than one section states, each a function of the context.

The primary answer is the executive summary's sentence and the title of the primary return-to-work
figure; the E-value sentence is in the robustness section and in the limitations. Each section calls the
function here instead of reading another section's output, so no section depends on another having run.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..report_data import Estimate
from .context import ReportContext
from .display import finite
from .words import Finding, days_in_words, e_value_sentence, primary_finding


@dataclass(frozen=True)
class PrimaryAnswer:
    """The primary contrast as the report states it: the finding in words, the risk difference it rests on
    (None when it may not be shown) and the day it is stated at (the primary horizon, or the latest earlier
    day that may be shown)."""

    finding: Finding
    difference: Estimate | None
    horizon_days: int


def primary_answer(ctx: ReportContext) -> PrimaryAnswer:
    """The answer to the study's question, for a cohort that is not empty."""
    d, primary = ctx.data, ctx.roles.primary
    h = d.primary_horizon
    rd = ctx.contrast(primary, "rtw", "risk_difference", h)
    shown_h = h
    if rd is None:
        # The primary day may be withheld while an earlier one is not (most of a small group is back at
        # work by then, fewer than min_cell_size still followed): answer at the latest day shown, and say so.
        for earlier in sorted((x for x in d.horizons if x < h), reverse=True):
            if (rd := ctx.contrast(primary, "rtw", "risk_difference", earlier)) is not None:
                shown_h = earlier
                break
    early = ctx.est(primary, "rtw", "cumulative_incidence", shown_h, "early")
    delayed = ctx.est(primary, "rtw", "cumulative_incidence", shown_h, "delayed")
    finding = primary_finding(rd, early, delayed, grace_days=d.grace_period_days, horizon_days=shown_h,
                              policy=ctx.policy)
    if shown_h != h:
        finding = Finding(finding.verdict, finding.sentence + (
            f" The estimate at {days_in_words(h)} is not shown: fewer than {ctx.t} patients of a group were still "
            "off work and followed by then."), finding.headline)
    return PrimaryAnswer(finding, rd, shown_h)


def e_value_text(ctx: ReportContext) -> str | None:
    """The E-value of the primary risk ratio in words, when the ratio may be shown; else None."""
    if ctx.data.empty:
        return None
    ev = ctx.data.diagnostics.get("e_value")
    primary_rr = ctx.contrast(ctx.roles.primary, "rtw", "risk_ratio", ctx.data.primary_horizon)
    if isinstance(ev, dict) and finite(ev.get("estimate")) and primary_rr is not None:
        return e_value_sentence(float(ev["estimate"]), ev.get("ci_bound"), ev.get("ci_low"), ev.get("ci_high"))
    return None
