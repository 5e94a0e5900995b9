"""The analysis plan is built from the spec: analyses are data, and a sensitivity analysis is a spec entry."""

from __future__ import annotations

import pandas as pd
import pytest

from ipm_outcomes.errors import IpmError
from ipm_outcomes.estimators.dose_response import dose_response_table
from ipm_outcomes.plan import AnalysisItem, build_plan, fit_groups, primary
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
