"""Section 11, limitations and glossary: what the reader should discount, and the terms explained."""

from __future__ import annotations

from ...vocabulary import ARMS
from ..answers import e_value_text
from ..context import ReportContext
from ..counts import DELAYED, EARLY
from ..display import Section, short_name
from .diagnostics import EFFECTIVE_SAMPLE_SHARE
from .harms import calibration_assumption


def build(ctx: ReportContext) -> Section:
    """What the reader should discount: missing follow-up, instruments not analysed, unmeasured
    confounding, how work status was measured. Counts pass the same gate as every table."""
    d, s = ctx.data, ctx.data.spec_get
    out = []
    if not d.empty:
        h = d.primary_horizon
        missing = []
        for inst in ("promis_pf", "odi"):
            parts = []
            for arm in ("early", "delayed"):
                mk = ctx.counts.qol.get((inst, h, arm, "missing"))
                if mk is not None:
                    parts.append(f"{ctx.c(mk)} of {ctx.c(EARLY if arm == 'early' else DELAYED)} {arm}")
            if parts:
                missing.append(f"{short_name(inst)}: {', '.join(parts)}")
        if missing:
            out.append(("Missing quality-of-life follow-up",
                        f"Not every patient had a score near day {h} ({'; '.join(missing)} patients had none). "
                        "The estimates weight the patients with a score by the inverse of their chance of having "
                        "one (given referral timing and the baseline characteristics), which removes bias only if "
                        "those characteristics explain who answered."))
    not_analysed = [why for key, why in d.unavailable.items() if key.startswith("qol/")]
    if not_analysed:
        out.append(("Instruments not analysed", " ".join(not_analysed) + "."))
    ev = e_value_text(ctx)
    out.append(("Unmeasured confounding",
                "Patients were not randomised: the comparison adjusts only for what the claims and records "
                "measure (age, sex, payer, comorbidities, prior care, baseline severity). "
                + (ev if ev else "The E-value could not be computed for these results.")))
    concentrated = concentrated_strategies(ctx)
    if concentrated:
        out.append(("Patients who stand in for many others",
                    f"In the {' and the '.join(concentrated)} group{'s' if len(concentrated) > 1 else ''}, a few "
                    "patients carry much of the weight: patients who were very likely to take the other path but "
                    "did not, each standing in for many similar patients who did (the study diagnostics' "
                    "effective sample share failed). The estimate for that group depends on those few patients, "
                    "and its interval, computed from the same patients, can be too narrow."))
    assumption = calibration_assumption(ctx) if not d.empty else None
    if assumption:
        out.append(("Negative controls and the primary", assumption))
    statuses = ", ".join(s("outcomes", "rtw", "population_statuses", default=["off_work"]))
    events = ", ".join(s("outcomes", "rtw", "event_statuses", default=["working"]))
    out.append(("How work status was measured",
                f"Work status comes from EHR work-status records, not from employers: a patient counts as off work "
                f"at the start with a record of {statuses} around the first visit, and as back at work at the first "
                f"later record of {events}. A return between visits is dated at the next record, so days off work "
                "are over-counted by the gap between records, equally in both groups."))
    return Section(out)


def concentrated_strategies(ctx: ReportContext) -> list[str]:
    """The primary's strategies (as the reader names them) whose effective-sample-share diagnostic failed."""
    out = []
    for arm in ("early", "delayed"):
        name = f"{ctx.roles.primary}:{arm}{EFFECTIVE_SAMPLE_SHARE}"
        if any(c.name == name and c.passed is False for c in ctx.data.checks):
            out.append(ARMS[arm][0].lower() + ARMS[arm][1:])
    return out


def glossary(ctx: ReportContext) -> Section:
    """The glossary under the limitations (the same for every study)."""
    return Section(GLOSSARY)


#: Short definitions for administrators (section "Glossary").
GLOSSARY: list[tuple[str, str]] = [
    ("Grace period", "The window after the first back-pain visit (here six weeks) within which a first IPM visit "
     "counts as early referral."),
    ("Clone-censor-weight", "The primary method: every patient starts in both strategies (early and delayed) at the "
     "first visit, is dropped from a strategy when their care stops matching it, and the remaining patients are "
     "weighted to stand in for those dropped. It avoids crediting the delayed group with the time patients had to "
     "wait to be referred."),
    ("Risk difference", "The share of patients back at work with early referral minus the share with delayed referral, "
     "in percentage points."),
    ("Days off work", "The average number of days not back at work within the first year (restricted mean time)."),
    ("E-value", "How strongly an unmeasured factor would have to be linked to both early referral and return to work "
     "to explain the result away; larger means more robust."),
    ("95% confidence interval", "The range of effects compatible with the data; an interval that includes zero means "
     "the data cannot rule out no effect."),
]
