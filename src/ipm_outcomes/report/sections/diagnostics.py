"""Section 9, diagnostics: the pass/fail study diagnostics, the weights and balance in numbers, the love
plot, the preference-score overlap and the weight distribution."""

from __future__ import annotations

import math

import pandas as pd

from ... import plots
from ...disclosure import MISSING_LABEL
from ...vocabulary import ARMS
from ..context import ReportContext
from ..counts import COHORT
from ..display import DisplayTable, FigureSpec, Section, covariate_label


def build(ctx: ReportContext) -> Section:
    d = ctx.data
    out = {"checks": False}
    tables, figures = {}, {}
    if d.checks:
        tables["diagnostics"] = DisplayTable(
            columns=[("check", "Diagnostic"), ("value", "Value"), ("threshold", "Threshold"), ("result", "Result")],
            rows=[[c.label, diagnostic_value(ctx, c.name, c.value, "{:.3g}"), c.threshold,
                   "pass" if c.passed else ("fail" if c.passed is not None else MISSING_LABEL)] for c in d.checks],
            caption="Study diagnostics (OHDSI CohortMethod thresholds).",
        )
        out["checks"] = True
    extra = []
    for arm in ("early", "delayed"):
        if ctx.has(("diag", "ess", arm)):
            extra.append([f"Effective sample size after weighting, {ARMS[arm]} group", ctx.c(("diag", "ess", arm))])
    if ctx.has(("diag", "n_truncated")):
        pct = (d.diagnostics.get("weight_truncation") or {}).get("percentiles")
        extra.append([f"Persons whose weight was truncated{f' (at percentiles {pct[0]:g} and {pct[1]:g})' if pct else ''}",
                      ctx.c(("diag", "n_truncated"))])
    for key, label in (("max_abs_smd_before", "Largest |SMD| before weighting"), ("max_abs_smd_after", "Largest |SMD| after weighting"),
                       ("equipoise_fraction", "Share of persons with preference score 0.3-0.7")):
        if d.diagnostics.get(key) is not None:
            extra.append([label, diagnostic_value(ctx, key, float(d.diagnostics[key]), "{:.3f}")])
    if extra:
        tables["diagnostics_detail"] = DisplayTable(
            columns=[("quantity", "Quantity"), ("value", "Value")], rows=extra,
            caption="Weights and balance in numbers.",
        )
        out["detail"] = True
    if d.empty:
        return Section(out, tables)
    smd = d.table("smd")
    threshold = float(d.spec_get("analysis", "diagnostics", "max_abs_smd", default=0.1))
    allowed = ctx.smds_shown
    if smd is not None and not smd.empty and allowed:
        smd = smd[smd["covariate"].astype(str).isin(allowed)]
        frame = smd.assign(label=[covariate_label(c) for c in smd["covariate"]])
        worst = float(frame["smd_after"].abs().max())
        n_bad = int((frame["smd_after"].abs() >= threshold).sum())
        title = (f"After weighting every covariate is balanced (largest |SMD| {worst:.2f} < {threshold:g})" if n_bad == 0
                 else f"After weighting {n_bad} covariate(s) remain imbalanced (|SMD| >= {threshold:g})")
        figures["love_plot"] = FigureSpec(
            make=lambda f=frame, t=title: plots.love_plot(f, threshold=threshold, title=t),
            caption="Figure 11. Love plot: absolute standardized mean differences before and after weighting.",
        )
    if ctx.counts.overlap_bins:
        bins = _shown_bins(ctx, ctx.counts.overlap_bins)
        bounds = d.spec_get("analysis", "diagnostics", "equipoise_bounds", default=[0.3, 0.7])
        eq = d.diagnostics.get("equipoise_fraction")
        title = "Preference-score distributions by group"
        if eq is not None and not diagnostic_value(ctx, "equipoise_fraction", float(eq), "{}").startswith("withheld"):
            title = (f"{100 * float(eq):.0f}% of persons are in equipoise (preference score "
                     f"{bounds[0]:g}-{bounds[1]:g})")
        figures["overlap"] = FigureSpec(
            make=lambda b=bins, t=title: plots.binned_distribution(
                b, xlabel="Preference score (propensity of early IPM, adjusted for prevalence)",
                ylabel="Share of group per unit of score", shade=tuple(bounds), shade_label="equipoise band", title=t),
            caption=f"Figure 12. Overlap of preference scores. Bins merged where fewer than {ctx.t} persons.",
        )
    if ctx.counts.weight_bins:
        bins = _shown_bins(ctx, ctx.counts.weight_bins)
        title = "Distribution of analysis weights by group"
        summ = ctx.counts.weight_summary
        if summ is not None and "max" in summ:
            title = f"Weights stay moderate: the largest weight is {float(summ['max'].max()):.1f}"
        method = ctx.counts.weight_method or "IPTW"
        figures["weights"] = FigureSpec(
            make=lambda b=bins, t=title: plots.binned_distribution(
                b, xlabel=f"Weight ({method}, log scale)", ylabel="Share of group per unit of weight",
                log_x=True, title=t),
            caption=f"Figure 13. Weight distribution by group. Bins merged where fewer than {ctx.t} persons.",
        )
    return Section(out, tables, figures)


def _shown_bins(ctx: ReportContext, bins) -> dict[str, pd.DataFrame]:
    """A histogram's bins by arm with their persons as shown (withheld: NaN, not drawn)."""
    return {arm: pd.DataFrame([(lo, hi, ctx.v(k)) for lo, hi, k in rows], columns=["left", "right", "n"]).astype(float)
            for arm, rows in bins.items()}


#: The end of a strategy's effective-sample-share check name (``<analysis>:<arm>_strategy_effective_sample_share``).
EFFECTIVE_SAMPLE_SHARE = "_strategy_effective_sample_share"


def diagnostic_value(ctx: ReportContext, name: str, value: float | None, fmt: str) -> str:
    """A cohort-level diagnostic through the disclosure gate.

    The largest |SMD| of the cohort is the SMD of one Table 1 row: shown only when that row's SMD is
    shown (else it would give back the SMD Table 1 withholds). A share of the cohort (equipoise) is
    shown only when the cohort size is shown and the share implies no small count of persons. The cohort's
    checks are those of the plan's cohort description (named ``<its id>:<diagnostic>``). A strategy's effective
    sample share is its effective sample size over its weighted clones: shown only when that effective sample size
    is shown (with it, the share gives back the number of weighted clones, which is then at least as large).
    """
    if value is None or not math.isfinite(value):
        return MISSING_LABEL
    analysis, _, diagnostic = name.partition(":")
    if diagnostic.endswith(EFFECTIVE_SAMPLE_SHARE):
        # only the primary's effective sample sizes are in the disclosure ledger
        arm = diagnostic.removesuffix(EFFECTIVE_SAMPLE_SHARE)
        if analysis != ctx.roles.primary or ctx.v(("diag", "ess", arm)) is None:
            return f"withheld (would reveal fewer than {ctx.t} persons)"
        return fmt.format(value)
    cohort = ctx.roles.description
    cohort_smd = name in ("max_abs_smd_before", "max_abs_smd_after") or name == f"{cohort}:covariate_balance"
    if cohort_smd:
        which = 0 if name == "max_abs_smd_before" else 1
        shown = {round(abs(v[which]), 3) for v in ctx.smds_shown.values()}
        if round(abs(value), 3) not in shown:
            return f"withheld (a characteristic with fewer than {ctx.t} persons in a group)"
    if name in ("equipoise_fraction", f"{cohort}:equipoise"):
        n = ctx.v(COHORT)
        if n is None or ctx.policy.implied_count_small(value, n):
            return f"withheld (would reveal fewer than {ctx.t} persons)"
    return fmt.format(value)
