"""Section 8, other harms of delay: the secondary outcomes from claims (cumulative incidence per strategy at each
horizon, risk difference and ratio, the naive contrast beside), the costs per strategy, the calibrated and
uncalibrated risk ratios, the expected absolute systematic error and the calibration plot, and what was not
available and why.

Disclosure. Every count shown (an arm's persons, its persons with the event by a day, a cost analysis's
persons) is the first pass's (:func:`~ipm_outcomes.report.counts.count_everything`), which also registers what
they give away together (persons without the event, events between two days). A cumulative incidence is shown
only when its arm's persons are a shown count of at least min_cell_size, its events by that day a shown count
(zero, or min_cell_size and more) and at least min_cell_size clones are still at risk on that day; a contrast only
when both its arms are shown. A negative control enters the calibration plot only when both arms had at least
min_cell_size persons with the event (its estimate and standard error would otherwise rest on a small count); the
section says how many were withheld.
"""

from __future__ import annotations

import pandas as pd

from ... import plots
from ...calibration import EASE_THRESHOLD
from ...disclosure import MISSING_LABEL
from ...plan import AnalysisItem
from ...report_data import Estimate, estimate_from_row
from ...vocabulary import ARMS, COST_OUTCOMES, COST_UNITS
from ..context import ReportContext
from ..display import DisplayTable, FigureSpec, Section, finite, fmt_ci, fmt_money

#: The unavailable entries of the analysis that concern this section, by the key prefixes it writes them under.
_KINDS = ("secondary/", "cost/")


def secondary_items(ctx: ReportContext) -> list[AnalysisItem]:
    """The plan's clone-censor-weight analyses of the secondary outcomes, in plan order."""
    return [i for i in ctx.data.plan if i.role == "secondary_outcome" and i.method == "ccw"]


def cost_items(ctx: ReportContext) -> list[AnalysisItem]:
    """The plan's clone-censor-weight analyses of the costs, in plan order."""
    return [i for i in ctx.data.plan if i.role == "cost" and i.method == "ccw_cost"]


def naive_of(ctx: ReportContext, item: AnalysisItem) -> AnalysisItem | None:
    """The naive comparison of the same outcome in the same population (None when not planned)."""
    population = (item.settings or {}).get("population")
    return next((i for i in ctx.data.plan if i.role == item.role and i.method == "naive" and i.outcome == item.outcome
                 and (i.settings or {}).get("population") == population), None)


def unavailable_reason(ctx: ReportContext, item: AnalysisItem) -> str | None:
    """Why an outcome's analysis has no estimates (the analysis's own reason), None when it has some."""
    table = ctx.data.table("cost_estimates" if item.role == "cost" else "secondary_estimates")
    if table is not None and (table["analysis"] == item.id).any():
        return None
    u = ctx.data.unavailable
    kind = "cost" if item.role == "cost" else "secondary"
    group = "costs" if item.role == "cost" else "secondary_outcomes"
    for key in (f"{kind}/{item.id}", f"{kind}/{item.outcome}", item.id, group):
        if key in u:
            return u[key]
    return "not estimated in these results"


def calibration_entry(ctx: ReportContext) -> dict | None:
    """The analysis's ``empirical_calibration`` diagnostics entry (None when calibration was not planned)."""
    entry = ctx.data.diagnostics.get("empirical_calibration")
    return entry if isinstance(entry, dict) else None


# -- the gate -----------------------------------------------------------------------------------------


def _row(ctx: ReportContext, analysis: str, measure: str, h: int, arm: str | None) -> dict | None:
    se = ctx.data.table("secondary_estimates")
    if se is None:
        return None
    mask = (se["analysis"] == analysis) & (se["measure"] == measure) & (se["horizon_days"] == h)
    mask &= se["arm"].isna() if arm is None else (se["arm"] == arm)
    rows = se[mask]
    return None if rows.empty else rows.iloc[0].to_dict()


def arm_shown(ctx: ReportContext, analysis: str, arm: str, h: int) -> Estimate | None:
    """The arm's cumulative incidence by day ``h`` when the disclosure gate lets it through, else None."""
    row = _row(ctx, analysis, "cumulative_incidence", h, arm)
    nk = ctx.counts.secondary.get((analysis, arm))
    ek = ctx.counts.secondary.get((analysis, arm, h))
    if row is None or nk is None or ek is None or not finite(row["estimate"]):
        return None
    at_risk = row.get("n_at_risk")
    if not ctx.supports(nk) or ctx.v(ek) is None or at_risk is None or pd.isna(at_risk) or ctx.policy.too_few(at_risk):
        return None
    return estimate_from_row(row)


def contrast_shown(ctx: ReportContext, analysis: str, measure: str, h: int) -> Estimate | None:
    """A contrast (risk difference or ratio) when both its arms are shown at ``h``, else None."""
    if arm_shown(ctx, analysis, "early", h) is None or arm_shown(ctx, analysis, "delayed", h) is None:
        return None
    row = _row(ctx, analysis, measure, h, None)
    return None if row is None or not finite(row["estimate"]) else estimate_from_row(row)


def _cost(ctx: ReportContext, analysis: str, arm: str | None) -> Estimate | None:
    """A cost analysis's mean (arm) or difference (arm None) when its persons may be described, else None."""
    cost = ctx.data.table("cost_estimates")
    if cost is None:
        return None
    part = cost[(cost["analysis"] == analysis) & (cost["arm"].isna() if arm is None else cost["arm"] == arm)]
    if part.empty or not finite(part["estimate"].iloc[0]):
        return None
    arms = ("early", "delayed") if arm is None else (arm,)
    keys = [ctx.counts.costs.get((analysis, a)) for a in arms]
    if any(k is None or not ctx.supports(k) for k in keys):
        return None
    return estimate_from_row(part.iloc[0].to_dict())


# -- the section --------------------------------------------------------------------------------------


def build(ctx: ReportContext) -> Section:
    d = ctx.data
    out = {"available": False, "planned": False, "unavailable": [], "incidence": False, "costs": False,
           "calibration": None, "calibrated": False, "controls": None, "assumption": None}
    items, costs = secondary_items(ctx), cost_items(ctx)
    if d.empty or not (items or costs or calibration_entry(ctx)):
        return Section(out)
    out["planned"] = True
    for item in items + costs:
        why = unavailable_reason(ctx, item)
        if why is not None:
            out["unavailable"].append(f"{item.label}: not available: {why}.")
    tables, figures = {}, {}
    incidence = _incidence_table(ctx, [i for i in items if unavailable_reason(ctx, i) is None])
    if incidence is not None:
        table, points, labels = incidence
        tables["harms_incidence"] = table
        out["incidence"] = True
        if labels:
            figures["harms_incidence"] = FigureSpec(
                make=lambda p=points, lab=labels: plots.secondary_incidence(
                    p, labels=lab, horizons=d.horizons,
                    title="Other harms of delay: cumulative incidence by strategy (clone-censor-weight)"),
                caption=f"Figure 9. Cumulative incidence (95% CI) of each secondary outcome by strategy at days "
                        f"{', '.join(map(str, d.horizons))} (clone-censor-weight). A point is left out when it rests on "
                        f"fewer than {ctx.t} persons or events.",
            )
    cost_table = _cost_table(ctx, [i for i in costs if unavailable_reason(ctx, i) is None])
    if cost_table is not None:
        tables["harms_costs"] = cost_table
        out["costs"] = True
    calibrated, cal_figure, words = _calibration(ctx)
    if calibrated is not None:
        tables["calibrated_estimates"] = calibrated
    if cal_figure is not None:
        figures["calibration"] = cal_figure
    out.update(words)
    out["available"] = bool(tables)
    return Section(out, tables, figures)


def _incidence_table(ctx: ReportContext, items: list[AnalysisItem]):
    """The table of cumulative incidences and contrasts, the figure's points (from ``secondary_curves``) and
    its panel labels; None when no secondary outcome has estimates."""
    if not items:
        return None
    d = ctx.data
    curves = d.table("secondary_curves")
    rows, points, labels = [], [], {}
    for item in items:
        naive = naive_of(ctx, item)
        for h in d.horizons:
            e, l = arm_shown(ctx, item.id, "early", h), arm_shown(ctx, item.id, "delayed", h)  # noqa: E741
            rd = contrast_shown(ctx, item.id, "risk_difference", h)
            rr = contrast_shown(ctx, item.id, "risk_ratio", h)
            nrd = contrast_shown(ctx, naive.id, "risk_difference", h) if naive else None
            cells = {arm: ctx.c(ctx.counts.secondary.get((item.id, arm))) for arm in ARMS}
            events = {arm: ctx.c(ctx.counts.secondary.get((item.id, arm, h))) for arm in ARMS}
            rows.append([item.label, str(h), fmt_ci(e, "pct") if e else MISSING_LABEL,
                         fmt_ci(l, "pct") if l else MISSING_LABEL, fmt_ci(rd, "pp"), fmt_ci(rr, "ratio"),
                         fmt_ci(nrd, "pp"), cells["early"], cells["delayed"], events["early"], events["delayed"]])
            if curves is None:
                continue
            for arm, shown in (("early", e), ("delayed", l)):
                if shown is None:
                    continue
                c = curves[(curves["analysis"] == item.id) & (curves["arm"] == arm) & (curves["day"] == h)]
                if c.empty:
                    continue
                r = c.iloc[0]
                points.append({"analysis": item.id, "horizon_days": h, "arm": arm, "estimate": float(r["estimate"]),
                               "ci_low": float(r["ci_low"]), "ci_high": float(r["ci_high"])})
                labels[item.id] = item.label
    frame = pd.DataFrame(points, columns=["analysis", "horizon_days", "arm", "estimate", "ci_low", "ci_high"])
    table = DisplayTable(
        columns=[("outcome", "Outcome"), ("horizon_days", "Day"), ("early", "Early IPM, % (95% CI)"),
                 ("delayed", "Delayed, % (95% CI)"), ("risk_difference", "Difference, points (95% CI)"),
                 ("risk_ratio", "Ratio (95% CI)"), ("naive_risk_difference", "Naive difference, points (95% CI)"),
                 ("n_early", "n early"), ("n_delayed", "n delayed"), ("events_early", "Events early"),
                 ("events_delayed", "Events delayed")],
        rows=rows,
        caption="Other harms of delay: cumulative incidence of each secondary outcome by strategy (clone-censor-weight, "
                "death a competing event), risk differences (early minus delayed, percentage points) and risk ratios; "
                "beside them the naive comparison by eventual referral time. Lower is better for every outcome.",
        notes=["n early and n delayed are the persons of the outcome's population who followed each strategy (not "
               "clones); events are those persons with the outcome by the day, counted in the strategy's curve.",
               f"An estimate is shown only when its group has at least {ctx.t} persons, its events are zero or at "
               f"least {ctx.t} (and not withheld to protect another count), and at least {ctx.t} persons are still "
               f"followed on that day; a difference or ratio only when both groups are shown ({MISSING_LABEL}).",
               "The naive comparison is biased by immortal time and by who gets referred; it is shown only for contrast."],
        count_columns={"n_early", "n_delayed", "events_early", "events_delayed"},
        sources={"n_early": ("secondary_estimates", "n"), "n_delayed": ("secondary_estimates", "n"),
                 "events_early": ("secondary_estimates", "n_events"),
                 "events_delayed": ("secondary_estimates", "n_events")},
        numeric_columns={"early", "delayed", "risk_difference", "risk_ratio", "naive_risk_difference"},
    )
    return table, frame, labels


def _cost_table(ctx: ReportContext, items: list[AnalysisItem]) -> DisplayTable | None:
    if not items:
        return None
    rows = []
    units = COST_UNITS
    for item in items:
        naive = naive_of(ctx, item)
        for analysis, method in ((item, "Clone-censor-weight (primary)"), (naive, "Naive (biased: immortal time)")):
            if analysis is None:
                continue
            cost = ctx.data.table("cost_estimates")
            part = cost[cost["analysis"] == analysis.id]
            if part.empty:
                continue
            units = str(part["units"].iloc[0])
            rows.append([COST_OUTCOMES[item.outcome].label if item.outcome in COST_OUTCOMES else item.label, method,
                         fmt_money(_cost(ctx, analysis.id, "early")), fmt_money(_cost(ctx, analysis.id, "delayed")),
                         fmt_money(_cost(ctx, analysis.id, None), "+"), units,
                         ctx.c(ctx.counts.costs.get((analysis.id, "early"))),
                         ctx.c(ctx.counts.costs.get((analysis.id, "delayed")))])
    if not rows:
        return None
    return DisplayTable(
        columns=[("outcome", "Cost"), ("method", "Method"), ("early", "Early IPM, mean (95% CI)"),
                 ("delayed", "Delayed, mean (95% CI)"), ("difference", "Difference, early minus delayed (95% CI)"),
                 ("units", "Units"), ("n_early", "n early"), ("n_delayed", "n delayed")],
        rows=rows,
        caption=f"Costs in the first year by strategy, in {units}: the mean allowed amount per person and the "
                "difference (early minus delayed; negative = lower cost with early IPM). Clone-censor-weight with "
                "inverse probability of censoring weighted costs (persons followed for less than a year are not "
                "dropped), and the naive comparison beside it.",
        notes=[f"Means of fewer than {ctx.t} persons are not shown ({MISSING_LABEL}). Allowed amounts as in the "
               "extract, not discounted or adjusted for inflation."],
        count_columns={"n_early", "n_delayed"},
        sources={"n_early": ("cost_estimates", "n"), "n_delayed": ("cost_estimates", "n")},
        numeric_columns={"early", "delayed", "difference"},
    )


def _p(x) -> str:
    if not finite(x):
        return MISSING_LABEL
    return "<0.001" if float(x) < 0.001 else f"{float(x):.3f}"


def _ratio(est, lo, hi) -> str:
    e = Estimate(analysis="", outcome="", method="", measure="risk_ratio", arm=None, horizon_days=None,
                 estimate=None if not finite(est) else float(est), ci_low=None if not finite(lo) else float(lo),
                 ci_high=None if not finite(hi) else float(hi), n=None)
    return fmt_ci(e, "ratio")


def _calibration(ctx: ReportContext):
    """The calibrated-estimates table, the calibration plot and the section's words on calibration."""
    d = ctx.data
    words: dict = {}
    entry = calibration_entry(ctx)
    cal = d.table("calibrated_estimates")
    if entry is None and cal is None:
        return None, None, words
    entry = entry or {}
    calibrated = bool(entry.get("calibrated")) and cal is not None and bool(cal["calibrated"].any())
    words["calibrated"] = calibrated
    if not calibrated:
        reason = entry.get("reason") or d.unavailable.get("empirical_calibration") or "not run"
        words["calibration"] = f"Calibration skipped: {reason}."
    else:
        ease = entry.get("ease")
        threshold = entry.get("ease_threshold", EASE_THRESHOLD)
        if finite(ease):
            passed = float(ease) < float(threshold)
            verdict = ("below OHDSI's threshold of {t:g}: the study passes this diagnostic" if passed else
                       "above OHDSI's threshold of {t:g}: the study fails this diagnostic (the negative controls show "
                       "systematic error that the uncalibrated intervals ignore; prefer the calibrated ones)")
            basis = f" Calibration: {entry['reason']}." if entry.get("reason") else ""
            words["calibration"] = (f"Expected absolute systematic error (EASE) {float(ease):.2f}, "
                                    f"{verdict.format(t=float(threshold))}.{basis}")
    items = {i.id: i for i in d.plan}
    rows, study_points = [], []
    if cal is not None:
        for r in cal.to_dict("records"):
            h = int(r["horizon_days"])
            item = items.get(r["analysis"])
            if item is None:
                continue
            if item.role == "secondary_outcome":
                ok = contrast_shown(ctx, item.id, "risk_ratio", h) is not None
                label = item.label
            else:
                ok = ctx.contrast(item.id, item.outcome, "risk_ratio", h) is not None
                label = "Return to work (primary)" if item.primary else item.label
            if not ok or not finite(r["estimate"]):
                continue
            rows.append([label, str(h), _ratio(r["estimate"], r["ci_low"], r["ci_high"]), _p(r["p"]),
                         _ratio(r["calibrated_estimate"], r["calibrated_ci_low"], r["calibrated_ci_high"])
                         if r["calibrated"] and finite(r["calibrated_estimate"]) else "not calibrated",
                         _p(r["calibrated_p"]) if r["calibrated"] else MISSING_LABEL])
            if finite(r["log_rr"]) and finite(r["se"]):
                study_points.append({"log_rr": float(r["log_rr"]), "se_log_rr": float(r["se"])})
    table = None
    if rows:
        table = DisplayTable(
            columns=[("outcome", "Outcome"), ("horizon_days", "Day"), ("risk_ratio", "Risk ratio (95% CI)"),
                     ("p", "p"), ("calibrated_risk_ratio", "Calibrated risk ratio (95% CI)"),
                     ("calibrated_p", "Calibrated p")],
            rows=rows,
            caption="Risk ratios (early vs delayed) with their uncalibrated intervals and p-values (Wald, from the "
                    "bootstrap standard error) and, beside them, empirically calibrated with the negative controls "
                    "(Schuemie et al. 2014, 2018).",
            notes=["Return to work is above 1 when early referral helps; every secondary outcome is a harm, below 1 "
                   "when early referral helps. Rows whose groups are withheld elsewhere in this section are left out."],
            numeric_columns={"risk_ratio", "p", "calibrated_risk_ratio", "calibrated_p"},
        )
    words["assumption"] = calibration_assumption(ctx)
    figure = None
    controls = d.table("negative_controls")
    if controls is not None and not controls.empty:
        usable = controls[controls["usable"].astype(bool) & controls["log_rr"].notna() & controls["se"].notna()]
        shown = usable[(usable["events_early"] >= ctx.t) & (usable["events_delayed"] >= ctx.t)]
        withheld = len(usable) - len(shown)
        words["controls"] = (
            f"{len(controls)} negative-control outcomes were estimated; {len(usable)} were usable for calibration. "
            + (f"The plot shows {len(shown)} of them; {withheld} {'is' if withheld == 1 else 'are'} withheld from it "
               f"(fewer than {ctx.t} persons with the event in a group: too few to show), though used to fit the null."
               if withheld else f"The plot shows all {len(shown)}."))
        null = entry.get("null") if calibrated else None
        frame = shown.rename(columns={"se": "se_log_rr"})[["log_rr", "se_log_rr"]].astype(float).reset_index(drop=True)
        points = pd.DataFrame(study_points, columns=["log_rr", "se_log_rr"])
        ease = entry.get("ease") if calibrated and finite(entry.get("ease")) else None
        if shown.empty and points.empty:
            return table, None, words
        figure = FigureSpec(
            make=lambda f=frame, p=points, n=null, e=ease: plots.calibration_effect(
                f, null_mean=n["mean"] if n else None, null_sd=n["sd"] if n else None, estimates=p, ease=e,
                xlabel="Risk ratio", title="Negative controls and the fitted empirical null"),
            caption=f"Figure 10. Calibration plot: each negative control's risk ratio (early vs delayed, day "
                    f"{int(controls['horizon_days'].max())}) against its standard error; diamonds: the study's "
                    "contrasts in the table above. Below the dashed line an estimate is significant by the "
                    "traditional p < 0.05; in the orange area, also after calibration. Negative controls with fewer "
                    f"than {ctx.t} persons with the event in a group are not drawn.",
        )
    return table, figure, words


def calibration_assumption(ctx: ReportContext) -> str | None:
    """What calibrating the primary with the negative controls assumes (None when calibration was not planned)."""
    if calibration_entry(ctx) is None and ctx.data.table("calibrated_estimates") is None:
        return None
    return ("The negative-control outcomes were estimated in the whole cohort with the same design as the secondary "
            "outcomes. They calibrate the secondary outcomes directly; they calibrate the return-to-work primary only "
            "under the assumption that its systematic error is the same, since return to work is studied among the "
            "patients off work at the start, with its own referral model.")


def availability(ctx: ReportContext) -> list[dict]:
    """Every outcome of the study, available or not with its reason: return to work, quality of life, each
    secondary outcome, each cost; for the first screen."""
    d = ctx.data
    u = d.unavailable
    out = []
    rtw_ok = ctx.roles.primary is not None and (d.estimates["analysis"] == ctx.roles.primary).any()
    out.append({"name": "Return to work", "available": bool(rtw_ok),
                "why": None if rtw_ok else u.get("rtw") or u.get("rtw/ccw") or "not estimated in these results"})
    qol = [a for a in ctx.roles.qol.values() if (d.estimates["analysis"] == a).any()]
    out.append({"name": "Quality of life", "available": bool(qol),
                "why": None if qol else u.get("qol") or "not estimated in these results"})
    planned = secondary_items(ctx) + cost_items(ctx)
    for item in planned:
        why = unavailable_reason(ctx, item)
        out.append({"name": item.label, "available": why is None, "why": why})
    if not planned:
        out.append({"name": "Other harms of delay", "available": False,
                    "why": u.get("secondary_outcomes") or "not part of these results"})
    for o in out:
        if o["why"]:
            o["why"] = short_reason(o["why"])
    return out


def short_reason(reason: str) -> str:
    """A reason in a few words for the first screen: its first clause (the analysis writes the cause first,
    then, after a colon, what follows from it or the fix)."""
    head = reason.split(": ", 1)[0].strip().rstrip(".")
    return head if len(head) <= 90 else head[:87].rstrip() + "..."

