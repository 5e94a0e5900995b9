"""A small daily-time simulator with known counterfactual truth, for the estimator tests.

Independent of the package's synthetic extract generator: it produces the analysis table directly
(one row per person: time_days, event, referral_day, covariates) so the estimators can be tested
apart from the SQL pipeline.

Each person has a natural referral day R (geometric: a daily referral probability that rises with
severity, i.e. confounding by indication). Each day, in this order: the day's outcome (return to
work, event 1, with a hazard falling with severity and multiplied by ``hr`` from the day after a
referral made within the grace period; or a competing event 2), then the referral if R is that day.
Referral stops at the outcome: a referral day is recorded only if it comes before the outcome
(plus, for some persons, a referral recorded after it, which must not count). Some follow-ups end
early (administrative censoring).

The strategies whose truth is simulated (no censoring, same covariate distribution):

* ``early`` (referral within the grace period G): R drawn from the person's natural referral-day
  distribution restricted to days 0..G;
* ``delayed`` (no referral within G): R drawn from it restricted to days > G (or never), i.e.
  referral switched off until G and natural afterwards.
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


def _rates(severity, male, age, payer, confounding):
    lin = -4.0 + confounding * severity + 0.01 * (age - 42) + 0.3 * (payer == "workers_comp")
    p_ref = 1 / (1 + np.exp(-lin))
    lam_rtw = np.exp(-5.0 - 0.6 * confounding * severity + 0.2 * male - 0.01 * (age - 42))
    lam_comp = np.exp(-7.0 + 0.6 * severity + 0.02 * (age - 42))
    return p_ref, lam_rtw, lam_comp


def _geometric_in(rng, p, lo, hi):
    """Day of the first success of daily Bernoulli(p) draws, given it falls in [lo, hi] (hi may be inf)."""
    # P(R >= d) = (1-p)^d; invert the CDF restricted to [lo, hi]
    s_lo = (1 - p) ** lo
    s_hi = (1 - p) ** (hi + 1) if np.isfinite(hi) else np.zeros_like(p)
    u = rng.random(p.shape[0])
    s = s_lo - u * (s_lo - s_hi)
    d = np.floor(np.log(np.clip(s, 1e-300, 1)) / np.log1p(-p))
    return np.clip(d, lo, hi if np.isfinite(hi) else 10**9).astype(np.int64)


def _outcomes(rng, referral, lam_rtw, lam_comp, hr, grace, censor_day):
    n = referral.shape[0]
    time = np.full(n, FOLLOWUP)
    event = np.zeros(n, dtype=int)
    active = np.ones(n, dtype=bool)
    for day in range(FOLLOWUP + 1):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        treated = (referral[idx] < day) & (referral[idx] <= grace)
        lam1 = lam_rtw[idx] * np.where(treated, hr, 1.0)
        lam2 = lam_comp[idx]
        ev = rng.random(idx.size) < 1 - np.exp(-(lam1 + lam2))
        cause = np.where(rng.random(idx.size) < lam1 / (lam1 + lam2), 1, 2)
        ended = ev | (day >= censor_day[idx])
        time[idx[ended]] = day
        event[idx[ev]] = cause[ev]
        active[idx[ended]] = False
    return time, event


def simulate(n, seed, *, hr=1.5, confounding=0.6, grace=42, censoring=True):
    """Observed data: one row per person (time_days, event, referral_day nullable, covariates)."""
    rng = np.random.default_rng(seed)
    severity, male, age, payer = _covariates(rng, n)
    p_ref, lam_rtw, lam_comp = _rates(severity, male, age, payer, confounding)
    natural = _geometric_in(rng, p_ref, 0, np.inf)
    censor_day = (
        np.where(rng.random(n) < 0.25, rng.integers(30, FOLLOWUP, n), FOLLOWUP) if censoring else np.full(n, FOLLOWUP)
    )
    time, event = _outcomes(rng, natural, lam_rtw, lam_comp, hr, grace, censor_day)
    seen = natural < time  # referral stops at the outcome (and is not seen after follow-up ends)
    # some persons have an IPM claim after their outcome: recorded, but it did not happen in time
    late = ~seen & (rng.random(n) < 0.2)
    referral = np.where(seen, natural, np.where(late, time + rng.integers(1, 60, n), -1))
    return pd.DataFrame(
        {
            "time_days": time,
            "event": event,
            "referral_day": pd.array(np.where(referral >= 0, referral, 0), dtype="Int64"),
            "severity": severity,
            "male": male,
            "age": age,
            "payer_type": payer,
        }
    ).assign(referral_day=lambda d: d["referral_day"].where(referral >= 0))


def truth(n, seed, *, hr=1.5, confounding=0.6, grace=42, horizons=(90, 180, 365)):
    """Cumulative incidence of RTW (and of the competing event) at ``horizons`` under each strategy."""
    rng = np.random.default_rng(seed)
    severity, male, age, payer = _covariates(rng, n)
    p_ref, lam_rtw, lam_comp = _rates(severity, male, age, payer, confounding)
    no_censor = np.full(n, FOLLOWUP + 1)
    out = {}
    for name, (lo, hi) in {"early": (0, grace), "delayed": (grace + 1, np.inf)}.items():
        referral = _geometric_in(rng, p_ref, lo, hi)
        time, event = _outcomes(rng, referral, lam_rtw, lam_comp, hr, grace, no_censor)
        out[name] = {h: float(np.mean((event == 1) & (time <= h))) for h in horizons}
        out[name + "_competing"] = {h: float(np.mean((event == 2) & (time <= h))) for h in horizons}
    return out
