"""Section 7, robustness: the primary contrast by method (with the biased naive one), the sensitivity
analyses, the E-value and the subgroups."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ... import plots
from ...disclosure import MISSING_LABEL
from ...report_data import Estimate
from ...vocabulary import METHODS
from ..answers import e_value_text
from ..context import ReportContext
from ..display import DisplayTable, FigureSpec, Section, covariate_label, finite, fmt_ci, level_label


def build(ctx: ReportContext) -> Section:
    out = {"methods": False, "sensitivity": False, "subgroups": False, "e_value": None,
           "sensitivity_note": None, "subgroups_note": None}
    if ctx.data.empty:
        return Section(out)
    parts = (_methods(ctx), _sensitivity(ctx), _subgroups(ctx))
    for part in parts:
        out.update(part.words)
    sentence = e_value_text(ctx)
    if sentence is not None:
        out["e_value"] = {"sentence": sentence}
    return Section(out, {k: v for p in parts for k, v in p.tables.items()},
                   {k: v for p in parts for k, v in p.figures.items()})


def _methods(ctx: ReportContext) -> Section:
    """The primary contrast by method: a table and a forest plot per measure (risk difference, hazard ratio)."""
    h = ctx.data.primary_horizon
    rows = []
    for measure, kind, header in (("risk_difference", "pp", f"Risk difference at day {h}"), ("hazard_ratio", "ratio", "Hazard ratio")):
        block = []
        for a in ctx.roles.comparisons:
            e = ctx.contrast(a.id, "rtw", measure, h if measure == "risk_difference" else None)
            if e is None:
                continue
            block.append({"label": METHODS[a.method], "estimate": e.estimate, "ci_low": e.ci_low, "ci_high": e.ci_high,
                          "text": fmt_ci(e, kind), "style": "biased" if a.role == "bias_illustration" else "",
                          "colour": plots.METHOD_COLOURS[a.method], "measure": measure, "role": a.role})
        if block:
            rows.append((measure, header, block))
    if not rows:
        return Section({})
    table_rows = [[b["label"], header, b["text"]] for _, header, block in rows for b in block]
    tables = {"robustness_methods": DisplayTable(
        columns=[("method", "Method"), ("measure", "Measure"), ("estimate", "Estimate (95% CI)")],
        rows=table_rows, caption="Primary estimate by analysis method (early vs delayed).",
        notes=["The naive comparison is biased by immortal time and confounding by indication; it is shown "
               "to make the size of that bias visible."],
    )}
    figures = {}
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
        figures[f"forest_methods_{measure}"] = FigureSpec(
            make=lambda f=frame, t=title, rd=is_rd: plots.forest(
                f, null=0.0 if rd else 1.0, log=not rd, percent=rd, title=t,
                xlabel=("Risk difference, percentage points (early minus delayed)" if rd
                        else "Hazard ratio of return to work (> 1 = faster with early IPM)")),
            caption=f"Figure 6{'a' if is_rd else 'b'}. {header}: clone-censor-weight (primary), landmark, "
                    "time-varying Cox and the naive comparison (hollow grey: biased).",
        )
    return Section({"methods": True}, tables, figures)


def _sensitivity(ctx: ReportContext) -> Section:
    """The primary contrast under other grace periods and referral definitions."""
    sens = ctx.data.table("sensitivity")
    if sens is None or sens.empty:
        return Section({})
    srows, frows = [], []
    for r in sens.to_dict("records"):
        # the strategies' arms are persons who followed each one (not the clones in n)
        ok = not ctx.policy.too_few(r.get("n")) and all(
            not ctx.policy.too_few(r[c]) for c in ("n_early", "n_delayed") if c in r and r[c] is not None
        ) and r.get("estimate") is not None and not pd.isna(r.get("estimate"))
        e = Estimate("rtw", "ccw", str(r.get("measure") or "risk_difference"), None, r.get("horizon_days"),
                     r["estimate"], r.get("ci_low"), r.get("ci_high"), r.get("n"), analysis=str(r["analysis"]))
        kind = "ratio" if "ratio" in e.measure else "pp"
        label = str(r.get("label") or r["analysis"])
        srows.append([label, str(r.get("horizon_days") or ""), fmt_ci(e, kind) if ok else MISSING_LABEL])
        frows.append({"label": label, "estimate": e.estimate if ok else np.nan, "ci_low": e.ci_low if ok else np.nan,
                      "ci_high": e.ci_high if ok else np.nan, "text": fmt_ci(e, kind) if ok else MISSING_LABEL})
    tables = {"sensitivity": DisplayTable(
        columns=[("analysis", "Analysis"), ("horizon_days", "Day"), ("estimate", "Risk difference, points (95% CI)")],
        rows=srows, caption="Sensitivity analyses: grace period and referral definition (clone-censor-weight).",
    )}
    frame = pd.DataFrame(frows)
    est = frame["estimate"].dropna()
    if len(est) < 2:
        return Section({"sensitivity": True,
                        "sensitivity_note": f"Too few persons followed the strategies of the sensitivity analyses (fewer "
                                            f"than {ctx.t} in a group) to estimate them; no figure is drawn."}, tables)
    # a statement about direction only, and only over the estimates the figure shows
    if np.all(est > 0) or np.all(est < 0):
        title = f"All {len(est)} estimates shown point the same way"
    else:
        title = "The direction of the estimate depends on the grace period or referral definition"
    figures = {"forest_sensitivity": FigureSpec(
        make=lambda f=frame, t=title: plots.forest(f, null=0.0, percent=True, title=t,
                                                  xlabel="Risk difference, percentage points"),
        caption="Figure 7. Sensitivity of the primary estimate to the grace period and the referral definition.",
    )}
    return Section({"sensitivity": True}, tables, figures)


def _subgroups(ctx: ReportContext) -> Section:
    """The primary contrast by subgroup level, with the interaction tests."""
    sub = ctx.data.table("subgroups")
    if sub is None or sub.empty:
        return Section({})
    srows, frows = [], []
    p_values, complete = {}, set()
    for name in dict.fromkeys(sub["subgroup"]):
        part = sub[sub["subgroup"] == name]
        p = part["p_interaction"].dropna().iloc[0] if "p_interaction" in part and part["p_interaction"].notna().any() else None
        levels = []
        for r in part.to_dict("records"):
            keys = ctx.counts.subgroups.get((name, str(r["level"])), {})
            n_e, n_d = r.get("n_early"), r.get("n_delayed")
            ok = all(ctx.has(k) and ctx.supports(k) for k in keys.values()) and len(keys) == 3 \
                and not ctx.policy.too_few(r.get("n")) and not (n_e is not None and ctx.policy.too_few(n_e)) \
                and not (n_d is not None and ctx.policy.too_few(n_d)) and finite(r.get("estimate"))
            levels.append((r, keys, ok))
        # The interaction test compares the levels: shown only when every level's estimate is.
        if all(ok for _, _, ok in levels):
            complete.add(name)
        else:
            p = None
        p_values[name] = p
        frows.append({"label": f"{covariate_label(name)}" + (f"  (interaction p = {p:.2f})" if p is not None else ""),
                      "header": True})
        for r, keys, ok in levels:
            e = Estimate("rtw", "ccw", "risk_difference", None, r.get("horizon_days"), r["estimate"],
                         r.get("ci_low"), r.get("ci_high"), r.get("n"), analysis="subgroups")
            text = fmt_ci(e, "pp") if ok else MISSING_LABEL
            srows.append([covariate_label(name), level_label(r["level"]), ctx.c(keys.get("n")),
                          ctx.c(keys.get("n_early")), ctx.c(keys.get("n_delayed")), text,
                          f"{p:.3f}" if p is not None else MISSING_LABEL])
            frows.append({"label": level_label(r["level"]), "estimate": e.estimate if ok else np.nan,
                          "ci_low": e.ci_low if ok else np.nan, "ci_high": e.ci_high if ok else np.nan,
                          "text": text})
    tables = {"subgroups": DisplayTable(
        columns=[("subgroup", "Subgroup"), ("level", "Level"), ("n", "Persons"), ("n_early", "n early"),
                 ("n_delayed", "n delayed"), ("risk_difference", "Risk difference, points (95% CI)"),
                 ("p_interaction", "Interaction p")],
        rows=srows, caption="Subgroups: risk difference of return to work (clone-censor-weight).",
        notes=[f"Estimates where either group has fewer than {ctx.t} persons are not shown."],
        count_columns={"n", "n_early", "n_delayed"},
        sources={c: ("subgroups", c) for c in ("n", "n_early", "n_delayed")},
    )}
    testable = {n: p for n, p in p_values.items() if p is not None and n in complete}
    smallest = min(((p, n) for n, p in testable.items()), default=None)
    if smallest is not None and smallest[0] < 0.05:
        title = f"The effect may differ by {covariate_label(smallest[1]).lower()} (interaction p = {smallest[0]:.3f})"
    elif testable:
        title = "No interaction test below p = 0.05 among the subgroups shown"
    else:
        title = "Subgroup estimates"
    frame = pd.DataFrame(frows)
    if frame.get("estimate") is None or frame["estimate"].dropna().empty:
        return Section({"subgroups": True,
                        "subgroups_note": f"Too few persons in each subgroup's early or delayed group (fewer than "
                                          f"{ctx.t}) to estimate the effect by subgroup; no figure is drawn."}, tables)
    figures = {"forest_subgroups": FigureSpec(
        make=lambda f=frame, t=title: plots.forest(f, null=0.0, percent=True, title=t,
                                                  xlabel="Risk difference, percentage points (early minus delayed)"),
        caption="Figure 8. Subgroup estimates of the primary contrast with interaction tests.",
    )}
    return Section({"subgroups": True}, tables, figures)
