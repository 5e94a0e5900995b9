"""Section 6, how early matters: return to work by referral-delay band (dose-response)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ... import plots
from ...disclosure import MISSING_LABEL
from ...report_data import Estimate
from ..context import ReportContext
from ..display import DisplayTable, FigureSpec, Section, fmt_ci


def build(ctx: ReportContext) -> Section:
    d = ctx.data
    dr = d.table("dose_response")
    if d.empty or dr is None or dr.empty:
        return Section({"available": False})
    rows, points = [], []
    for r in dr.to_dict("records"):
        label = str(r["delay_category"])
        n = int(r["n"]) if r["n"] is not None and not pd.isna(r["n"]) else None
        # Persons referred in this band (the delay category), not the clones the estimator started
        # from: a band strategy's estimate rests on the persons who followed it.
        k = ctx.counts.delay.get(label) or ctx.counts.dose.get((label, int(r["horizon_days"])))
        persons = ctx.true_count(k) if ctx.has(k) else n
        ok = n is not None and not ctx.policy.too_few(n) and not ctx.policy.too_few(persons) \
            and k is not None and ctx.supports(k)
        e = Estimate("rtw", "ccw", "cumulative_incidence", None, int(r["horizon_days"]),
                     r["estimate"], r.get("ci_low"), r.get("ci_high"), n, analysis="dose_response")
        n_text = ctx.c(k) if k else MISSING_LABEL
        rows.append([label, str(int(r["horizon_days"])), n_text, fmt_ci(e, "pct") if ok else MISSING_LABEL])
        points.append({"delay_category": label, "horizon_days": int(r["horizon_days"]),
                       "estimate": r["estimate"] if ok else np.nan,
                       "ci_low": r.get("ci_low") if ok else np.nan, "ci_high": r.get("ci_high") if ok else np.nan,
                       "label": "" if ok else f"n {n_text}"})
    tables = {"dose_response": DisplayTable(
        columns=[("delay_category", "Days to first IPM contact"), ("horizon_days", "Day"),
                 ("n", "Persons referred in this band"), ("estimate", "Back at work, % (95% CI)")],
        rows=rows,
        caption="How early matters: return to work by referral-delay category.",
        notes=[f"Estimates from fewer than {ctx.t} persons are not shown."], count_columns={"n"},
        sources={"n": ("dose_response", "n")},
    )}
    frame = pd.DataFrame(points)
    shown = frame.dropna(subset=["estimate"])
    if shown.empty:
        return Section({"available": True, "note": f"Too few persons were referred in each referral-delay band (fewer "
                                                   f"than {ctx.t}) to estimate return to work by band; no figure is "
                                                   "drawn."}, tables)
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
    figures = {"dose_response": FigureSpec(
        make=lambda f=frame, t=title: plots.dose_response(f, title=t),
        caption=f"Figure 5. Return to work (95% CI) across referral-delay categories at {days} days.",
    )}
    return Section({"available": True, "note": None}, tables, figures)
