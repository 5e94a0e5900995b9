"""Mean costs per strategy end to end against the generator's truth: synth -> ingest -> cohort ->
the clone-censor-weight cost estimator (estimators/costs.py) on marts.cohort, marts.cost_outcome and
marts.cost_daily.

The truth (truth.json ``costs``) is the expected cost of days 0..365 of every eligible person under
"IPM within 42 days" and "no IPM within 42 days", uncensored (the cost process runs to death or day 365
whatever the enrolment). The extract shows costs only while a person is enrolled, about a third of the
cohort is lost before day 365, and the sicker cost more and are referred sooner; the estimator must
recover the truth from that.

Slow: 20,000 persons (about 7,600 in the cohort), 60 bootstrap replicates, the planted effect and the
null setting. Each mean and difference must lie within three bootstrap standard errors of its truth,
the 95% interval of the difference must cover it, and the naive contrast must not.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ipm_outcomes import cohort, db, ingest, synth
from ipm_outcomes.estimators import CloneCensorCost
from ipm_outcomes.spec import load_spec

PERSONS, SEED, REPLICATES = 20_000, 16, 60


def _study(root: Path, cost_effects) -> tuple[dict, dict[str, tuple[pd.DataFrame, pd.DataFrame]], object]:
    spec = load_spec()
    synth.generate(root / "extract", persons=PERSONS, seed=SEED, file_format="parquet", cost_effects=cost_effects)
    ingest.load_extract(root / "extract", root / "db.duckdb")
    cohort.build(spec, root / "db.duckdb")
    con = db.connect(root / "db.duckdb", read_only=True)
    try:
        persons = con.execute("select * from marts.cohort").df()
        costs = con.execute("select * from marts.cost_outcome").df()
        daily = con.execute("select * from marts.cost_daily").df()
    finally:
        con.close()
    tables = {}
    for outcome in ("cost_total_365", "cost_lbp_365"):
        table = costs[costs.outcome == outcome].merge(persons, on="person_id", how="inner", validate="one_to_one")
        assert len(table) == len(persons)  # nobody dropped
        tables[outcome] = (table, daily[daily.outcome == outcome])
    truth = json.loads((root / "extract" / "truth.json").read_text())["costs"]
    return truth, tables, spec


def _fit(spec, table, daily) -> CloneCensorCost:
    return CloneCensorCost(
        grace_period_days=spec.exposure.grace_period_days,
        horizon_days=spec.cohort.followup_days,
        l2=spec.analysis.model_l2_penalty,
        n_bootstrap=REPLICATES,
        seed=1,
        workers=2,
    ).fit(table, daily, spec.analysis.covariates, referral_col="days_to_referral", amount_col="allowed_amount")


def _check(truth: dict, tables, spec) -> list[str]:
    lines = []
    for outcome, (table, daily) in tables.items():
        est = _fit(spec, table, daily)
        assert est.bootstrap_.failed == 0, est.bootstrap_.first_error
        true = {
            "mean/early": truth[outcome]["mean"]["early"],
            "mean/delayed": truth[outcome]["mean"]["delayed"],
            "difference/early/delayed": truth[outcome]["difference"],
        }
        for key, value in true.items():
            got = float(est.values_[key])
            se = float(est.bootstrap_.standard_error(key))
            lines.append(f"{outcome} {key}: estimate {got:.1f}, truth {value:.1f}, bias {got - value:+.1f}, SE {se:.1f}")
            assert abs(got - value) < 3 * se, lines[-1]
        row = est.summary.set_index("measure").loc["mean_cost_difference"]
        assert row.ci_low < truth[outcome]["difference"] < row.ci_high, (outcome, row.ci_low, row.ci_high)
        # the naive contrast (observed referral by day 42 or not, complete histories) is confounded
        complete = table.complete.to_numpy(dtype=bool)
        early = table.days_to_referral.fillna(10**6).to_numpy() <= spec.exposure.grace_period_days
        amount = table.allowed_amount.to_numpy()
        naive = amount[complete & early].mean() - amount[complete & ~early].mean()
        lines.append(f"{outcome} naive difference {naive:.1f}")
        assert not row.ci_low < naive < row.ci_high, lines[-1]
    return lines


@pytest.mark.slow
def test_clone_censor_cost_recovers_the_planted_cost_truth(tmp_path):
    truth, tables, spec = _study(tmp_path, None)
    assert truth["cost_total_365"]["difference"] < -100
    print("\n".join(_check(truth, tables, spec)))


@pytest.mark.slow
def test_null_setting_gives_a_difference_near_zero(tmp_path):
    truth, tables, spec = _study(tmp_path, synth.NULL_COST_EFFECTS)
    assert abs(truth["cost_total_365"]["difference"]) < 15  # only the day-0 IPM contact's cost
    print("\n".join(_check(truth, tables, spec)))
    assert np.isfinite(truth["cost_lbp_365"]["difference"])
