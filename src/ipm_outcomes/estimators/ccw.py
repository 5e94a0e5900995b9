"""Target-trial emulation by clone-censor-weight (Hernan 2018 BMJ; Maringe et al. 2020 IJE).

The question "does IPM referral within the grace period, rather than later or never, change
return to work?" has an immortal-time trap: a person can only be "delayed" by staying off work
(and enrolled) long enough to be referred late. The emulated trial avoids it by starting every
strategy at index (time zero) for everyone:

* **Clone**: each person is copied into every strategy. A strategy is a window of referral days
  ``[a, b]``: "IPM within the grace period" is ``[0, G]``, "no IPM within the grace period" is
  ``[G+1, never]``, a delay category such as 43-90 days is ``[43, 90]``.
* **Censor**: a clone is censored when its person's data stop agreeing with the strategy: at the
  referral if the referral comes before ``a`` (on day r the referral happens before that day's
  outcome, so the clone's last day at risk is r-1), and at the end of day ``b`` if the person is
  still at risk and was not referred within the window. An outcome before any deviation counts in
  every strategy the person still follows (an RTW on day 20 without referral is an RTW in both
  "within 42 days" and "not within 42 days").
* **Weight**: artificial censoring depends on prognosis (sicker patients are referred sooner), so
  uncensored clones are weighted by the inverse probability of remaining uncensored:

  - before ``a``, from a pooled logistic model of the daily referral hazard among persons at risk
    (not yet referred, no outcome yet) given baseline covariates: weight on day s
    ``1 / P(no referral through day s | X)``;
  - at ``b``, among clones still at risk after day ``b``, from a logistic model of "referred in
    ``[a, b]``" given X in that risk set: weight ``1 / P(referred in window | X, at risk after b)``.

  Weights are stabilised (numerator: the same probabilities without covariates), which leaves the
  weighted curves unchanged because the numerator is common to all clones at a given day, and
  truncated at percentiles of their final values (reported).

The outcome is return to work with competing events (long-term disability, retirement, death):
the weighted Aalen-Johansen cumulative incidence per strategy on a daily grid, risk differences
and ratios at the horizons, the restricted mean days not back at work (RMST-style) and a
weighted cause-specific Cox hazard ratio. Confidence intervals come from the person-level
bootstrap (persons are resampled, then cloned; every model is refitted in every replicate).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import IpmError
from . import bootstrap as boot
from ._common import NEVER, build_design, event_codes, integer_days, require_columns
from .propensity import LogisticRegression, PooledLogisticHazard
from .survival import EventTable, aalen_johansen, cause_specific_hazard_ratio, kaplan_meier

#: Measures of the summary table.
CUMULATIVE_INCIDENCE = "cumulative_incidence"


def grace_period_strategies(grace_period_days: int) -> dict[str, tuple[int, int | None]]:
    """The two strategies of the primary trial: referral within the grace period, or not."""
    g = int(grace_period_days)
    return {"early": (0, g), "delayed": (g + 1, None)}


def clone(time: np.ndarray, event: np.ndarray, referral: np.ndarray, a: int, b: int | None):
    """Follow-up of each person's clone in strategy ``[a, b]``.

    Returns
    -------
    (duration, event)
        Grain: one row per person. ``duration`` is the clone's last day at risk (-1 when the clone
        deviates on day 0 and is never at risk); ``event`` is 0 when the clone is artificially
        censored.
    """
    duration = time.copy()
    ev = event.copy()
    if a > 0:
        early_referral = (referral < a) & (referral <= time)
        duration = np.where(early_referral, referral - 1, duration)
        ev = np.where(early_referral, 0, ev)
    else:
        early_referral = np.zeros(time.shape[0], dtype=bool)
    if b is not None:
        missed = ~early_referral & (time > b) & ~((referral >= a) & (referral <= b))
        duration = np.where(missed, b, duration)
        ev = np.where(missed, 0, ev)
    return duration, ev


@dataclass
class StrategyFit:
    """One strategy's clones, weights and curves (internal to :class:`CloneCensorWeight`).

    Arrays of length n have one entry per person (= per clone of this strategy).
    """

    name: str
    window: tuple[int, int | None]
    duration: np.ndarray
    event: np.ndarray
    table: EventTable
    group_tables: dict[str, EventTable]
    cif: np.ndarray
    cif_competing: np.ndarray
    km_rtw: np.ndarray
    final_weight: np.ndarray
    final_weight_raw: np.ndarray
    weighted_population: np.ndarray
    weights_from_day: int
    truncation: dict = field(default_factory=dict)
    end_model: LogisticRegression | None = None
    end_population: np.ndarray | None = None
    end_probability: np.ndarray | None = None


@dataclass
class _Settings:
    strategies: dict[str, tuple[int, int | None]]
    contrasts: list[tuple[str, str]]
    horizons: tuple[int, ...]
    max_day: int
    truncation_percentiles: tuple[float, float] | None
    hazard_interval_days: int
    l2: float
    subgroups: dict[str, list[str]]
    subgroup_contrast: tuple[str, str] | None = None
    init: dict = field(default_factory=dict)


def _fit_hazard(settings: _Settings, X, time, referral) -> PooledLogisticHazard | None:
    horizon = max(a for a, _ in settings.strategies.values())
    if horizon <= 0:
        return None
    exit_day = np.minimum(time, referral)
    referred = referral <= time
    return PooledLogisticHazard(interval_days=settings.hazard_interval_days, l2=settings.l2).fit(
        X, exit_day, referred, horizon=horizon, init=settings.init.get("hazard")
    )


@dataclass
class _Unreferred:
    """Weights of the 'not yet referred' process on days 0..A-1, shared by every strategy.

    Before its window opens, a clone of any strategy is at risk on day s exactly when its person
    has had no outcome before s and no referral by s (``last_day >= s``), and then carries the
    weight ``P(no referral through s) / P(no referral through s | X)``. Computing this once lets
    each strategy read its pre-window risk sets instead of rebuilding them.
    """

    weights: np.ndarray  # n x A, stabilised, original row order
    weights_sorted: np.ndarray  # same rows ordered by last_day descending
    at_risk_count: np.ndarray  # (A,) persons at risk on day s
    order: np.ndarray
    last_day: np.ndarray


def _unreferred(hazard, marginal, X, time, referral) -> _Unreferred:
    surv = hazard.survival(X)
    num = marginal.survival(np.zeros((1, 0)))[0]
    weights = num[None, :] / np.clip(surv, 1e-300, None)
    last_day = np.minimum(time, referral - 1)
    order = np.argsort(-last_day, kind="stable")
    A = weights.shape[1]
    counts = np.bincount(np.clip(last_day, -1, A - 1) + 1, minlength=A + 1)
    at_risk_count = np.cumsum(counts[::-1])[::-1][1:]
    return _Unreferred(weights, weights[order], at_risk_count, order, last_day)


def _clip(x, lo, hi):
    return x if lo is None else np.clip(x, lo, hi)


def _strategy_tables(
    a, b, max_day, duration, event, time, early_weight, final_weight, lo, hi, unref, groups
) -> dict[str, EventTable]:
    """Weighted event tables of one strategy, overall and per subgroup level.

    ``groups`` maps a name to (codes, n_levels); "all" has one level. Returns name -> EventTable
    whose arrays have an extra leading axis of levels.
    """
    D = max_day + 1
    out = {}
    for gname, (codes, L) in groups.items():
        at_risk = np.zeros((L, D))
        n_at_risk = np.zeros((L, D))
        events = np.zeros((L, D, 2))
        n_events = np.zeros((L, D, 2))
        out[gname] = (codes, L, at_risk, n_at_risk, events, n_events)

    pre = min(a, D)
    if pre > 0:
        sorted_codes = {g: v[0][unref.order] for g, v in out.items()}
        for s in range(pre):
            k = int(unref.at_risk_count[s])
            if k == 0:
                continue
            vals = _clip(unref.weights_sorted[:k, s], lo, hi)
            for g, (codes, L, at_risk, n_at_risk, _, _) in out.items():
                sc = sorted_codes[g][:k]
                at_risk[:, s] = np.bincount(sc, weights=vals, minlength=L)
                n_at_risk[:, s] = np.bincount(sc, minlength=L)
        # outcomes before the window opens, while not yet referred
        rows = np.flatnonzero((unref.last_day == time) & (time < pre) & (event > 0))
        w_rows = _clip(unref.weights[rows, time[rows]], lo, hi)
        for g, (codes, L, _, _, events, n_events) in out.items():
            for c in (1, 2):
                sel = event[rows] == c
                idx = codes[rows[sel]] * D + time[rows[sel]]
                events[:, :, c - 1] += np.bincount(idx, weights=w_rows[sel], minlength=L * D).reshape(L, D)
                n_events[:, :, c - 1] += np.bincount(idx, minlength=L * D).reshape(L, D)

    # from the window start on: one weight per clone, changing once more after b
    keep = duration >= pre
    dur = np.minimum(duration[keep], D)  # D = beyond the last day, at risk throughout
    ev = event[keep]
    w_mid = _clip(early_weight[keep], lo, hi)
    w_end = _clip(final_weight[keep], lo, hi)
    cut = D if b is None else min(b + 1, D)
    for g, (codes, L, at_risk, n_at_risk, events, n_events) in out.items():
        cd = codes[keep]
        idx = cd * (D + 1) + dur
        for wv, lo_day, hi_day in ((w_mid, pre, cut), (w_end, cut, D)):
            if lo_day >= hi_day:
                continue
            tot = np.bincount(idx, weights=wv, minlength=L * (D + 1)).reshape(L, D + 1)
            at_risk[:, lo_day:hi_day] = np.cumsum(tot[:, ::-1], axis=1)[:, ::-1][:, lo_day:hi_day]
            for c in (1, 2):
                sel = (ev == c) & (dur >= lo_day) & (dur < hi_day)
                events[:, :, c - 1] += np.bincount(idx[sel], weights=wv[sel], minlength=L * (D + 1)).reshape(
                    L, D + 1
                )[:, :D]
        cnt = np.bincount(idx, minlength=L * (D + 1)).reshape(L, D + 1)
        n_at_risk[:, pre:] = np.cumsum(cnt[:, ::-1], axis=1)[:, ::-1][:, pre:D]
        for c in (1, 2):
            sel = ev == c
            n_events[:, :, c - 1] += np.bincount(idx[sel], minlength=L * (D + 1)).reshape(L, D + 1)[:, :D]
    days = np.arange(D, dtype=float)
    return {
        g: EventTable(days, at_risk, events, n_at_risk, n_events)
        for g, (codes, L, at_risk, n_at_risk, events, n_events) in out.items()
    }


def _level(table: EventTable, level: int) -> EventTable:
    return EventTable(
        table.times, table.at_risk[level], table.events[level], table.n_at_risk[level], table.n_events[level]
    )


def _curves(table: EventTable) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RTW and competing cumulative incidence and 1 - KM; NaN beyond the last day anyone is at risk."""
    _, cif = aalen_johansen(table)
    km = kaplan_meier(table, cause=1)
    unidentified = np.cumsum(table.at_risk[::-1] > 0)[::-1] == 0
    cif = np.where(unidentified[:, None], np.nan, cif)
    km = np.where(unidentified, np.nan, km)
    return cif[:, 0], cif[:, 1], 1.0 - km


def _fit_strategy(settings, name, X, time, event, referral, unref, groups) -> StrategyFit:
    a, b = settings.strategies[name]
    n = time.shape[0]
    duration, ev = clone(time, event, referral, a, b)
    early_weight = unref.weights[:, a - 1] if a > 0 else np.ones(n)
    final_weight = early_weight
    end_model = end_pop = end_prob = None
    weights_from_day = max(a - 1, 0)
    if b is not None:
        # at b: among persons not referred before a and still at risk after day b,
        # probability of having been referred within [a, b]
        weights_from_day = b + 1
        end_pop = (referral >= a) & (time > b)
        end_treated = referral[end_pop] <= b
        end_prob = np.full(n, np.nan)
        if end_pop.sum() > 0 and 0 < end_treated.sum() < end_pop.sum():
            end_model = LogisticRegression(l2=settings.l2).fit(
                X[end_pop], end_treated, init=settings.init.get(f"end/{name}")
            )
            end_prob = end_model.predict_proba(X)
            final_weight = early_weight * end_treated.mean() / np.clip(end_prob, 1e-12, None)
        elif end_treated.sum() == 0:
            # nobody at risk after b was referred within the window: the strategy is not
            # estimable after b; zero weights empty its risk set there (the curve becomes NaN)
            final_weight = np.zeros(n)
    weighted_population = duration >= weights_from_day
    lo = hi = None
    truncation = {"lower": float("nan"), "upper": float("nan"), "n_truncated": 0}
    if settings.truncation_percentiles is not None and (a > 0 or b is not None) and weighted_population.any():
        ref = final_weight[weighted_population]
        lo, hi = (float(v) for v in np.percentile(ref, settings.truncation_percentiles))
        truncation = {"lower": lo, "upper": hi, "n_truncated": int(np.sum((ref < lo) | (ref > hi)))}
    tables = _strategy_tables(
        a, b, settings.max_day, duration, ev, time, early_weight, final_weight, lo, hi, unref, groups
    )
    table = _level(tables["all"], 0)
    cif, cif_comp, km = _curves(table)
    return StrategyFit(
        name=name,
        window=(a, b),
        duration=duration,
        event=ev,
        table=table,
        group_tables=tables,
        cif=cif,
        cif_competing=cif_comp,
        km_rtw=km,
        final_weight=_clip(final_weight, lo, hi),
        final_weight_raw=final_weight,
        weighted_population=weighted_population,
        weights_from_day=weights_from_day,
        truncation=truncation,
        end_model=end_model,
        end_population=end_pop,
        end_probability=end_prob,
    )


def _days_off_work(cif: np.ndarray, horizon: int) -> float:
    # restricted mean days not (yet) back at work over days 0..horizon-1: each day counts 1 - CIF
    return float(horizon - np.sum(cif[:horizon]))


def _subgroup_cif(fit: StrategyFit, group: str, n_levels: int, horizons) -> np.ndarray:
    out = np.full((n_levels, len(horizons)), np.nan)
    for level in range(n_levels):
        cif, _, _ = _curves(_level(fit.group_tables[group], level))
        out[level] = cif[list(horizons)]
    return out


def _estimate(settings: _Settings, data) -> tuple[dict[str, np.ndarray], dict[str, StrategyFit]]:
    X, time, event, referral = data["X"], data["time"], data["event"], data["referral"]
    n = time.shape[0]
    hazard = _fit_hazard(settings, X, time, referral)
    unref = None
    if hazard is not None:
        marginal = PooledLogisticHazard(interval_days=settings.hazard_interval_days).fit(
            np.zeros((n, 0)), np.minimum(time, referral), referral <= time, horizon=hazard.horizon_
        )
        unref = _unreferred(hazard, marginal, X, time, referral)
    all_groups = {"all": (np.zeros(n, dtype=np.int64), 1)}
    sub_groups = {g: (data[f"sub/{g}"], len(levels)) for g, levels in settings.subgroups.items()}
    fits = {}
    for name in settings.strategies:
        with_subgroups = settings.subgroup_contrast is not None and name in settings.subgroup_contrast
        groups = {**all_groups, **sub_groups} if with_subgroups else all_groups
        fits[name] = _fit_strategy(settings, name, X, time, event, referral, unref, groups)
    h = list(settings.horizons)
    values: dict[str, np.ndarray] = {}
    for name, f in fits.items():
        values[f"cif/{name}"] = f.cif
        values[f"cif_competing/{name}"] = f.cif_competing
        values[f"km/{name}"] = f.km_rtw
        values[f"days_off/{name}"] = np.array([_days_off_work(f.cif, t) for t in h])
        if settings.subgroup_contrast is not None and name in settings.subgroup_contrast:
            for g, levels in settings.subgroups.items():
                values[f"sub/{g}/{name}"] = _subgroup_cif(f, g, len(levels), h)
    for s1, s0 in settings.contrasts:
        c1, c0 = fits[s1].cif[h], fits[s0].cif[h]
        values[f"rd/{s1}/{s0}"] = c1 - c0
        with np.errstate(divide="ignore", invalid="ignore"):
            values[f"rr/{s1}/{s0}"] = c1 / c0
        values[f"days_off_diff/{s1}/{s0}"] = values[f"days_off/{s1}"] - values[f"days_off/{s0}"]
        log_hr, _ = cause_specific_hazard_ratio(fits[s1].table, fits[s0].table, cause=1)
        values[f"hr/{s1}/{s0}"] = np.array(math.exp(log_hr) if np.isfinite(log_hr) else np.nan)
    if settings.subgroup_contrast:
        s1, s0 = settings.subgroup_contrast
        for g in settings.subgroups:
            values[f"sub_rd/{g}"] = values[f"sub/{g}/{s1}"] - values[f"sub/{g}/{s0}"]
    return values, fits


class _Statistic:
    """Picklable bootstrap statistic: refit the whole design on a resample."""

    def __init__(self, settings: _Settings):
        self.settings = settings

    def __call__(self, data):
        values, _ = _estimate(self.settings, data)
        return values


def _cochran_q(estimates: np.ndarray, variances: np.ndarray) -> float:
    ok = np.isfinite(estimates) & np.isfinite(variances) & (variances > 0)
    if ok.sum() < 2:
        return float("nan")
    e, v = estimates[ok], variances[ok]
    pooled = np.sum(e / v) / np.sum(1 / v)
    q = np.sum((e - pooled) ** 2 / v)
    return float(stats.chi2.sf(q, ok.sum() - 1))


class CloneCensorWeight:
    """Clone-censor-weight emulation of a trial of referral-timing strategies (see module docstring).

    Parameters
    ----------
    grace_period_days : int
        Grace period G of the default strategies ``early = [0, G]`` and ``delayed = [G+1, never]``.
    strategies : dict, optional
        ``{name: (a, b)}`` referral-day windows (``b`` None = no upper limit); overrides the default.
    contrasts : list of (name, name), optional
        Pairs compared (first minus / over second). Default: early vs delayed for the default
        strategies, none otherwise.
    horizons : tuple of int
        Days at which cumulative incidences and contrasts are reported.
    max_day : int, optional
        Last day of the curves (default: the largest horizon).
    truncation_percentiles : (low, high) or None
        Percentiles of each strategy's final weights at which all its weights are clipped.
    hazard_interval_days : int
        Width of the piecewise-constant baseline of the referral-hazard model.
    n_bootstrap, seed, workers : bootstrap settings (``n_bootstrap=0``: point estimates only).
    alpha : float
        1 - confidence level.

    Attributes (after ``fit``)
    --------------------------
    curves_ : DataFrame
        One row per strategy per day 0..max_day: cumulative_incidence (RTW, Aalen-Johansen),
        ci_low, ci_high, cumulative_incidence_competing, one_minus_km (competing events treated as
        censoring, for comparison only), n_at_risk (unweighted clones at risk), weighted_at_risk.
    summary : DataFrame
        One row per measure per arm (or contrast) per horizon: measure, arm (None for contrasts),
        contrast, horizon_days, estimate, ci_low, ci_high, n.
    subgroups_ : DataFrame
        One row per subgroup level per measure per horizon, with the p-value of a heterogeneity
        (interaction) test of the risk differences across levels.
    weights_ : DataFrame
        One row per strategy: distribution of the final weights, truncation caps, effective
        sample size.
    fits_ : dict
        Per-strategy clones and weights (for diagnostics).
    bootstrap_ : BootstrapResult or None
    """

    def __init__(
        self,
        grace_period_days: int = 42,
        strategies: dict[str, tuple[int, int | None]] | None = None,
        contrasts: list[tuple[str, str]] | None = None,
        horizons: tuple[int, ...] = (90, 180, 365),
        max_day: int | None = None,
        truncation_percentiles: tuple[float, float] | None = (1.0, 99.0),
        hazard_interval_days: int = 7,
        l2: float = 1e-4,
        n_bootstrap: int = 200,
        seed: int = 0,
        workers: int | None = None,
        alpha: float = 0.05,
    ):
        self.grace_period_days = grace_period_days
        self.strategies = strategies
        self.contrasts = contrasts
        self.horizons = tuple(int(h) for h in horizons)
        self.max_day = max_day
        self.truncation_percentiles = truncation_percentiles
        self.hazard_interval_days = hazard_interval_days
        self.l2 = l2
        self.n_bootstrap = n_bootstrap
        self.seed = seed
        self.workers = workers
        self.alpha = alpha

    def _settings(self, subgroups: dict[str, list[str]]) -> _Settings:
        if self.strategies is None:
            strategies = grace_period_strategies(self.grace_period_days)
            contrasts = self.contrasts if self.contrasts is not None else [("early", "delayed")]
        else:
            strategies = dict(self.strategies)
            contrasts = list(self.contrasts or [])
        for name, (a, b) in strategies.items():
            if a < 0 or (b is not None and b < a):
                raise IpmError(f"strategy {name}: window [{a}, {b}] is not a valid range of referral days")
        for pair in contrasts:
            for s in pair:
                if s not in strategies:
                    raise IpmError(f"contrast names unknown strategy {s!r}")
        max_day = int(self.max_day if self.max_day is not None else max(self.horizons))
        if any(h > max_day for h in self.horizons):
            raise IpmError("every horizon must be <= max_day")
        return _Settings(
            strategies=strategies,
            contrasts=contrasts,
            horizons=self.horizons,
            max_day=max_day,
            truncation_percentiles=self.truncation_percentiles,
            hazard_interval_days=self.hazard_interval_days,
            l2=self.l2,
            subgroups=subgroups,
            subgroup_contrast=contrasts[0] if contrasts and subgroups else None,
        )

    def fit(
        self,
        df: pd.DataFrame,
        covariates: list[str],
        duration_col: str = "time_days",
        event_col: str = "event",
        referral_col: str = "referral_day",
        subgroup_cols: list[str] | tuple[str, ...] = (),
    ) -> CloneCensorWeight:
        """Clone, censor, weight and estimate.

        Parameters
        ----------
        df : DataFrame
            One row per person: days to event/censoring, event code (0 censored, 1 return to
            work, 2 competing), days to referral (null = none during follow-up), covariates.
        covariates : list of str
            Baseline covariates of the censoring (referral) models.
        subgroup_cols : list of str
            Columns whose levels get their own estimates (using the same weights).

        Returns
        -------
        self
        """
        require_columns(df, [duration_col, event_col, referral_col, *subgroup_cols], "clone-censor-weight")
        time = integer_days(df[duration_col], duration_col)
        event = event_codes(df[event_col], event_col)
        referral = integer_days(df[referral_col], referral_col, nullable=True)
        if len(df) == 0:
            raise IpmError("clone-censor-weight: the analysis table is empty")
        design = build_design(df, covariates)
        data = {"X": design.matrix, "time": time, "event": event, "referral": referral}
        subgroups: dict[str, list[str]] = {}
        for col in subgroup_cols:
            labels = df[col].astype("string").fillna("(missing)")
            levels = sorted(labels.unique())
            subgroups[col] = levels
            data[f"sub/{col}"] = pd.Categorical(labels, categories=levels).codes.astype(np.int64)
        settings = self._settings(subgroups)
        self.settings_ = settings
        self.design_ = design
        values, fits = _estimate(settings, data)
        self.fits_ = fits
        self.values_ = values
        self.n_ = len(df)
        self.bootstrap_ = None
        if self.n_bootstrap > 0:
            # replicates start their Newton-Raphson from the full-data fits (same answer, fewer steps)
            init = {}
            hazard = _fit_hazard(settings, data["X"], time, referral)
            if hazard is not None:
                init["hazard"] = hazard.start_values()
            for name, f in fits.items():
                if f.end_model is not None:
                    init[f"end/{name}"] = (f.end_model.intercept_, f.end_model.coef_)
            replicate_settings = replace(settings, init=init)
            self.bootstrap_ = boot.run(
                _Statistic(replicate_settings),
                data,
                values,
                n_replicates=self.n_bootstrap,
                seed=self.seed,
                workers=self.workers,
            )
        self._tabulate(referral, data)
        return self

    def _interval(self, key: str):
        if self.bootstrap_ is None:
            shape = np.shape(self.values_[key])
            return np.full(shape, np.nan), np.full(shape, np.nan)
        return self.bootstrap_.interval(key, 1 - self.alpha)

    def _tabulate(self, referral, data) -> None:
        s = self.settings_
        h = list(s.horizons)
        days = np.arange(s.max_day + 1)
        curve_rows = []
        for name, f in self.fits_.items():
            lo, hi = self._interval(f"cif/{name}")
            curve_rows.append(
                pd.DataFrame(
                    {
                        "arm": name,
                        "day": days,
                        "cumulative_incidence": f.cif,
                        "ci_low": lo,
                        "ci_high": hi,
                        "cumulative_incidence_competing": f.cif_competing,
                        "one_minus_km": f.km_rtw,
                        "n_at_risk": f.table.n_at_risk.astype(np.int64),
                        "weighted_at_risk": f.table.at_risk,
                    }
                )
            )
        self.curves_ = pd.concat(curve_rows, ignore_index=True)

        rows = []
        for name, f in self.fits_.items():
            n_arm = int(np.sum(f.duration >= 0))
            lo, hi = self._interval(f"cif/{name}")
            for t in h:
                rows.append(
                    dict(measure=CUMULATIVE_INCIDENCE, arm=name, contrast=None, horizon_days=t,
                         estimate=f.cif[t], ci_low=lo[t], ci_high=hi[t], n=n_arm)
                )
            lo, hi = self._interval(f"days_off/{name}")
            for i, t in enumerate(h):
                rows.append(
                    dict(measure="restricted_mean_days_off_work", arm=name, contrast=None, horizon_days=t,
                         estimate=self.values_[f"days_off/{name}"][i], ci_low=lo[i], ci_high=hi[i], n=n_arm)
                )
        for s1, s0 in s.contrasts:
            label = f"{s1} vs {s0}"
            for measure, key in (("risk_difference", "rd"), ("risk_ratio", "rr"), ("rmst_difference", "days_off_diff")):
                k = f"{key}/{s1}/{s0}"
                lo, hi = self._interval(k)
                for i, t in enumerate(h):
                    rows.append(
                        dict(measure=measure, arm=None, contrast=label, horizon_days=t,
                             estimate=self.values_[k][i], ci_low=lo[i], ci_high=hi[i], n=self.n_)
                    )
            k = f"hr/{s1}/{s0}"
            lo, hi = self._interval(k)
            rows.append(
                dict(measure="hazard_ratio", arm=None, contrast=label, horizon_days=s.max_day,
                     estimate=float(self.values_[k]), ci_low=float(lo), ci_high=float(hi), n=self.n_)
            )
        self.summary = pd.DataFrame(rows)

        sub_rows = []
        if s.subgroup_contrast:
            s1, s0 = s.subgroup_contrast
            for g, levels in s.subgroups.items():
                codes = data[f"sub/{g}"]
                rd_key = f"sub_rd/{g}"
                rd = self.values_[rd_key]
                rd_lo, rd_hi = self._interval(rd_key)
                if self.bootstrap_ is not None:
                    with np.errstate(all="ignore"):
                        var = np.nanvar(self.bootstrap_.replicates[rd_key], axis=0, ddof=1)
                else:
                    var = np.full(rd.shape, np.nan)
                p_values = [_cochran_q(rd[:, i], var[:, i]) for i in range(len(h))]
                for li, level in enumerate(levels):
                    n_level = int(np.sum(codes == li))
                    for name in (s1, s0):
                        key = f"sub/{g}/{name}"
                        lo, hi = self._interval(key)
                        for i, t in enumerate(h):
                            sub_rows.append(
                                dict(subgroup=g, level=level, measure=CUMULATIVE_INCIDENCE, arm=name,
                                     horizon_days=t, estimate=self.values_[key][li, i], ci_low=lo[li, i],
                                     ci_high=hi[li, i], n=n_level, p_interaction=np.nan)
                            )
                    for i, t in enumerate(h):
                        sub_rows.append(
                            dict(subgroup=g, level=level, measure="risk_difference", arm=None, horizon_days=t,
                                 estimate=rd[li, i], ci_low=rd_lo[li, i], ci_high=rd_hi[li, i], n=n_level,
                                 p_interaction=p_values[i])
                        )
        self.subgroups_ = pd.DataFrame(
            sub_rows,
            columns=["subgroup", "level", "measure", "arm", "horizon_days", "estimate", "ci_low", "ci_high", "n",
                     "p_interaction"],
        )

        weight_rows = []
        for name, f in self.fits_.items():
            w = f.final_weight[f.weighted_population]
            raw = f.final_weight_raw[f.weighted_population]
            weight_rows.append(
                dict(
                    arm=name,
                    window_start=f.window[0],
                    window_end=f.window[1],
                    weights_from_day=f.weights_from_day,
                    n_weighted=int(w.size),
                    min=float(raw.min()) if w.size else np.nan,
                    p01=float(np.percentile(raw, 1)) if w.size else np.nan,
                    median=float(np.median(raw)) if w.size else np.nan,
                    p99=float(np.percentile(raw, 99)) if w.size else np.nan,
                    max=float(raw.max()) if w.size else np.nan,
                    mean=float(raw.mean()) if w.size else np.nan,
                    truncated_lower=f.truncation["lower"],
                    truncated_upper=f.truncation["upper"],
                    n_truncated=f.truncation["n_truncated"],
                    ess=float(w.sum() ** 2 / np.sum(w**2)) if w.size and np.sum(w**2) > 0 else np.nan,
                )
            )
        self.weights_ = pd.DataFrame(weight_rows)
