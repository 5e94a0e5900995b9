"""The cohort outcome analyses against the synthetic generator's truth (slow).

truth.json ``secondary_outcomes`` holds, per secondary outcome, the cumulative incidence under each
strategy and their risk difference, computed by simulating the same persons under each strategy (the
clone-censor-weight estimand); the negative controls are generated from covariates only, so their true
contrasts are 0 (log risk ratio 0).

At 30,000 generated persons (about 13,700 in the cohort) with 200 bootstrap replicates, for the 18
secondary risk differences (6 analyses x 90, 180 and 365 days): every estimate within 3 bootstrap standard
errors of its truth (the Bonferroni bound for 18 two-sided tests at a 5% family-wise level), and at least
15 of the 18 95% intervals cover it (asking all 18 to cover would fail a perfectly calibrated estimator
in about 60% of data sets; 4 or more misses have probability about 1% when each interval covers 95%).
The negative controls' log risk ratios centre on no effect: their mean within a typical standard error of
0, and at least 21 of the 24 intervals cover 0. Measured numbers (seed 2026): benchmarks/README.md.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from test_secondary_outcomes_analysis import _study

#: Plan unit -> the truth.json key of its truth.
TRUTH_KEYS = {
    "new_depression_anxiety": "new_depression_anxiety",
    "new_sleep_disorder": "new_sleep_disorder",
    "long_term_opioid": "long_term_opioid",
    "long_term_opioid_in_opioid_naive": "long_term_opioid_opioid_naive",
    "lumbar_surgery": "lumbar_surgery",
    "ed_visit_lbp": "ed_visit_lbp",
}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("outcomes_truth")
    _study(root, persons=30_000, seed=2026, replicates=200)
    truth = json.loads((root / "extract" / "truth.json").read_text())["secondary_outcomes"]
    est = pd.read_parquet(root / "results" / "secondary_estimates.parquet")
    nc = pd.read_parquet(root / "results" / "negative_controls.parquet")
    return truth, est, nc, root


@pytest.mark.slow
def test_the_secondary_risk_differences_agree_with_the_truth(study):
    truth, est, _, _ = study
    rd = est[(est["method"] == "ccw") & (est["measure"] == "risk_difference")]
    lines, missed = [], []
    for unit, key in TRUTH_KEYS.items():
        for h in (90, 180, 365):
            row = rd[(rd["analysis"] == f"secondary_{unit}") & (rd["horizon_days"] == h)].iloc[0]
            true = truth[key]["risk_difference"][str(h)]
            z = (row.estimate - true) / row.se
            lines.append(f"{unit} {h}: {row.estimate:+.4f} ({row.ci_low:+.4f}, {row.ci_high:+.4f}) truth {true:+.4f}, "
                         f"error/SE {z:+.2f}")
            assert abs(z) < 3, lines[-1]
            if not row.ci_low <= true <= row.ci_high:
                missed.append(lines[-1])
    print("\n".join(lines))
    assert len(missed) <= 3, missed


@pytest.mark.slow
def test_negative_controls_centre_on_no_effect(study):
    _, _, nc, _ = study
    usable = nc[nc["usable"]]
    assert len(usable) == len(nc) == 24
    mean = float(usable["log_rr"].mean())
    typical_se = float(np.sqrt(np.mean(usable["se"] ** 2)))
    covered = int(((usable["ci_low"] <= 0) & (usable["ci_high"] >= 0)).sum())
    print(f"negative controls: mean log RR {mean:+.4f}, typical SE {typical_se:.4f}, {covered}/24 intervals cover 0")
    assert abs(mean) < typical_se
    assert covered >= 21


@pytest.mark.slow
def test_calibration_leaves_the_well_adjusted_estimates_nearly_unchanged(study):
    """The negative controls centre on no effect here, so the empirical null is near N(0, 0): EASE passes
    OHDSI's threshold and every calibrated interval still contains the uncalibrated risk ratio."""
    _, _, _, root = study
    cal = pd.read_parquet(root / "results" / "calibrated_estimates.parquet")
    d = json.loads((root / "results" / "results.json").read_text())["diagnostics"]
    null, ease = d["empirical_calibration"]["null"], d["empirical_calibration"]["ease"]
    print(f"null mean {null['mean']:+.4f} (SE {null['mean_se']:.4f}), sd {null['sd']:.4f}, EASE {ease:.4f}")
    for r in cal.itertuples():
        print(f"{r.analysis} {r.horizon_days}: RR {r.estimate:.3f} ({r.ci_low:.3f}, {r.ci_high:.3f}) calibrated "
              f"{r.calibrated_estimate:.3f} ({r.calibrated_ci_low:.3f}, {r.calibrated_ci_high:.3f})")
    assert cal["calibrated"].all() and len(cal) == 1 + 6 * 3
    assert ease < 0.25
    check = next(c for c in d["checks"] if c["name"] == "empirical_calibration:ease")
    assert check["passed"]
    assert ((cal["calibrated_ci_low"] <= cal["estimate"]) & (cal["estimate"] <= cal["calibrated_ci_high"])).all()
