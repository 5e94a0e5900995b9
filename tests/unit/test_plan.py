"""The analysis plan is built from the spec: analyses are data, and a sensitivity analysis is a spec entry."""

from __future__ import annotations

import pandas as pd
import pytest

from ipm_outcomes.errors import IpmError
from ipm_outcomes.estimators.dose_response import dose_response_table
from ipm_outcomes.plan import (
    AnalysisItem, build_plan, cost_fit_groups, fit_groups, negative_control_outcomes, outcome_group, primary,
)
from ipm_outcomes.spec import load_spec, spec_from_dict


def _spec(**analysis):
    data = load_spec().to_toml_dict()
    data["analysis"].update(analysis)
    return spec_from_dict(data)


def test_the_shipped_spec_gives_this_plan():
    plan = build_plan(load_spec())
    assert [i.id for i in plan] == [
        "cohort_description", "primary", "grace_28", "grace_90", "dose_response", "subgroups", "procedure_only",
        "landmark_iptw", "tv_cox", "naive",
        "qol_promis_pf", "qol_promis_pi", "qol_odi", "qol_eq5d_index", "qol_nrs_pain",
        *(f"{kind}_{unit}" for unit in ("new_depression_anxiety", "new_sleep_disorder", "long_term_opioid",
                                        "long_term_opioid_in_opioid_naive", "lumbar_surgery", "ed_visit_lbp")
          for kind in ("secondary", "naive")),
        *(f"negative_control_{name}" for name in negative_control_outcomes(load_spec())),
        "cost_total_365", "naive_cost_total_365", "cost_lbp_365", "naive_cost_lbp_365",
        "empirical_calibration",
    ]
    p = primary(plan)
    assert p.id == "primary" and p.method == "ccw" and p.outcome == "rtw" and p.population == "rtw"
    assert p.strategies == {"early": (0, 42), "delayed": (43, None)} and p.contrast == ("early", "delayed")
    assert p.horizons == (90, 180, 365) and sum(i.primary for i in plan) == 1
    grace_28 = next(i for i in plan if i.id == "grace_28")
    assert grace_28.strategies == {"early_28": (0, 28), "delayed_28": (29, None)}
    assert grace_28.contrast == ("early_28", "delayed_28") and grace_28.role == "sensitivity"
    dose = next(i for i in plan if i.id == "dose_response")
    assert dose.strategies == {"band 0-14": (0, 14), "band 15-42": (15, 42), "band 43-90": (43, 90), "band 91-180": (91, 180)}
    assert next(i for i in plan if i.id == "subgroups").horizons == (180,)
    assert next(i for i in plan if i.id == "qol_odi").settings["mcid"] == 10


def test_a_sensitivity_analysis_is_a_spec_entry():
    plan = build_plan(_spec(sensitivity_grace_periods=[28, 42, 60, 90], sensitivity_referral_definitions=[]))
    ids = [i.id for i in plan]
    assert "grace_60" in ids and "procedure_only" not in ids
    g = next(i for i in plan if i.id == "grace_60")
    assert g.strategies == {"early_60": (0, 60), "delayed_60": (61, None)} and g.settings["grace_period_days"] == 60


def test_the_primary_horizon_is_one_spec_key_and_must_be_a_horizon():
    plan = build_plan(_spec(primary_horizon_days=365))
    assert next(i for i in plan if i.id == "subgroups").horizons == (365,)
    with pytest.raises(IpmError, match="primary_horizon_days \\(100\\) is not one of horizons_days"):
        _spec(primary_horizon_days=100)


def test_clone_censor_weight_analyses_with_one_referral_definition_share_one_fit():
    groups = fit_groups(build_plan(load_spec()))
    assert {k: [i.id for i in v] for k, v in groups.items()} == {
        ("ccw", "first_contact"): ["primary", "grace_28", "grace_90", "dose_response", "subgroups"],
        ("ccw", "procedure_only"): ["procedure_only"],
    }


def test_items_round_trip_through_json():
    for item in build_plan(load_spec()):
        assert AnalysisItem.from_dict(item.to_dict()) == item


def test_dose_response_reports_a_band_only_once_its_window_has_closed():
    """Miniature: a band's cumulative incidence before its last day is not a dose-response estimate."""

    class Fitted:
        summary = pd.DataFrame(
            [
                dict(measure="cumulative_incidence", arm=f"band {b}", contrast=None, horizon_days=h,
                     estimate=e, ci_low=e - 0.1, ci_high=e + 0.1, n=50)
                for b, h, e in [("0-14", 90, 0.5), ("0-14", 180, 0.7), ("91-180", 90, 0.3), ("91-180", 180, 0.6)]
            ]
        )

    t = dose_response_table(Fitted(), [("0-14", 0, 14), ("91-180", 91, 180)], (90, 180), arm_prefix="band ")
    assert t[["band", "first_day", "last_day", "horizon_days", "estimate"]].values.tolist() == [
        ["0-14", 0, 14, 90, 0.5], ["0-14", 0, 14, 180, 0.7], ["91-180", 91, 180, 180, 0.6],
    ]


def test_each_secondary_outcome_and_negative_control_is_an_item_sharing_one_fit():
    spec = load_spec()
    plan = build_plan(spec)
    items = {i.id: i for i in outcome_group(plan)}
    # every time-to-event secondary outcome of the spec, with its naive comparison beside it
    sec = [i for i in items.values() if i.role == "secondary_outcome" and i.method == "ccw"]
    assert [i.outcome for i in sec] == ["new_depression_anxiety", "new_sleep_disorder", "long_term_opioid",
                                        "long_term_opioid", "lumbar_surgery", "ed_visit_lbp"]
    naive_ltot = items["secondary_long_term_opioid_in_opioid_naive"]
    assert naive_ltot.settings["population"] == "opioid_naive" and items["secondary_long_term_opioid"].settings["population"] is None
    for i in sec:
        beside = items[i.id.replace("secondary_", "naive_", 1)]
        assert beside.method == "naive" and beside.outcome == i.outcome and beside.settings == i.settings
    # the primary's grace-period strategies, contrast and horizons; the whole cohort
    p = primary(plan)
    for i in items.values():
        assert (i.strategies, i.contrast, i.horizons, i.population) == (p.strategies, p.contrast, p.horizons, "cohort")
    # one per group of the negative-control value set (at least 20, as the issue asks)
    nc = [i.outcome for i in items.values() if i.role == "negative_control"]
    assert nc == negative_control_outcomes(spec) and len(nc) >= 20 and len(set(nc)) == len(nc)
    assert "ingrown_nail" in nc and all(items[f"negative_control_{o}"].method == "ccw" for o in nc)
    # the return-to-work fits do not take them in
    assert all(i.role not in ("secondary_outcome", "negative_control") for g in fit_groups(plan).values() for i in g)


def test_each_cost_outcome_is_a_clone_censor_weight_item_with_its_naive_comparison():
    spec = load_spec()
    plan = build_plan(spec)
    p = primary(plan)
    costs = [i for i in plan if i.role == "cost"]
    assert [(i.id, i.method, i.outcome) for i in costs] == [
        ("cost_total_365", "ccw_cost", "cost_total_365"), ("naive_cost_total_365", "naive", "cost_total_365"),
        ("cost_lbp_365", "ccw_cost", "cost_lbp_365"), ("naive_cost_lbp_365", "naive", "cost_lbp_365"),
    ]
    for i in costs:
        # the primary's grace-period strategies and contrast, the whole cohort, the spec's cost window
        assert (i.strategies, i.contrast, i.population) == (p.strategies, p.contrast, "cohort")
        assert i.horizons == (spec.cohort.followup_days,) == (365,)
        assert i.settings["grace_period_days"] == spec.exposure.grace_period_days
        assert (i.settings["estimator"], i.settings["interval_days"], i.settings["loss_model"]) == ("partitioned", 30, "km")
    by_id = {i.id: i for i in costs}
    assert by_id["cost_total_365"].settings["related_only"] is False
    lbp = by_id["cost_lbp_365"].settings
    assert lbp["related_only"] is True and lbp["diagnosis_valuesets"] == ["lbp"]
    assert lbp["procedure_valuesets"] == ["ipm_procedures", "physical_therapy", "lumbar_imaging"]
    assert by_id["naive_cost_lbp_365"].settings == lbp
    # neither the shared multi-outcome fit nor the return-to-work fits take them in
    assert not any(i.role == "cost" for i in outcome_group(plan))
    assert not any(i.role == "cost" for g in fit_groups(plan).values() for i in g)
    # the settings travel in results.json
    assert all(AnalysisItem.from_dict(i.to_dict()) == i for i in costs)



def test_the_clone_censor_weight_cost_items_with_the_same_estimator_settings_share_one_fit():
    plan = build_plan(load_spec())
    assert [[i.id for i in g] for g in cost_fit_groups(plan).values()] == [["cost_total_365", "cost_lbp_365"]]
    # a setting the fit depends on splits the group; one that names the outcome (its value sets) does not
    data = load_spec().to_toml_dict()
    data["outcomes"]["cost_lbp_365"]["procedure_valuesets"] = ["ipm_procedures"]
    assert len(cost_fit_groups(build_plan(spec_from_dict(data)))) == 1
    lbp = next(i for i in plan if i.id == "cost_lbp_365")
    other = AnalysisItem.from_dict({**lbp.to_dict(), "settings": {**lbp.settings, "loss_model": "pooled_logistic"}})
    groups = cost_fit_groups([i if i.id != "cost_lbp_365" else other for i in plan])
    assert [[i.id for i in g] for g in groups.values()] == [["cost_total_365"], ["cost_lbp_365"]]

def test_the_cost_window_follows_the_spec_follow_up():
    data = load_spec().to_toml_dict()
    data["cohort"]["followup_days"] = 400
    plan = build_plan(spec_from_dict(data))
    assert {i.horizons for i in plan if i.role == "cost"} == {(400,)}
