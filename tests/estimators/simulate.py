"""A small daily-time simulator with known counterfactual truth, for the estimator tests.

Independent of the package's synthetic extract generator: it produces the analysis table directly
(one row per person: time_days, event, referral_day, covariates) so the estimators can be tested
apart from the SQL pipeline.

Each person has a natural referral day R: the first success of daily Bernoulli draws whose
probability is logistic-linear in baseline covariates and rises with severity (confounding by
indication). Each day, in this order: the day's outcome (return to work, event 1, with a hazard
falling with severity and multiplied by ``hr`` from the day after the referral; or a competing
event 2), which depends on the referral status at the end of the day before; then the referral if R
is that day. Referral stops at the outcome: a referral day is recorded only if it comes before the
outcome (a referral recorded on or after the outcome day did not act on it and must not count).
Some follow-ups end early (disenrolment: administrative censoring).

Options (all off by default; :data:`EXTENDED` switches on the mechanisms of issue 19, which make the
data look like a real referral process):

* ``effect_any_referral``: the outcome hazard changes from the day after any referral (default:
  only a referral within the grace period acts);
* ``post_outcome_rate``: after the outcome the person can still be referred, at this multiple of
  the natural daily probability (recorded when it falls inside the person's enrolment); by
  default 20% of persons get a referral 1-59 days after their outcome;
* ``halving_day``: the daily referral probability halves from this day on;
* ``competing_scale``: multiplies the competing-event hazard.

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

#: The issue-19 mechanisms: referral after the outcome at 0.3x the rate, the referral probability
#: halving after four months, an effect of any referral, competing events in about 10% of persons.
EXTENDED = dict(effect_any_referral=True, post_outcome_rate=0.3, halving_day=120, competing_scale=0.6)


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


def _survival(p, d, halving_day):
    """P(R >= d): no referral on days 0..d-1 (daily probability p, p/2 from ``halving_day``)."""
    d = np.asarray(d, dtype=float)
    if halving_day is None:
        return np.exp(d * np.log1p(-p))
    first = np.minimum(d, halving_day)
    return np.exp(first * np.log1p(-p) + np.maximum(d - halving_day, 0) * np.log1p(-p / 2))


def _referral_in(rng, p, lo, hi, halving_day=None):
    """Day of the first success of the daily referral draws, given it falls in [lo, hi] (hi may be inf)."""
    s_lo = _survival(p, lo, halving_day)
    s_hi = _survival(p, hi + 1, halving_day) if np.isfinite(hi) else np.zeros_like(p)
    u = rng.random(p.shape[0])
    s = np.clip(s_lo - u * (s_lo - s_hi), 1e-300, 1)
    # invert P(R >= d) >= s > P(R >= d + 1), piecewise when the probability halves
    d = np.floor(np.log(s) / np.log1p(-p))
    if halving_day is not None:
        s_h = _survival(p, halving_day, halving_day)
        later = halving_day + np.floor((np.log(s) - np.log(s_h)) / np.log1p(-p / 2))
        d = np.where(s <= s_h, later, np.minimum(d, halving_day - 1))
    return np.clip(d, lo, hi if np.isfinite(hi) else 10**9).astype(np.int64)


def _outcomes(rng, referral, lam_rtw, lam_comp, hr, grace, censor_day, effect_any_referral=False):
    n = referral.shape[0]
    time = np.full(n, FOLLOWUP)
    event = np.zeros(n, dtype=int)
    active = np.ones(n, dtype=bool)
    for day in range(FOLLOWUP + 1):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        treated = referral[idx] < day
        if not effect_any_referral:
            treated &= referral[idx] <= grace
        lam1 = lam_rtw[idx] * np.where(treated, hr, 1.0)
        lam2 = lam_comp[idx]
        ev = rng.random(idx.size) < 1 - np.exp(-(lam1 + lam2))
        cause = np.where(rng.random(idx.size) < lam1 / (lam1 + lam2), 1, 2)
        ended = ev | (day >= censor_day[idx])
        time[idx[ended]] = day
        event[idx[ev]] = cause[ev]
        active[idx[ended]] = False
    return time, event


def simulate(
    n,
    seed,
    *,
    hr=1.5,
    confounding=0.6,
    grace=42,
    censoring=True,
    effect_any_referral=False,
    post_outcome_rate=None,
    halving_day=None,
    competing_scale=1.0,
):
    """Observed data: one row per person (time_days, event, referral_day nullable, covariates)."""
    rng = np.random.default_rng(seed)
    severity, male, age, payer = _covariates(rng, n)
    p_ref, lam_rtw, lam_comp = _rates(severity, male, age, payer, confounding)
    natural = _referral_in(rng, p_ref, 0, np.inf, halving_day)
    censor_day = (
        np.where(rng.random(n) < 0.25, rng.integers(30, FOLLOWUP, n), FOLLOWUP) if censoring else np.full(n, FOLLOWUP)
    )
    time, event = _outcomes(
        rng, natural, lam_rtw, lam_comp * competing_scale, hr, grace, censor_day, effect_any_referral
    )
    seen = natural < time  # referral stops at the outcome (and is not seen after follow-up ends)
    if post_outcome_rate is None:
        # some persons have an IPM claim after their outcome: recorded, but it did not happen in time
        late = ~seen & (rng.random(n) < 0.2)
        after = time + rng.integers(1, 60, n)
    else:
        # after an outcome (not a disenrolment) referral goes on at a fraction of the natural rate,
        # from the outcome day itself (after the outcome), and is seen while the person is enrolled
        # (follow-up of an outcome-free person would have ended on its censoring day)
        p_after = p_ref * post_outcome_rate
        after = time + _referral_in(rng, p_after, 0, np.inf, None if halving_day is None else halving_day - time)
        late = ~seen & (event > 0) & (after <= censor_day)
    referral = np.where(seen, natural, np.where(late, after, -1))
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


def truth(
    n,
    seed,
    *,
    hr=1.5,
    confounding=0.6,
    grace=42,
    horizons=(90, 180, 365),
    effect_any_referral=False,
    post_outcome_rate=None,
    halving_day=None,
    competing_scale=1.0,
):
    """Cumulative incidence of RTW (and of the competing event) at ``horizons`` under each strategy.

    ``post_outcome_rate`` is accepted (and ignored) so one set of options serves both functions: a
    referral after the outcome does not change it.
    """
    rng = np.random.default_rng(seed)
    severity, male, age, payer = _covariates(rng, n)
    p_ref, lam_rtw, lam_comp = _rates(severity, male, age, payer, confounding)
    no_censor = np.full(n, FOLLOWUP + 1)
    out = {}
    for name, (lo, hi) in {"early": (0, grace), "delayed": (grace + 1, np.inf)}.items():
        referral = _referral_in(rng, p_ref, lo, hi, halving_day)
        time, event = _outcomes(
            rng, referral, lam_rtw, lam_comp * competing_scale, hr, grace, no_censor, effect_any_referral
        )
        out[name] = {h: float(np.mean((event == 1) & (time <= h))) for h in horizons}
        out[name + "_competing"] = {h: float(np.mean((event == 2) & (time <= h))) for h in horizons}
    return out




def _strategy_cif(p, lam1, lam2, *, hr, grace, horizons, effect_any_referral, halving_day):
    """Exact RTW cumulative incidence through each horizon under each strategy, per person.

    The daily hazards are constant (lam1 for RTW, lam2 competing; lam1 times ``hr`` on the days after
    the referral day r), so with q = exp(-(lam1 + lam2)) and a = lam1 / (lam1 + lam2) the cumulative
    incidence through day h is a0 (1 - q0^(r+1)) + q0^(r+1) a1 (1 - q1^(h-r)) for r < h (untreated on
    days 0..r, treated on r+1..h) and a0 (1 - q0^(h+1)) for r >= h or never; it is averaged over the
    strategy's referral days, the natural distribution restricted to the window.

    Returns ``{strategy: {horizon: array over persons}}``.
    """
    q0, a0 = np.exp(-(lam1 + lam2)), lam1 / (lam1 + lam2)
    q1, a1 = np.exp(-(hr * lam1 + lam2)), hr * lam1 / (hr * lam1 + lam2)
    out = {}
    for name, (first, last) in {"early": (0, grace), "delayed": (grace + 1, None)}.items():
        mass = _survival(p, first, halving_day) - (0.0 if last is None else _survival(p, last + 1, halving_day))
        acts = effect_any_referral or name == "early"  # by default only a referral within G acts
        out[name] = {}
        for h in horizons:
            untreated = a0 * (1 - q0 ** (h + 1))
            days = np.arange(first, h if last is None else min(last + 1, h))
            if not acts or days.size == 0:
                out[name][h] = untreated
                continue
            prob = _survival(p[:, None], days, halving_day) - _survival(p[:, None], days + 1, halving_day)
            k = days + 1
            cif_r = a0[:, None] * (1 - q0[:, None] ** k) + q0[:, None] ** k * a1[:, None] * (
                1 - q1[:, None] ** (h - days)
            )
            rest = mass - prob.sum(axis=1)  # referred on a day >= h (or never): untreated through h
            out[name][h] = ((prob * cif_r).sum(axis=1) + rest * untreated) / mass
    return out


def exact_truth(
    *,
    hr=1.5,
    confounding=0.6,
    grace=42,
    horizons=(90, 180, 365),
    effect_any_referral=False,
    post_outcome_rate=None,
    halving_day=None,
    competing_scale=1.0,
    nodes=(48, 24),
):
    """:func:`truth` without Monte Carlo error: the per-person cumulative incidences of
    :func:`_strategy_cif` integrated over the covariate distribution by quadrature (Gauss-Hermite in
    severity, Gauss-Legendre in age, exact sums over sex and payer; ``nodes`` = the two orders).
    A null effect gives exactly equal arms. ``post_outcome_rate`` is accepted and ignored, as in
    :func:`truth`.
    """
    x, wx = np.polynomial.hermite_e.hermegauss(nodes[0])
    wx = wx / wx.sum()
    y, wy = np.polynomial.legendre.leggauss(nodes[1])
    age_nodes, wy = 42 + 22 * y, wy / wy.sum()  # uniform on [20, 64]
    grid = [
        (sev, m, a, pay, ws * 0.5 * wa * pp)
        for sev, ws in zip(x, wx, strict=True)
        for m in (0, 1)
        for a, wa in zip(age_nodes, wy, strict=True)
        for pay, pp in (("commercial", 0.6), ("medicaid", 0.25), ("workers_comp", 0.15))
    ]
    sev, male, age, payer, weight = (np.array(v) for v in zip(*grid, strict=True))
    p_ref, lam_rtw, lam_comp = _rates(sev, male, age, payer, confounding)
    cif = _strategy_cif(
        p_ref,
        lam_rtw,
        lam_comp * competing_scale,
        hr=hr,
        grace=grace,
        horizons=horizons,
        effect_any_referral=effect_any_referral,
        halving_day=halving_day,
    )
    return {name: {h: float(np.sum(weight * v)) for h, v in per.items()} for name, per in cif.items()}
