"""The analysis plan: which analyses the study runs, built from the spec, as data.

Modelled on OHDSI CohortMethod's list of ``CmAnalysis`` objects: each :class:`AnalysisItem` says what
one analysis estimates (method, outcome, population, the treatment strategies it emulates, the
contrast, the horizons, whether it is the primary analysis) and with which settings; :func:`build_plan`
turns the spec into the list, and :func:`ipm_outcomes.analysis.run` runs it with one loop. Steps that
analyses share are computed once: every clone-censor-weight analysis with the same referral definition
is one fit whose strategies are the union of theirs (:func:`fit_groups`).

Adding a sensitivity analysis is a spec entry (``[analysis] sensitivity_grace_periods`` or
``sensitivity_referral_definitions``); adding a new kind of analysis is one more item here and one
runner in :mod:`ipm_outcomes.analysis`. The ids are stable: results are keyed by them
(:mod:`ipm_outcomes.report_data`), so a reader finds "the primary analysis' risk difference at day 180"
as ``("primary", "rtw", "risk_difference", None, 180)``, never by a label.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .spec import COST_OUTCOMES, EVENT_OUTCOMES, StudySpec
from .valuesets import read_valueset
from .vocabulary import COST_OUTCOMES as COST_VOCABULARY
from .vocabulary import DELAYED, EARLY, OUTCOMES, QOL_OUTCOMES, REFERRAL_DEFINITIONS

#: The referral definition of the primary analysis (the cohort's ``referral_day``: first IPM contact).
PRIMARY_REFERRAL = "first_contact"

#: What an analysis is for, in report order.
ROLES = (
    "description", "primary", "sensitivity", "dose_response", "subgroups", "secondary", "bias_illustration",
    "secondary_outcome", "negative_control", "cost", "calibration",
)

#: Roles of the cohort-population outcome analyses that share one multi-outcome clone-censor-weight fit.
OUTCOME_ROLES = ("secondary_outcome", "negative_control")

#: The opioid-naive population of the second long-term opioid analysis (a mart column of
#: ``marts.secondary_outcome``).
OPIOID_NAIVE = "opioid_naive"


@dataclass(frozen=True)
class AnalysisItem:
    """One analysis of the plan.

    Attributes
    ----------
    id : stable identifier; the key of its results.
    method : estimation method (:data:`ipm_outcomes.vocabulary.METHODS`).
    outcome : outcome (:data:`ipm_outcomes.vocabulary.OUTCOMES`); None for the cohort description.
    population : ``"rtw"`` (persons off work at index) or ``"cohort"``.
    role : one of :data:`ROLES`.
    label : what a reader calls it.
    strategies : arm -> referral window ``(first day, last day or None)`` the arm's clones follow.
    contrast : the two arms compared (first minus second), or None.
    horizons : days after index at which it is reported.
    primary : the study's primary analysis.
    settings : everything else that defines it (grace period, referral definition, subgroups, ...).
    """

    id: str
    method: str
    outcome: str | None
    population: str
    role: str
    label: str
    strategies: dict[str, tuple[int, int | None]] = field(default_factory=dict)
    contrast: tuple[str, str] | None = None
    horizons: tuple[int, ...] = ()
    primary: bool = False
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``results.json`` ``plan``)."""
        out = asdict(self)
        out["strategies"] = {k: list(v) for k, v in self.strategies.items()}
        out["contrast"] = list(self.contrast) if self.contrast else None
        out["horizons"] = list(self.horizons)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnalysisItem:
        """The inverse of :meth:`to_dict`."""
        return cls(
            id=str(data["id"]),
            method=str(data["method"]),
            outcome=data.get("outcome"),
            population=str(data["population"]),
            role=str(data["role"]),
            label=str(data["label"]),
            strategies={k: (int(v[0]), None if v[1] is None else int(v[1])) for k, v in (data.get("strategies") or {}).items()},
            contrast=tuple(data["contrast"]) if data.get("contrast") else None,
            horizons=tuple(int(h) for h in data.get("horizons") or ()),
            primary=bool(data.get("primary", False)),
            settings=dict(data.get("settings") or {}),
        )


def grace_strategies(grace: int, suffix: str = "") -> dict[str, tuple[int, int | None]]:
    """The two strategies of a grace period: referral on day 0..grace, and no referral by day grace."""
    return {f"{EARLY}{suffix}": (0, grace), f"{DELAYED}{suffix}": (grace + 1, None)}


def build_plan(spec: StudySpec) -> list[AnalysisItem]:
    """The study's analyses, in the order they run and are reported.

    Parameters
    ----------
    spec : StudySpec

    Returns
    -------
    list of AnalysisItem
        Ids unique. With the shipped spec: the cohort description, the primary clone-censor-weight
        analysis, its grace-period and referral-definition sensitivity analyses, the dose-response over
        delay bands, the subgroups, the landmark, time-varying Cox and naive comparisons of return to
        work, and one weighted ANCOVA per quality-of-life outcome.
    """
    a = spec.analysis
    grace = spec.exposure.grace_period_days
    horizons = tuple(int(h) for h in a.horizons_days)
    max_h = max(horizons)
    primary_strategies = grace_strategies(grace)
    contrast = (EARLY, DELAYED)
    common = {"referral_definition": PRIMARY_REFERRAL, "grace_period_days": grace}
    plan = [
        AnalysisItem(
            "cohort_description", "cohort_iptw", None, "cohort", "description",
            "Cohort description: Table 1 and propensity of early referral (cohort IPTW)",
        ),
        AnalysisItem(
            "primary", "ccw", "rtw", "rtw", "primary", f"Grace period {grace} days (primary)",
            primary_strategies, contrast, horizons, primary=True, settings=dict(common),
        ),
    ]
    for g in a.sensitivity_grace_periods:
        if g == grace:
            continue  # the primary analysis itself
        plan.append(
            AnalysisItem(
                f"grace_{g}", "ccw", "rtw", "rtw", "sensitivity", f"Grace period {g} days",
                grace_strategies(g, f"_{g}"), (f"{EARLY}_{g}", f"{DELAYED}_{g}"), horizons,
                settings={"referral_definition": PRIMARY_REFERRAL, "grace_period_days": g},
            )
        )
    bands = [
        (label, lo, hi) for label, lo, hi in spec.delay_categories() if hi is not None and lo >= 0 and lo <= max_h
    ]
    plan.append(
        AnalysisItem(
            "dose_response", "ccw", "rtw", "rtw", "dose_response", "Return to work by referral-delay band",
            {f"band {label}": (lo, hi) for label, lo, hi in bands}, None, horizons,
            settings={"referral_definition": PRIMARY_REFERRAL, "bands": [[label, lo, hi] for label, lo, hi in bands]},
        )
    )
    plan.append(
        AnalysisItem(
            "subgroups", "ccw", "rtw", "rtw", "subgroups", "Subgroups of the primary analysis",
            primary_strategies, contrast, (a.primary_horizon_days,),
            settings={**common, "subgroups": list(a.subgroups)},
        )
    )
    for name in a.sensitivity_referral_definitions:
        definition = REFERRAL_DEFINITIONS[name]
        plan.append(
            AnalysisItem(
                name, "ccw", "rtw", "rtw", "sensitivity", definition.label, primary_strategies, contrast, horizons,
                settings={"referral_definition": name, "grace_period_days": grace},
            )
        )
    plan += [
        AnalysisItem(
            "landmark_iptw", "landmark_iptw", "rtw", "rtw", "secondary",
            f"Landmark at day {spec.landmark_day} with propensity weights", primary_strategies, contrast, horizons,
            settings={"landmark_day": spec.landmark_day},
        ),
        AnalysisItem(
            "tv_cox", "tv_cox", "rtw", "rtw", "secondary", "Time-varying Cox model", primary_strategies, contrast,
        ),
        AnalysisItem(
            "naive", "naive", "rtw", "rtw", "bias_illustration", "Naive comparison by eventual referral time",
            primary_strategies, contrast, horizons, settings={"grace_period_days": grace},
        ),
    ]
    qol_horizons = tuple(int(h) for h in spec.outcomes.qol.horizons_days)
    for instrument in QOL_OUTCOMES:
        plan.append(
            AnalysisItem(
                f"qol_{instrument}", "ancova_iptw", instrument, "cohort", "secondary",
                f"Weighted ANCOVA of {instrument}", primary_strategies, contrast, qol_horizons,
                settings={"mcid": getattr(spec.analysis.mcid, instrument, None),
                          "horizon_window_days": spec.outcomes.qol.horizon_window_days},
            )
        )
    plan += outcome_items(spec, primary_strategies, contrast, horizons)
    plan += cost_items(spec, primary_strategies, contrast)
    plan.append(calibration_item(plan, spec))
    ids = [item.id for item in plan]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise ValueError(f"the analysis plan has two analyses with the id(s) {', '.join(twice)}")
    return plan


def negative_control_outcomes(spec: StudySpec) -> list[str]:
    """The negative-control outcomes: the groups of the spec's negative-control value set, in file order."""
    name = spec.outcomes.negative_controls.valueset
    vs = read_valueset(name, spec.valueset_paths()[name])
    return list(dict.fromkeys(e.group for e in vs.entries if e.group))


def outcome_items(spec: StudySpec, strategies, contrast, horizons) -> list[AnalysisItem]:
    """The secondary time-to-event outcomes and the negative controls, in the whole cohort.

    Per secondary outcome (and the long-term opioid outcome a second time among the opioid-naive at
    baseline): the clone-censor-weight estimate with the primary's grace-period strategies, and the naive
    comparison by eventual referral time beside it. Per negative-control outcome: the clone-censor-weight
    estimate, whose log risk ratio at the last horizon feeds empirical calibration. All of them share one
    multi-outcome fit (:func:`outcome_group`). ``settings["population"]`` names a restriction beyond the
    outcome's own ``in_population`` (``opioid_naive``).
    """
    grace = spec.exposure.grace_period_days
    common = {"referral_definition": PRIMARY_REFERRAL, "grace_period_days": grace}
    items = []
    units = [(name, name, None) for name in EVENT_OUTCOMES]
    at = [u[0] for u in units].index("long_term_opioid") + 1
    units.insert(at, ("long_term_opioid_in_opioid_naive", "long_term_opioid", OPIOID_NAIVE))
    for item_id, outcome, population in units:
        label = OUTCOMES[outcome].label + (" (opioid-naive at baseline)" if population else "")
        settings = {**common, "population": population}
        items.append(AnalysisItem(
            f"secondary_{item_id}", "ccw", outcome, "cohort", "secondary_outcome", label, strategies, contrast, horizons,
            settings=settings,
        ))
        items.append(AnalysisItem(
            f"naive_{item_id}", "naive", outcome, "cohort", "secondary_outcome",
            f"{label}: naive comparison by eventual referral time", strategies, contrast, horizons, settings=settings,
        ))
    for outcome in negative_control_outcomes(spec):
        items.append(AnalysisItem(
            f"negative_control_{outcome}", "ccw", outcome, "cohort", "negative_control",
            f"Negative control: {outcome.replace('_', ' ')}", strategies, contrast, horizons,
            settings={**common, "population": None},
        ))
    return items


#: The calibration step's id and the measure it calibrates.
CALIBRATION_ID = "empirical_calibration"
CALIBRATED_MEASURE = "risk_ratio"


def calibration_item(plan: list[AnalysisItem], spec: StudySpec) -> AnalysisItem:
    """Empirical calibration (Schuemie et al. 2014, 2018) of the study's risk ratios with its negative controls.

    Runs after the items it reads, which its settings name by id (never found by matching ids):
    ``negative_controls``, the negative-control items whose log risk ratios at the last horizon fit the
    empirical null; ``calibrates``, the items whose risk ratios it calibrates: the primary return-to-work
    analysis at the primary horizon and each secondary outcome's clone-censor-weight analysis at every
    horizon (``horizons``: item id -> days). The negative controls are estimated in the whole cohort with the
    cohort's referral model; the primary analysis is in the return-to-work population with its own fit, so
    calibrating it assumes the same systematic error in both (``settings["note"]`` says so to a reader).
    """
    first = primary(plan)
    secondary = [i for i in plan if i.role == "secondary_outcome" and i.method == "ccw"]
    controls = [i.id for i in plan if i.role == "negative_control"]
    horizons = {first.id: [spec.analysis.primary_horizon_days], **{i.id: list(i.horizons) for i in secondary}}
    return AnalysisItem(
        CALIBRATION_ID, "empirical_calibration", None, "cohort", "calibration",
        "Empirical calibration of the risk ratios with the negative controls", first.strategies, first.contrast,
        settings={
            "measure": CALIBRATED_MEASURE,
            "calibrates": [first.id, *(i.id for i in secondary)],
            "horizons": horizons,
            "negative_controls": controls,
            "note": {first.id: "calibrated with negative controls estimated in the whole cohort (the return-to-work "
                               "analysis is in the return-to-work population with its own referral model: this "
                               "assumes the same systematic error in both)"},
        },
    )


#: How the cost analyses estimate (:class:`ipm_outcomes.estimators.CloneCensorCost`'s textbook defaults,
#: recorded in each item's settings): Bang and Tsiatis' partitioned estimator over 30-day intervals, and
#: the probability of not being lost by Kaplan-Meier (loss independent of the covariates).
COST_ESTIMATOR = {"estimator": "partitioned", "interval_days": 30, "loss_model": "km"}


def cost_items(spec: StudySpec, strategies, contrast) -> list[AnalysisItem]:
    """The cost outcomes (``[outcomes.cost_total_365]``, ``[outcomes.cost_lbp_365]``), in the whole cohort.

    Per outcome: the mean allowed cost over days 0..``cohort.followup_days`` per strategy (the primary's
    grace-period strategies) and the difference, by clone-censor-weight with inverse probability of
    censoring weighting (method ``ccw_cost``), and beside it the naive comparison by eventual referral time
    (method ``naive``, each group's censoring handled by its own Kaplan-Meier of loss). Their own role,
    ``cost``: a mean over a fixed window is neither a cumulative incidence nor a score, it is estimated by
    its own fit (not the shared multi-outcome fit of :func:`outcome_group`; the cost outcomes share one fit
    among themselves, :func:`cost_fit_groups`) and it is written to its own
    table; the horizon is the one the spec's cost window names, not the analysis horizons.
    """
    grace = spec.exposure.grace_period_days
    horizon = (int(spec.cohort.followup_days),)
    items = []
    for outcome in COST_OUTCOMES:
        settings = {"referral_definition": PRIMARY_REFERRAL, "grace_period_days": grace, **COST_ESTIMATOR,
                    **getattr(spec.outcomes, outcome).model_dump()}
        label = COST_VOCABULARY[outcome].label
        items.append(AnalysisItem(
            outcome, "ccw_cost", outcome, "cohort", "cost", label, strategies, contrast, horizon, settings=settings,
        ))
        items.append(AnalysisItem(
            f"naive_{outcome}", "naive", outcome, "cohort", "cost", f"{label}: naive comparison by eventual referral time",
            strategies, contrast, horizon, settings=settings,
        ))
    return items


def outcome_group(plan: list[AnalysisItem]) -> list[AnalysisItem]:
    """The cohort outcome analyses (secondary outcomes, their naive comparisons, negative controls), in plan
    order: one multi-outcome clone-censor-weight fit and one bootstrap serve them all (the referral model
    ends at referral, death or loss, whatever the outcome; see :mod:`ipm_outcomes.estimators.ccw_outcomes`)."""
    return [item for item in plan if item.role in OUTCOME_ROLES]


#: The settings of a clone-censor-weight cost item that its fit depends on (the rest name the outcome).
COST_FIT_SETTINGS = ("referral_definition", "grace_period_days", "estimator", "interval_days", "loss_model")


def cost_fit_groups(plan: list[AnalysisItem]) -> dict[tuple, list[AnalysisItem]]:
    """Clone-censor-weight cost items that share one fit (method ``ccw_cost``): keyed by the horizon and
    the settings of :data:`COST_FIT_SETTINGS`, in plan order.

    One fit serves them all when their persons' follow-up is the same (checked when fitting): the referral
    and loss models and the clone weights depend on the covariates, referral day and follow-up, never on
    the costs (:class:`ipm_outcomes.estimators.MultiOutcomeCloneCensorCost`).
    """
    groups: dict[tuple, list[AnalysisItem]] = {}
    for item in plan:
        if item.method == "ccw_cost":
            key = (item.horizons, *(item.settings[k] for k in COST_FIT_SETTINGS))
            groups.setdefault(key, []).append(item)
    return groups


def fit_groups(plan: list[AnalysisItem]) -> dict[tuple[str, str], list[AnalysisItem]]:
    """Clone-censor-weight items of return to work that share one fit: keyed by (method, referral
    definition), in plan order (the cohort outcome analyses share theirs: :func:`outcome_group`).

    One fit serves them all: the referral (censoring) model depends only on who is referred when, so
    strategies with the same referral definition share it, and one bootstrap resamples them together.
    """
    groups: dict[tuple[str, str], list[AnalysisItem]] = {}
    for item in plan:
        if item.method == "ccw" and item.role not in OUTCOME_ROLES:
            groups.setdefault((item.method, item.settings["referral_definition"]), []).append(item)
    return groups


def primary(plan: list[AnalysisItem]) -> AnalysisItem:
    """The primary analysis of a plan."""
    return next(item for item in plan if item.primary)
