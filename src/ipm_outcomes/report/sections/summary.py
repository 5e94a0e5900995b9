"""Section 1, the executive summary (the first screen): the question, who was studied, the answer in words,
the key numbers, the days off work, how far to trust the answer, and which outcomes were available (and why
not)."""

from __future__ import annotations

from ...disclosure import MISSING_LABEL
from ..answers import primary_answer
from ..context import ReportContext
from ..counts import COHORT, DELAYED, EARLY, RTW_POPULATION
from ..display import Section, finite, fixed, fmt_ci
from ..words import Finding, days_in_words, diagnostics_sentence, naive_sentence, qol_finding
from .diagnostics import diagnostic_value
from .harms import availability


def build(ctx: ReportContext) -> Section:
    d = ctx.data
    h = d.primary_horizon
    question = (
        f"Does a first visit with an Interventional Pain Medicine (IPM) specialist within "
        f"{days_in_words(d.grace_period_days)} of a new episode of low back pain, rather than later or not at all, "
        "help people return to work sooner and feel better?"
    )
    diag_text, diag_pass = diagnostics_sentence(d.checks, lambda c: diagnostic_value(ctx, c.name, c.value, "{:.3g}"))
    if d.empty:
        return Section({
            "question": question,
            "population": "No persons met the cohort criteria, so there is nothing to compare: "
            "no estimates were made. Section 2 shows at which step persons were excluded.",
            "finding": Finding("empty", "No persons met the cohort criteria; no estimates could be made.",
                               "No persons met the cohort criteria"),
            "qol": [],
            "diagnostics": "Study diagnostics do not apply to an empty cohort.",
            "diagnostics_pass": None,
            "verdict": "empty",
            "key_numbers": [],
            "naive": None,
            "days_off": None,
            "reliability": "No patients met the study criteria: nothing to judge.",
            "outcomes": [],
        })
    grace = days_in_words(d.grace_period_days)
    age = f"{d.spec_get('cohort', 'age_min', default=18)}-{d.spec_get('cohort', 'age_max', default=64)}"
    population = (
        f"The study followed {ctx.c(COHORT)} adults aged {age} with a new episode of low back pain. "
        f"Of these, {ctx.c(EARLY)} were first seen by IPM within {grace} (early) and {ctx.c(DELAYED)} later or not "
        f"at all (delayed). Return to work was studied among the {ctx.c(RTW_POPULATION)} who were off work at the start."
    )
    answer = primary_answer(ctx)
    finding, rd = answer.finding, answer.difference
    qol = []
    for inst in ("promis_pf", "odi"):
        s = qol_finding(ctx.contrast(ctx.roles.qol.get(inst), inst, "mean_difference", h), instrument=inst,
                        horizon_days=h, mcid=d.mcid.get(inst), policy=ctx.policy)
        if s:
            qol.append(s)
    naive = ctx.contrast(ctx.roles.naive, "rtw", "risk_difference", h)
    naive_text = None
    if naive is not None and rd is not None:
        naive_text = naive_sentence(naive.estimate, rd.estimate, horizon_days=h, grace_days=d.grace_period_days)
    primary = ctx.roles.primary
    key_numbers = []
    for horizon in d.horizons:
        e = ctx.est(primary, "rtw", "cumulative_incidence", horizon, "early")
        l = ctx.est(primary, "rtw", "cumulative_incidence", horizon, "delayed")  # noqa: E741
        r = ctx.contrast(primary, "rtw", "risk_difference", horizon)
        key_numbers.append({
            "label": f"Back at work by day {horizon}",
            "early": fmt_ci(e, "pct") if ctx.enough(e) else MISSING_LABEL,
            "delayed": fmt_ci(l, "pct") if ctx.enough(l) else MISSING_LABEL,
            "difference": fmt_ci(r, "pp") if r is not None else MISSING_LABEL,
        })
    return Section({
        "question": question,
        "population": population,
        "finding": finding,
        "qol": qol,
        "diagnostics": diag_text,
        "diagnostics_pass": diag_pass,
        "verdict": finding.verdict,
        "key_numbers": key_numbers,
        "naive": naive_text,
        "days_off": _days_off_sentence(ctx),
        "reliability": _reliability(ctx, finding, diag_pass),
        "outcomes": availability(ctx),
    })


def _days_off_sentence(ctx: ReportContext) -> str | None:
    """The answer in days off work in the first year (restricted mean time not back at work)."""
    h = ctx.rmst_horizon(ctx.roles.primary)
    rm = ctx.contrast(ctx.roles.primary, "rtw", "rmst_difference", h) if h else None
    if rm is None or not finite(rm.ci_low) or not finite(rm.ci_high):
        return None
    if h in (365, 366):
        period = "in the first year"
    else:
        period = f"in the first {h} days (about {h / 30.44:.0f} months)"
        if ctx.data.horizons and max(ctx.data.horizons) >= 365:
            period += (", the longest time for which enough patients of both groups were still followed "
                       "(the first year cannot be shown)")
    days = abs(rm.estimate)
    fewer = "fewer" if rm.estimate < 0 else "more"
    ci = f"95% CI {fixed(rm.ci_low, 0, '+')} to {fixed(rm.ci_high, 0, '+')} days"
    if round(days) == 0:
        return f"Days off work {period}: about the same with early referral ({ci})."
    return (f"Days off work {period}: about {days:.0f} {fewer} days off work per patient with early referral "
            f"({ci}; the interval {'includes' if rm.ci_low <= 0 <= rm.ci_high else 'excludes'} no difference).")


def _reliability(ctx: ReportContext, finding: Finding, diag_pass: bool | None) -> str:
    """One line a reader can act on: how far to trust the answer (the detailed table is in section 9)."""
    if finding.verdict == "empty":
        return "No patients met the study criteria: nothing to judge."
    if finding.verdict == "unavailable":
        return "Too few patients referred early to judge: the study cannot answer the question with these data."
    if diag_pass is True:
        return "All study checks passed: the groups were comparable after weighting."
    if diag_pass is False:
        failed = sum(1 for c in ctx.data.checks if c.passed is False)
        known = sum(1 for c in ctx.data.checks if c.passed is not None)
        return (f"{failed} of {known} study checks failed: the groups may not be comparable, so read the answer "
                "with caution (details in section 9).")
    return "The study checks are not available in these results."
