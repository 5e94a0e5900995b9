"""A small daily-time simulator with known counterfactual truth, for the estimator tests.

Independent of the package's synthetic extract generator: it produces the analysis table directly
(one row per person: time_days, event, referral_day, covariates) so the estimators can be tested
before and apart from the SQL pipeline.

Each day, in this order: a person not yet referred may be referred (daily hazard rising with
severity: confounding by indication), then may return to work (event 1; hazard falling with
severity, multiplied by ``hr`` from the day of a referral made within the grace period) or have a
competing event (event 2: long-term disability/retirement/death). Administrative censoring ends
some follow-ups early.

The strategies whose truth is simulated are the ones clone-censor-weight identifies:

* ``early`` (referral within the grace period G): the natural referral process during days 0..G;
  a person still at risk and not referred at the end of day G is referred then (the effect
  applies from day G+1).
* ``delayed`` (no referral within G): no referral on days 0..G, the natural process afterwards.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

FOLLOWUP = 365


def _covariates(rng, n):
    severity = rng.normal(size=n)
    male = rng.binomial(1, 0.5, n)
    age = rng.uniform(20, 64, n)
    payer = rng.choice(["commercial", "medicaid", "workers_comp"], size=n, p=[0.6, 0.25, 0.15])
    return severity, male, age, payer


def _hazards(severity, male, age, payer, confounding):
    lin_ref = -4.0 + confounding * severity + 0.01 * (age - 42) + 0.3 * (payer == "workers_comp")
    lam_rtw = np.exp(-5.0 - 0.6 * confounding * severity + 0.2 * male - 0.01 * (age - 42))
    lam_comp = np.exp(-7.0 + 0.6 * severity + 0.02 * (age - 42))
    p_ref = 1 / (1 + np.exp(-lin_ref))
    return p_ref, lam_rtw, lam_comp


def _run(rng, n, p_ref, lam_rtw, lam_comp, hr, grace, regime, censor_day):
    referral = np.full(n, -1)
    time = np.full(n, FOLLOWUP)
    event = np.zeros(n, dtype=int)
    active = np.ones(n, dtype=bool)
    for day in range(FOLLOWUP + 1):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        not_ref = referral[idx] < 0
        if regime == "natural" or (regime == "early" and day <= grace) or (regime == "delayed" and day > grace):
            draw = rng.random(idx.size) < p_ref[idx]
            referral[idx[not_ref & draw]] = day
        treated = (referral[idx] >= 0) & (referral[idx] <= grace)
        if regime == "early" and day > grace:
            treated = np.ones(idx.size, dtype=bool)
        lam1 = lam_rtw[idx] * np.where(treated, hr, 1.0)
        lam2 = lam_comp[idx]
        u = rng.random(idx.size)
        p_any = 1 - np.exp(-(lam1 + lam2))
        ev = u < p_any
        cause = np.where(rng.random(idx.size) < lam1 / (lam1 + lam2), 1, 2)
        ended = ev | (day >= censor_day[idx])
        time[idx[ended]] = day
        event[idx[ev]] = cause[ev]
        active[idx[ended]] = False
    return time, event, referral


def simulate(n, seed, *, hr=1.5, confounding=0.9, grace=42, censoring=True):
    """Observed data: one row per person (time_days, event, referral_day nullable, covariates)."""
    rng = np.random.default_rng(seed)
    severity, male, age, payer = _covariates(rng, n)
    p_ref, lam_rtw, lam_comp = _hazards(severity, male, age, payer, confounding)
    censor_day = np.where(rng.random(n) < 0.25, rng.integers(30, FOLLOWUP, n), FOLLOWUP) if censoring else np.full(n, FOLLOWUP)
    time, event, referral = _run(rng, n, p_ref, lam_rtw, lam_comp, hr, grace, "natural", censor_day)
    # referrals after the outcome are still recorded (claims do not stop at RTW)
    later = (referral < 0) & (rng.random(n) < 0.3)
    referral = np.where(later, np.minimum(time + rng.integers(1, 60, n), FOLLOWUP), referral)
    return pd.DataFrame(
        {
            "time_days": time,
            "event": event,
            "referral_day": pd.array(np.where(referral >= 0, referral, -1), dtype="Int64").astype("Int64"),
            "severity": severity,
            "male": male,
            "age": age,
            "payer_type": payer,
        }
    ).assign(referral_day=lambda d: d["referral_day"].where(d["referral_day"] >= 0))


def truth(n, seed, *, hr=1.5, confounding=0.9, grace=42, horizons=(90, 180, 365)):
    """Cumulative incidence of RTW at ``horizons`` under each strategy (no censoring)."""
    rng = np.random.default_rng(seed)
    severity, male, age, payer = _covariates(rng, n)
    p_ref, lam_rtw, lam_comp = _hazards(severity, male, age, payer, confounding)
    out = {}
    no_censor = np.full(n, FOLLOWUP)
    for regime in ("early", "delayed"):
        time, event, _ = _run(rng, n, p_ref, lam_rtw, lam_comp, hr, grace, regime, no_censor)
        out[regime] = {h: float(np.mean((event == 1) & (time <= h))) for h in horizons}
        out[regime + "_competing"] = {h: float(np.mean((event == 2) & (time <= h))) for h in horizons}
    return out
