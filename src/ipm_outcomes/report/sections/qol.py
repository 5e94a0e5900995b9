"""Section 5, quality of life: observed and adjusted means by group, responders, the adjusted differences
with the MCID, and the figure of adjusted means."""

from __future__ import annotations

import pandas as pd

from ... import plots
from ...disclosure import MISSING_LABEL
from ...vocabulary import ARMS, OUTCOMES
from ..context import ReportContext
from ..display import DisplayTable, FigureSpec, Section, fmt_ci, fmt_num, short_name
from ..words import classify, qol_finding


def build(ctx: ReportContext) -> Section:
    d = ctx.data
    out = {"available": False, "sentences": []}
    if d.empty:
        return Section(out)
    instruments = [o for o in OUTCOMES if o != "rtw" and (d.estimates["outcome"] == o).any()]
    if not instruments:
        return Section(out)
    tables, figures = {}, {}
    q = d.table("qol_summary")
    mean_rows, diff_rows, plot_rows = [], [], []
    for inst in instruments:
        digits = 2 if inst == "eq5d_index" else 1
        for h in d.horizons:
            for arm in ("early", "delayed"):
                k = ctx.counts.qol.get((inst, h, arm))
                mk = ctx.counts.qol.get((inst, h, arm, "missing"))
                obs = None
                if q is not None:
                    r = q[(q["instrument"] == inst) & (q["horizon_days"] == h) & (q["arm"] == arm)]
                    obs = r.iloc[0] if not r.empty else None
                am = ctx.est(ctx.roles.qol.get(inst), inst, "adjusted_mean", h, arm)
                # a share or mean of the persons with a score: its group must be a shown count of 11+
                ok_obs = obs is not None and not ctx.policy.too_few(obs["n"]) and k is not None and ctx.supports(k)
                resp = MISSING_LABEL
                adj_resp = ctx.est(ctx.roles.qol.get(inst), inst, "responder_proportion", h, arm)
                if adj_resp is not None and ctx.enough(adj_resp) and ok_obs and not ctx.policy.implied_count_small(
                    adj_resp.estimate, float(obs["n"])
                ):
                    resp = fmt_ci(adj_resp, "pct")
                elif ok_obs and "responder_proportion" in obs and not pd.isna(obs["responder_proportion"]) \
                        and 0.0 <= float(obs["responder_proportion"]) <= 1.0:
                    if not ctx.policy.implied_count_small(float(obs["responder_proportion"]), float(obs["n"])):
                        resp = f"{100 * obs['responder_proportion']:.1f}%"
                row = [
                    short_name(inst), str(h), ARMS[arm],
                    ctx.c(k) if k else MISSING_LABEL,
                    ctx.c(mk) if mk else MISSING_LABEL,
                    f"{fmt_num(obs['mean'], digits)} ({fmt_num(obs['sd'], digits)})" if ok_obs else MISSING_LABEL,
                    fmt_ci(am, f"score{digits}").lstrip("+") if ctx.enough(am) else MISSING_LABEL,
                    resp,
                ]
                if any(c != MISSING_LABEL for c in row[3:]):
                    mean_rows.append(row)
                if ctx.enough(am):
                    plot_rows.append({"instrument": inst, "horizon_days": h, "arm": arm, "estimate": am.estimate,
                                      "ci_low": am.ci_low, "ci_high": am.ci_high})
            md = ctx.contrast(ctx.roles.qol.get(inst), inst, "mean_difference", h)
            rr = ctx.contrast(ctx.roles.qol.get(inst), inst, "responder_risk_difference", h)
            if md is not None or rr is not None:
                mcid = d.mcid.get(inst)
                diff_rows.append([short_name(inst), str(h), fmt_ci(md, f"score{digits}"),
                                  f"{mcid:g} points" if mcid else MISSING_LABEL, fmt_ci(rr, "pp"),
                                  "higher" if OUTCOMES[inst].higher_is_better else "lower"])
    if mean_rows:
        tables["qol_means"] = DisplayTable(
            columns=[("instrument", "Instrument"), ("horizon_days", "Day"), ("arm", "Group"),
                     ("n", "With a score"), ("n_missing", "Missing"), ("observed", "Observed mean (SD)"),
                     ("adjusted", "Adjusted mean (95% CI)"), ("responders", "Responders (improved by at least the MCID)")],
            rows=mean_rows,
            caption="Quality of life at follow-up by group: persons with a score and without (missing), observed "
                    "means, IPTW-adjusted means, and the share improving by at least the MCID (responders).",
            notes=[f"Means and shares from fewer than {ctx.t} persons, or revealing fewer than {ctx.t} "
                   "responders or non-responders, are not shown."],
            count_columns={"n", "n_missing"},
            sources={"n": ("qol_summary", "n"), "n_missing": ("qol_summary", "n_missing")},
            numeric_columns={"observed", "adjusted", "responders"},
        )
    if diff_rows:
        tables["qol_differences"] = DisplayTable(
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
        pf = ctx.contrast(ctx.roles.qol.get("promis_pf"), "promis_pf", "mean_difference", h)
        title = "Adjusted quality-of-life scores by group"
        if pf is not None:
            v = classify(pf.ci_low, pf.ci_high)
            title = {
                "beneficial": f"Physical function was {pf.estimate:.1f} points higher with early IPM at day {h}",
                "harmful": f"Physical function was {abs(pf.estimate):.1f} points lower with early IPM at day {h}",
                "null": f"No clear difference in physical function at day {h}",
            }[v]
        figures["qol_means"] = FigureSpec(
            make=lambda f=frame, lab=labels, t=title: plots.qol_means(f, labels=lab, title=t, mcid=d.mcid),
            caption="Figure 4. IPTW-adjusted mean scores (95% CI) by group at each follow-up horizon. Grey band: "
                    "the smallest change patients notice (MCID), centred on the delayed group's mean; each "
                    "axis spans at least three MCIDs.",
        )
    out["sentences"] = [
        s for inst in instruments
        if (s := qol_finding(ctx.contrast(ctx.roles.qol.get(inst), inst, "mean_difference", d.primary_horizon),
                             instrument=inst, horizon_days=d.primary_horizon, mcid=d.mcid.get(inst), policy=ctx.policy))
    ]
    return Section(out, tables, figures)
