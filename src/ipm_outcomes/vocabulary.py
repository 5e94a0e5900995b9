"""The study's vocabulary, declared once: outcomes and instruments, methods, arms and measures.

Every module that names one of these (the input contract's score ranges, the analysis, the
estimators' direction of improvement, the report's labels, the figures' legends) reads it from here, so
adding an outcome or a method is one entry in this file plus, for an analysed outcome, its analysis in
the spec-built plan (:mod:`ipm_outcomes.plan`).

What is a study *choice* is not here but in the spec: the minimal clinically important difference of
each instrument (``[analysis.mcid]``), which instruments are loaded (``[outcomes.qol] instruments``),
horizons, grace period. What is here is a *fact* about the instrument or the method (its units, its
valid range, which direction is better, how it is labelled).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Instrument:
    """A patient-reported instrument (a quality-of-life outcome when ``analysed``).

    Attributes
    ----------
    name : the instrument's code in the extract (``ehr_pro.instrument``) and in the results.
    label : full label with its scale, for figure axes and table headings.
    short : short name for tables and plain-language text.
    units : what one point is ("T-score points", "points", "utility").
    range : valid scores, inclusive (ingest refuses others).
    higher_is_better : direction of improvement (responders, verdicts, severity).
    analysed : an outcome of the analysis (False: loaded and counted, not estimated).
    """

    name: str
    label: str
    short: str
    units: str
    range: tuple[float, float]
    higher_is_better: bool
    analysed: bool = True


INSTRUMENTS: dict[str, Instrument] = {
    i.name: i
    for i in (
        Instrument("promis_pf", "PROMIS physical function (T-score)", "PROMIS physical function", "T-score points",
                   (10.0, 90.0), True),
        Instrument("promis_pi", "PROMIS pain interference (T-score)", "PROMIS pain interference", "T-score points",
                   (10.0, 90.0), False),
        Instrument("odi", "Oswestry Disability Index (0-100)", "Oswestry Disability Index", "points", (0.0, 100.0),
                   False),
        # EQ-5D index values across published value sets
        Instrument("eq5d_index", "EQ-5D index (utility)", "EQ-5D index", "utility", (-0.6, 1.0), True),
        Instrument("nrs_pain", "Pain intensity, NRS (0-10)", "pain intensity (NRS)", "points", (0.0, 10.0), False),
        Instrument("phq9", "PHQ-9 depression (0-27)", "PHQ-9", "points", (0.0, 27.0), False, analysed=False),
    )
}

#: Quality-of-life outcomes the analysis estimates, in report order.
QOL_OUTCOMES: tuple[str, ...] = tuple(name for name, i in INSTRUMENTS.items() if i.analysed)


@dataclass(frozen=True)
class Outcome:
    """An outcome of the analysis: return to work (time to event) or an instrument's score."""

    name: str
    label: str
    short: str
    higher_is_better: bool
    kind: str  # "time_to_event", "score" or "cost"


#: The secondary time-to-event outcomes ("other harms of delay"), measured from claims in the whole
#: cohort; the event is a harm, so a lower cumulative incidence is better. Their definitions are the
#: spec's ``[outcomes.<name>]`` sections; the negative-control outcomes are the groups of a value set.
SECONDARY_OUTCOMES: dict[str, Outcome] = {
    o.name: o
    for o in (
        Outcome("new_depression_anxiety", "New depression or anxiety diagnosis", "new depression or anxiety", False,
                "time_to_event"),
        Outcome("new_sleep_disorder", "New sleep-disorder diagnosis", "new sleep disorder", False, "time_to_event"),
        Outcome("long_term_opioid", "Long-term opioid therapy", "long-term opioid therapy", False, "time_to_event"),
        Outcome("lumbar_surgery", "Lumbar spine surgery", "lumbar surgery", False, "time_to_event"),
        Outcome("ed_visit_lbp", "Emergency visit for low back pain", "ED visit for back pain", False, "time_to_event"),
    )
}

#: The cost outcomes: allowed amounts over days 0..cohort.followup_days (the spec's ``[outcomes.<name>]``);
#: a harm of delay, so a lower mean is better. Kept apart from :data:`OUTCOMES` (time-to-event and score
#: outcomes, whose figures and tables a cost does not belong in).
COST_OUTCOMES: dict[str, Outcome] = {
    o.name: o
    for o in (
        Outcome("cost_total_365", "Total allowed cost, days 0-365", "total cost", False, "cost"),
        Outcome("cost_lbp_365", "Back-pain related allowed cost, days 0-365", "back-pain cost", False, "cost"),
    )
}
#: The units of every cost estimate: the input contract's allowed amounts (``medical_claim.allowed_amount``,
#: ``pharmacy_claim.allowed_amount``: "Allowed amount, USD"), per person, not discounted or inflated.
COST_UNITS = "USD (allowed amounts, per person)"

#: Every outcome, in report order: return to work, the instruments (analysed or not), the secondary outcomes.
OUTCOMES: dict[str, Outcome] = {
    "rtw": Outcome("rtw", "Return to work", "return to work", True, "time_to_event"),
    **{n: Outcome(n, i.label, i.short, i.higher_is_better, "score") for n, i in INSTRUMENTS.items()},
    **SECONDARY_OUTCOMES,
}

#: Estimation methods, in forest-plot order, with their display labels.
METHODS: dict[str, str] = {
    "ccw": "Clone-censor-weight (primary)",
    "landmark_iptw": "Landmark + IPTW",
    "tv_cox": "Time-varying Cox",
    "naive": "Naive (biased: immortal time)",
    "ancova_iptw": "IPTW-weighted ANCOVA",
    "empirical_calibration": "Empirical calibration with negative controls",
    "ccw_cost": "Clone-censor-weight, inverse probability of censoring weighted mean cost",
}

#: The two arms of the primary comparison, with their display labels.
ARMS: dict[str, str] = {"early": "Early IPM", "delayed": "Delayed or no IPM"}
EARLY, DELAYED = "early", "delayed"


@dataclass(frozen=True)
class Measure:
    """A measure an estimate can be of: ``contrast`` ones compare two arms (``arm`` is null)."""

    name: str
    label: str
    contrast: bool
    null: float | None = None  # the value of no difference, for contrasts


MEASURES: dict[str, Measure] = {
    m.name: m
    for m in (
        Measure("cumulative_incidence", "Cumulative incidence", False),
        Measure("risk_difference", "Risk difference", True, 0.0),
        Measure("risk_ratio", "Risk ratio", True, 1.0),
        Measure("log_risk_ratio", "Log risk ratio", True, 0.0),
        Measure("hazard_ratio", "Hazard ratio", True, 1.0),
        Measure("restricted_mean_days_off_work", "Restricted mean days off work", False),
        Measure("rmst_difference", "Difference in restricted mean days off work", True, 0.0),
        Measure("adjusted_mean", "Adjusted mean score", False),
        Measure("mean_difference", "Adjusted mean difference", True, 0.0),
        Measure("responder_proportion", "Responders (improved by at least the MCID)", False),
        Measure("responder_risk_difference", "Difference in responders", True, 0.0),
        Measure("mean_cost", "Mean allowed cost per person", False),
        Measure("mean_cost_difference", "Difference in mean allowed cost per person", True, 0.0),
    )
}


@dataclass(frozen=True)
class ReferralDefinition:
    """What counts as the referral (first IPM contact): the cohort column holding its day after index."""

    name: str
    column: str
    label: str


#: Referral definitions: the primary (first IPM contact of any kind) and the sensitivity ones.
REFERRAL_DEFINITIONS: dict[str, ReferralDefinition] = {
    "procedure_only": ReferralDefinition(
        "procedure_only", "days_to_referral_procedure_only", "Referral = first IPM procedure only"
    ),
}
