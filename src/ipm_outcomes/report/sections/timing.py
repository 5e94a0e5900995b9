"""Section 3, referral timing: the delay categories and the histogram of days to first IPM contact."""

from __future__ import annotations

import numpy as np

from ... import plots
from ...disclosure import COMPLEMENT_LABEL
from ..context import ReportContext
from ..counts import COHORT, EARLY, delay_bands
from ..display import DisplayTable, FigureSpec, Section


def build(ctx: ReportContext) -> Section:
    d = ctx.data
    out = {"available": bool(ctx.counts.delay)}
    if not ctx.counts.delay:
        return Section(out)
    tables, figures = {}, {}
    bands = delay_bands(d)
    rows = []
    for label, first, _ in bands:
        k = ctx.counts.delay[label]
        rows.append([f"{label} days" if first is not None else label, ctx.c(k), ctx.pct(k, COHORT)])
    tables["delay_categories"] = DisplayTable(
        columns=[("delay_category", "Days from index to first IPM contact"), ("n", "Persons"), ("pct", "% of cohort")],
        rows=rows, caption="Referral-delay categories.",
        notes=[f"Counts below {ctx.t} shown as {ctx.policy.small_label}; {COMPLEMENT_LABEL} withheld to prevent back-calculation."],
        count_columns={"n"}, numeric_columns={"pct"}, sources={"n": ("delay_categories", "n")},
    )
    if not ctx.counts.referral_bins.empty:
        bins = ctx.counts.referral_bins.copy()
        bins["n"] = [ctx.v(k) for k in bins["key"]]
        bins["label"] = [ctx.c(k) for k in bins["key"]]
        per_day = ctx.counts.referral_per_day
        total = int(per_day.sum())
        title = "Days from index to first IPM contact"
        if not ctx.policy.too_few(total):
            cum = per_day.sort_index().cumsum()
            median = int(cum.index[np.searchsorted(cum.to_numpy(), total / 2.0)])
            within = int(per_day[per_day.index <= d.grace_period_days].sum())
            title = f"Half of referred patients had their first IPM contact by day {median}"
            # A share of the referred: its numerator (the early group) and denominator (everyone but the
            # never-referred) must both be shown counts, or it would pin them.
            never = [ctx.counts.delay[label] for label, first, _ in bands if first is None]
            if ctx.supports(EARLY) and all(ctx.supports(k) or ctx.true_count(k) == 0 for k in never) \
                    and not ctx.policy.implied_count_small(within / total, total):
                title += f"; {100 * within / total:.0f}% within the {d.grace_period_days}-day grace period"
        plot_bins = bins[["left", "right", "n", "label"]].astype({"n": float})
        figures["referral_timing"] = FigureSpec(
            make=lambda b=plot_bins, t=title: plots.referral_histogram(b, grace_days=d.grace_period_days, title=t),
            caption="Figure 2. Days from index to first IPM contact among persons with a contact in follow-up. "
                    "Bins are merged where fewer than "
                    f"{ctx.t} persons would be shown; blue = within the grace period.",
        )
        tables["referral_timing_bins"] = DisplayTable(
            columns=[("first_day", "First day"), ("last_day", "Last day"), ("n", "Persons")],
            rows=[[str(r.left), str(r.right), r.label] for r in bins.itertuples(index=False)],
            caption="Histogram bins of Figure 2.", count_columns={"n"}, sources={"n": ("referral_timing", "n")},
        )
        out["histogram"] = True
    return Section(out, tables, figures)
