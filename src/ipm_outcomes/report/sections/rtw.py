"""Section 4, return to work: the cumulative incidence curves and numbers at risk of every comparison, the
risks by day, and the days off work with the hazard ratios."""

from __future__ import annotations

from ... import plots
from ...disclosure import MISSING_LABEL
from ...vocabulary import ARMS, METHODS
from ..answers import primary_answer
from ..context import ReportContext
from ..display import DisplayTable, FigureSpec, Section, fmt_ci
from ..words import Finding


def build(ctx: ReportContext) -> Section:
    d = ctx.data
    out = {"available": False, "curves": [], "days_off": False}
    if d.empty:
        return Section(out)
    tables, figures = {}, {}
    rows = []
    for a in ctx.roles.comparisons:
        for h in d.horizons:
            e = ctx.est(a.id, "rtw", "cumulative_incidence", h, "early")
            l = ctx.est(a.id, "rtw", "cumulative_incidence", h, "delayed")  # noqa: E741
            rd = ctx.contrast(a.id, "rtw", "risk_difference", h)
            rr = ctx.contrast(a.id, "rtw", "risk_ratio", h)
            if e is None and l is None and rd is None:
                continue
            ke = ctx.counts.estimates.get((a.id, "rtw", "cumulative_incidence", h, "early"))
            kd = ctx.counts.estimates.get((a.id, "rtw", "cumulative_incidence", h, "delayed"))
            rows.append([
                METHODS[a.method], str(h),
                fmt_ci(e, "pct") if ctx.enough(e) else MISSING_LABEL,
                fmt_ci(l, "pct") if ctx.enough(l) else MISSING_LABEL,
                fmt_ci(rd, "pp"), fmt_ci(rr, "ratio"),
                ctx.c(ke) if ke else MISSING_LABEL, ctx.c(kd) if kd else MISSING_LABEL,
            ])
    if rows:
        out["available"] = True
        tables["rtw_risk"] = DisplayTable(
            columns=[("method", "Method"), ("horizon_days", "Day"), ("early", "Early IPM, % (95% CI)"),
                     ("delayed", "Delayed, % (95% CI)"), ("risk_difference", "Difference, points (95% CI)"),
                     ("risk_ratio", "Ratio (95% CI)"), ("n_early", "n early"), ("n_delayed", "n delayed")],
            rows=rows,
            caption="Return to work: cumulative incidence (competing events accounted for) by strategy, risk "
                    "differences (early minus delayed, percentage points) and risk ratios.",
            notes=["n early and n delayed are persons, not clones: in the clone-censor-weight analysis every "
                   "person starts in both strategies, and n counts the persons who actually followed each one "
                   f"(first IPM contact within {d.grace_period_days} days, or not). An arm's estimate at a day is "
                   f"shown only while at least {ctx.t} of its persons are still followed.",
                   "The naive comparison classifies patients by when they were eventually referred and is biased "
                   "by immortal time; it is shown only for contrast.",
                   f"Estimates from fewer than {ctx.t} persons are not shown ({MISSING_LABEL})."],
            count_columns={"n_early", "n_delayed"},
            sources={"n_early": ("estimates", "n"), "n_delayed": ("estimates", "n")},
        )
    days_off = _days_off(ctx)
    if days_off is not None:
        out["days_off"] = True
        tables["rtw_days_off"] = days_off
    # Curves: primary method first.
    finding = primary_answer(ctx).finding
    for i, a in enumerate(a for a in ctx.roles.comparisons if a.id in ctx.counts.curves):
        method = a.method
        curves = dict(ctx.counts.curves[a.id])
        risk = {arm: [(day, ctx.c(k)) for day, k in cells] for arm, cells in ctx.counts.at_risk[a.id].items()}
        if a.primary:
            title = _curve_title(ctx, finding)
        else:
            title = f"{METHODS[method]}: cumulative incidence of return to work"
        name = f"rtw_curves_{method}"
        figures[name] = FigureSpec(
            make=lambda c=curves, r=risk, t=title: plots.cumulative_incidence(c, r, horizons=d.horizons, title=t),
            caption=f"Figure 3{'abc'[i]}. Return to work by strategy, {METHODS[method]}; shaded: 95% confidence "
                    f"bands. Curves stop where fewer than {ctx.t} persons remain at risk.",
        )
        out["curves"].append(name)
        for arm, cells in risk.items():
            for day, text in cells:
                tables.setdefault("numbers_at_risk", DisplayTable(
                    columns=[("method", "Method"), ("arm", "Arm"), ("day", "Day"), ("n_at_risk", "Number at risk")],
                    rows=[], caption="Numbers at risk under the curves.", count_columns={"n_at_risk"},
                    sources={"n_at_risk": ("rtw_curves", "n_at_risk")},
                )).rows.append([METHODS[method], ARMS[arm], str(day), text])
    return Section(out, tables, figures)


def _days_off(ctx: ReportContext) -> DisplayTable | None:
    """Days off work and hazard ratios by method (None when no method has either to show)."""
    hr_rows = []
    for a in ctx.roles.comparisons:
        h_rm = ctx.rmst_horizon(a.id)
        rm = ctx.contrast(a.id, "rtw", "rmst_difference", h_rm)
        hr = ctx.contrast(a.id, "rtw", "hazard_ratio", None)
        if rm is None and hr is None:
            continue
        levels = []
        for arm in ("early", "delayed"):
            e = ctx.est(a.id, "rtw", "restricted_mean_days_off_work", h_rm, arm) if h_rm else None
            levels.append(fmt_ci(e, "days").lstrip("+") if ctx.enough(e) else MISSING_LABEL)
        hr_rows.append([METHODS[a.method], str(h_rm or ""), *levels, fmt_ci(rm, "days"), fmt_ci(hr, "ratio")])
    if not hr_rows:
        return None
    return DisplayTable(
        columns=[("method", "Method"), ("horizon_days", "Within days"), ("days_off_early", "Days off work, early (95% CI)"),
                 ("days_off_delayed", "Days off work, delayed (95% CI)"),
                 ("days_off_difference", "Difference in days off work (95% CI)"),
                 ("hazard_ratio", "Hazard ratio of return to work (95% CI)")],
        rows=hr_rows,
        caption="Days off work (restricted mean time not back at work, early minus delayed: negative = "
                "fewer days off with early IPM) and cause-specific hazard ratios (> 1 = faster return).",
        numeric_columns={"days_off_early", "days_off_delayed", "days_off_difference", "hazard_ratio"},
    )


def _curve_title(ctx: ReportContext, finding: Finding) -> str:
    """The primary curve's title: the answer, with the two arms' levels at the primary day when shown."""
    h = ctx.data.primary_horizon
    e = ctx.est(ctx.roles.primary, "rtw", "cumulative_incidence", h, "early")
    l = ctx.est(ctx.roles.primary, "rtw", "cumulative_incidence", h, "delayed")  # noqa: E741
    levels = ""
    if ctx.enough(e, l):
        levels = f": {100 * e.estimate:.0f}% vs {100 * l.estimate:.0f}% back at work by day {h}"
    return {
        "beneficial": f"Early IPM patients returned to work sooner{levels}",
        "harmful": f"Early IPM patients returned to work more slowly{levels}",
        "null": f"No clear difference in return to work between early and delayed IPM{levels}",
    }.get(finding.verdict, "Return to work by strategy")
