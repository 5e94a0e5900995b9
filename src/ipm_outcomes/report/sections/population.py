"""Section 2, the study population: the attrition (CONSORT) diagram and table, and Table 1."""

from __future__ import annotations

from ... import plots
from ...disclosure import COMPLEMENT_LABEL, MISSING_LABEL
from ..context import ReportContext
from ..counts import COHORT, DELAYED, EARLY
from ..display import DisplayTable, FigureSpec, Section, covariate_label, fmt_num, fmt_smd, level_label, withheld_text


def build(ctx: ReportContext) -> Section:
    d = ctx.data
    out = {"attrition": [], "table1": False}
    tables, figures = {}, {}
    rows = []
    for pop, steps in ctx.counts.attrition.items():
        name = {"cohort": "Study cohort", "rtw": "Return-to-work population"}.get(pop, pop)
        for i, s in enumerate(steps):
            rows.append([name, str(i), s["step"], ctx.c(s["rkey"]), ctx.c(s["ekey"]) if s["ekey"] else ""])
    if rows:
        notes = [f"Counts below {ctx.t} are shown as {ctx.policy.small_label}; {COMPLEMENT_LABEL} marks a count "
                 "withheld so that a small count cannot be worked out from the others."]
        if any(s.get("merged", 1) > 1 for steps in ctx.counts.attrition.values() for s in steps):
            notes.append("Steps joined by ';' were merged because one of them excluded fewer than "
                         f"{ctx.t} persons.")
        tables["attrition"] = DisplayTable(
            columns=[("population", "Population"), ("step_order", "Step"), ("step", "Criterion"),
                     ("remaining", "Remaining"), ("excluded", "Excluded")],
            rows=rows, caption="Attrition: persons remaining after each eligibility criterion.",
            notes=notes, count_columns={"remaining", "excluded"},
        )
    cohort_steps = ctx.counts.attrition.get("cohort", ())
    if cohort_steps:
        steps = []
        for i, s in enumerate(cohort_steps):
            steps.append({
                "label": s["step"],
                "remaining": ctx.c(s["rkey"]),
                "excluded": ctx.c(s["ekey"]) if s["ekey"] else None,
                "excluded_label": s["step"] if i > 0 else "",
            })
        arms = []
        if not d.empty:
            arms = [(f"Early IPM (within {d.grace_period_days} days)", ctx.c(EARLY)),
                    (f"Delayed or no IPM (after day {d.grace_period_days})", ctx.c(DELAYED))]
        title = (f"{ctx.c(COHORT)} persons met the cohort criteria; {ctx.c(EARLY)} were seen by IPM "
                 f"within {d.grace_period_days} days" if not d.empty else "No persons met the cohort criteria")
        figures["attrition"] = FigureSpec(
            make=lambda steps=steps, arms=arms, title=title: plots.attrition_diagram(steps, arms, title=title),
            caption="Figure 1. Flow of persons from the extract to the study cohort (CONSORT style).",
        )
        out["attrition"] = True
    if ctx.counts.table1 is not None and not d.empty:
        tables["table1"] = _table1(ctx)
        out["table1"] = True
    return Section(out, tables, figures)


def _table1(ctx: ReportContext) -> DisplayTable:
    t1 = ctx.counts.table1
    smd_map = ctx.smds_shown
    arms = {"early": EARLY, "delayed": DELAYED}
    rows = []
    for var in dict.fromkeys(t1["variable"]):
        part = t1[t1["variable"] == var]
        stat = str(part["statistic"].iloc[0] or "n_pct")
        levels = list(dict.fromkeys(part["level"]))
        label = covariate_label(var)
        if stat == "n_pct" and levels != [None]:
            s = smd_map.get(var, (None, None))
            rows.append([label, "", "", "", "", fmt_smd(s[0]), fmt_smd(s[1])])
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
                    den_key = arm_key if ctx.true_count(arm_key) == r["denominator"] else ("t1", "den", var, arm)
                    cells += [ctx.c(k), ctx.pct(k, den_key)]
                else:
                    n_obs = r["n"]
                    if ctx.policy.too_few(n_obs):
                        cells += ["", f"withheld ({withheld_text(ctx.policy)})"]
                    else:
                        digits = 2 if "eq5d" in var else 1
                        cells += ["", f"{fmt_num(r['mean'], digits)} ({fmt_num(r['sd'], digits)})"]
            if level is None:
                s = smd_map.get(var, (None, None))
                name = label + (", mean (SD)" if stat != "n_pct" else "")
                rows.append([name, *cells, fmt_smd(s[0]), fmt_smd(s[1])])
            else:
                s = smd_map.get(f"{var}_{level}", (None, None))
                rows.append([f"\u2003{level_label(level)}", *cells, fmt_smd(s[0]), fmt_smd(s[1])])
    header_e = f"Early IPM (n = {ctx.c(EARLY)})"
    header_d = f"Delayed or no IPM (n = {ctx.c(DELAYED)})"
    return DisplayTable(
        columns=[("characteristic", "Characteristic"), ("early_n", header_e), ("early_pct", "%"),
                 ("delayed_n", header_d), ("delayed_pct", "%"), ("smd_before", "SMD before"), ("smd_after", "SMD after")],
        rows=rows,
        caption="Table 1. Baseline characteristics by exposure group (before weighting), with standardized "
                "mean differences (SMD) before and after weighting.",
        notes=[f"n (%) for categories; mean (SD) for measurements. Counts below {ctx.t} shown as "
               f"{ctx.policy.small_label}; {COMPLEMENT_LABEL} withheld to prevent back-calculation; percentages "
               "of withheld counts are not shown. |SMD| < 0.1 indicates balance."],
        count_columns={"early_n", "delayed_n"},
        numeric_columns={"early_pct", "delayed_pct", "smd_before", "smd_after"},
        sources={"early_n": ("table1", "n"), "delayed_n": ("table1", "n")},
    )
