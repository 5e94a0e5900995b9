"""Target-trial emulation by clone-censor-weight (Hernan 2018 BMJ; Maringe et al. 2020 IJE).

The question "does IPM referral within the grace period, rather than later or never, change
return to work?" has an immortal-time trap: a person can only be "delayed" by staying off work
(and enrolled) long enough to be referred late. The emulated trial avoids it by starting every
strategy at index (time zero, day 0) for everyone.

**Strategies.** A strategy is a window of referral days ``[a, b]`` with the timing inside the
window left to its natural course: "IPM within the grace period" is ``[0, G]``, "no IPM within the
grace period" is ``[G+1, never]`` (referral switched off until G, natural afterwards), a delay band
such as 43-90 days is ``[43, 90]``. Formally, under strategy ``[a, b]`` the referral day is drawn
from the person's natural referral-time distribution (given baseline covariates X) restricted to
the window (for ``b = never`` the window includes "never referred").

**Days.** On each day the day's outcomes come first and a referral after them: a person referred
on day r is at risk on day r as not yet referred, and the referral can change outcomes from day
r + 1 (an RTW recorded on the day of the first IPM contact was not caused by it).

**Clone and censor.** Each person is copied into every strategy. A clone is censored when its
person's data stop agreeing with the strategy: after day r if referred on day r < a, and after day
b if not referred by then. An outcome before any deviation counts in every strategy the person
still follows.

**Weight.** Let S(s | X) be the probability of no referral through day s, from a pooled logistic
model of the daily referral hazard among persons at risk (not yet referred, no outcome yet), with
a piecewise-constant baseline and baseline covariates. Each clone-day is weighted by the ratio of
the probability of its referral history under the strategy to its probability as observed
(inverse-probability weighting for a strategy with natural timing, Young et al. 2014). The ratios
telescope to closed forms:

* before the window (days s <= a, not referred before s): ``1 / S(s-1)`` (the usual inverse
  probability of remaining uncensored: referral is what censors these clones);
* inside a finite window (a < s <= b+1), not referred before s:
  ``(1 - S(b)/S(s-1)) / (S(a-1) - S(b))``, falling to 0 after day b (censoring);
* referred on day r in the window, from day r + 1: ``1 / (S(a-1) - S(b))`` (for the grace-period
  strategy ``1 / P(referral within G | X)``); for ``b = never`` every clone from day a on:
  ``1 / S(a-1)``.

Weights can be truncated at percentiles of each strategy's final weights (reported; percentile 0 or
100 means no cap at that end). Truncation at fixed percentiles biases the arms by the same amount
at every size (capping the largest delayed-arm weights, those of the persons most likely to be
referred, leaves that arm too healthy), so the study's primary analysis does not truncate
(benchmarks/README.md, issue 19). Weights need no stabilising numerator: a factor common to every
clone at risk on a day leaves the curves unchanged.

**Outcome.** Return to work with competing events (long-term disability, retirement, death): the
weighted Aalen-Johansen cumulative incidence per strategy on a daily grid, risk differences and
ratios at the horizons, the restricted mean days not back at work (RMST-style) and a weighted
cause-specific Cox hazard ratio. Confidence intervals come from the person-level bootstrap
(persons are resampled, then cloned; the referral model is refitted in every replicate).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import IpmError
from ._common import build_design, event_codes, integer_days, require_columns, standardize
from ._summary import (
    CUMULATIVE_INCIDENCE,
    TwoArmSurvivalEstimator,
    arm_values,
    contrast_values,
    days_off_frame,
    curve_frame,
    curves,
    interval_function,
    summary_frame,
)
from .propensity import PooledLogisticHazard
from .survival import EventTable


def followup_days(values, column: str, durations: np.ndarray, duration_col: str) -> np.ndarray:
    """The follow-up column as int64 days, each at least its person's outcome duration (an outcome is
    observed only during follow-up); one readable error naming the first row that is not."""
    follow = integer_days(values, column)
    short = follow < durations
    if short.any():
        row = int(np.flatnonzero(short)[0])
        raise IpmError(
            f"column {column}: row {row} ends follow-up on day {int(follow[row])}, before its {duration_col} "
            f"{int(durations[row])}; an outcome must fall within follow-up"
        )
    return follow


def grace_period_strategies(grace_period_days: int) -> dict[str, tuple[int, int | None]]:
    """The two strategies of the primary trial: referral within the grace period, or not."""
    g = int(grace_period_days)
    return {"early": (0, g), "delayed": (g + 1, None)}


def clone(time: np.ndarray, event: np.ndarray, referral: np.ndarray, a: int, b: int | None):
    """Follow-up of each person's clone in strategy ``[a, b]``.

    Parameters
    ----------
    time, event : arrays
        Last day of follow-up and event code (0 censored, 1, 2) of each person.
    referral : array
        Referral day (:data:`~ipm_outcomes.estimators._common.NEVER` for none).

    Returns
    -------
    (duration, event)
        Grain: one row per person. The clone's last day at risk and its event code (0 when the
        clone is artificially censored).
    """
    early = (referral < a) & (referral < time)
    duration = np.where(early, referral, time)
    ev = np.where(early, 0, event)
    if b is not None:
        missed = ~early & (time > b) & ~((referral >= a) & (referral <= b))
        duration = np.where(missed, b, duration)
        ev = np.where(missed, 0, ev)
    return duration, ev


@dataclass
class StrategyFit:
    """One strategy's curves and final weights (internal to :class:`CloneCensorWeight`).

    Arrays of length n have one entry per person (= per clone of this strategy). ``final_weight``
    is the (truncated) weight a clone carries once the strategy's window has closed, and
    ``weighted_population`` marks the clones at risk then (day b+1, or day a when b is never).
    """

    name: str
    window: tuple[int, int | None]
    table: EventTable
    group_tables: dict[str, tuple]
    cif: np.ndarray
    cif_competing: np.ndarray
    km_rtw: np.ndarray
    final_weight: np.ndarray
    final_weight_raw: np.ndarray
    weighted_population: np.ndarray
    weights_from_day: int
    truncation: dict = field(default_factory=dict)
    n_clones: int = 0


@dataclass
class _Settings:
    strategies: dict[str, tuple[int, int | None]]
    contrasts: list[tuple[str, str]]
    horizons: tuple[int, ...]
    max_day: int
    truncation_percentiles: tuple[float, float] | None
    hazard_interval_days: int
    block_days: int
    l2: float
    subgroups: dict[str, list[str]]
    subgroup_contrast: tuple[str, str] | None = None
    init: dict = field(default_factory=dict)

    @property
    def hazard_horizon(self) -> int:
        """Days of the referral model: S(s) is needed up to day b (finite windows) and a-1."""
        days = [b + 1 if b is not None else a for a, b in self.strategies.values()]
        return max(days + [0])


class _Referral:
    """The fitted referral-hazard model and S(s | X) for the persons of one (re)sample.

    The days are split into blocks of ``block_days`` (by default the grace period + 1, so the
    primary strategies' weights come from the first block alone, whatever other strategies are
    fitted alongside), and a separate pooled logistic model is fitted in each block among the
    persons still at risk at its start: the covariate effects may change over time (the sickest
    are referred first, so who is left unreferred changes).
    """

    def __init__(self, settings: _Settings, X, time, referral):
        self.horizon = settings.hazard_horizon
        self.models: list[PooledLogisticHazard | None] = []
        self.fitted = False  # no strategy needs the referral model when every window opens on day 0
        if self.horizon <= 0:
            return
        exit_day = np.minimum(referral, time - 1)  # at risk of referral on day s when no outcome by s
        referred = referral < time
        starts = list(range(0, self.horizon, settings.block_days))
        logs, interval_of_day, widths, breaks = [], [], [], []
        offset = 0
        for k, b0 in enumerate(starts):
            b1 = min(b0 + settings.block_days, self.horizon)
            at_risk = exit_day >= b0
            if not at_risk.any():
                h = np.zeros((X.shape[0], 1))
                w = np.array([b1 - b0])
                model = None
            else:
                model = PooledLogisticHazard(
                    interval_days=settings.hazard_interval_days, l2=settings.l2, standardize=False
                ).fit(
                    X[at_risk],
                    exit_day[at_risk] - b0,
                    referred[at_risk],
                    horizon=b1 - b0,
                    init=settings.init.get(f"hazard/{k}"),
                )
                h = model.interval_hazard(X)
                w = np.diff(model.breaks_)
            self.models.append(model)
            logs.append(np.log1p(-np.minimum(h, 1 - 1e-15)))
            interval_of_day.append(np.repeat(np.arange(h.shape[1]) + offset, w))
            widths.append(w)
            breaks.append(b0 + np.concatenate([[0], np.cumsum(w)[:-1]]))
            offset += h.shape[1]
        self.fitted = True
        self.log_keep = np.hstack(logs)  # n x intervals (all blocks)
        self.interval_of_day = np.concatenate(interval_of_day)
        self.widths = np.concatenate(widths)
        self.starts = np.concatenate(breaks)

    def start_values(self) -> dict:
        """Warm starts for the bootstrap replicates, one per block."""
        return {f"hazard/{k}": m.start_values() for k, m in enumerate(self.models) if m is not None}

    def survival(self, day: int) -> np.ndarray:
        """S(day | X) for every person (1 for day < 0)."""
        if not self.fitted:
            return np.ones(0)
        if day < 0:
            return np.ones(self.log_keep.shape[0])
        day = min(day, self.horizon - 1)
        days_in = np.clip(day + 1 - self.starts, 0, self.widths)
        return np.exp(self.log_keep @ days_in)


@dataclass
class _Acc:
    """Accumulators of one strategy in one grouping: arrays L x D (x 2)."""

    at_risk: np.ndarray
    n_at_risk: np.ndarray
    events: np.ndarray
    n_events: np.ndarray

    @classmethod
    def zeros(cls, L: int, D: int) -> _Acc:
        return cls(np.zeros((L, D)), np.zeros((L, D)), np.zeros((L, D, 2)), np.zeros((L, D, 2)))


def _add_constant(acc: _Acc, codes, L, D, start, stop, event, weight, counts: bool = True) -> None:
    """Add persons at risk on days ``start..stop`` with a constant weight and their event (if any)
    on day ``stop``; days beyond the grid (``D`` days) are dropped. ``counts=False`` leaves the unweighted
    counts alone (a bootstrap replicate needs only the weighted ones)."""
    first = np.maximum(start, 0)
    last = np.minimum(stop, D - 1)
    ok = last >= first
    first, last, stop, codes, event, weight = first[ok], last[ok], stop[ok], codes[ok], event[ok], weight[ok]
    size = L * (D + 1)
    enter = codes * (D + 1) + first
    leave = codes * (D + 1) + last + 1
    for target, w in ((acc.at_risk, weight), (acc.n_at_risk, None))[: 2 if counts else 1]:
        delta = np.bincount(enter, weights=w, minlength=size) - np.bincount(leave, weights=w, minlength=size)
        target += np.cumsum(delta.reshape(L, D + 1), axis=1)[:, :D]
    for c in (1, 2):
        sel = (event == c) & (stop <= D - 1)
        idx = codes[sel] * (D + 1) + stop[sel]
        acc.events[:, :, c - 1] += np.bincount(idx, weights=weight[sel], minlength=size).reshape(L, D + 1)[:, :D]
        if counts:
            acc.n_events[:, :, c - 1] += np.bincount(idx, minlength=size).reshape(L, D + 1)[:, :D]


def _table(acc: _Acc, level: int) -> EventTable:
    days = np.arange(acc.at_risk.shape[1], dtype=float)
    return EventTable(days, acc.at_risk[level], acc.events[level], acc.n_at_risk[level], acc.n_events[level])


def _fit_all(settings: _Settings, data) -> tuple[dict[str, StrategyFit], _Referral]:
    """Weights and weighted event tables of every strategy, from one pass over the days."""
    X, time, event, referral = data["X"], data["time"], data["event"], data["referral"]
    n = time.shape[0]
    D = settings.max_day + 1
    # the referral model's person-days end at the outcome, or at the end of follow-up when given
    model = _Referral(settings, X, data.get("followup", time), referral)
    with_subgroups = set(settings.subgroup_contrast or ())
    groupings = {"all": (np.zeros(n, dtype=np.int64), 1)}
    groupings.update({g: (data[f"sub/{g}"], len(levels)) for g, levels in settings.subgroups.items()})

    specs = {}
    for name, (a, b) in settings.strategies.items():
        s_a = model.survival(a - 1)
        if b is not None:
            s_b = model.survival(b)
            denom = np.clip(s_a - s_b, 1e-12, None)
            final_raw = 1.0 / denom
            population = (referral >= a) & (referral <= b) & (referral < time) & (time >= b + 1)
            from_day = b + 1
            loop_last = b
        else:
            s_b = None
            denom = None
            final_raw = 1.0 / np.clip(s_a, 1e-12, None)
            population = (referral >= a) & (time >= a)
            from_day = a
            loop_last = a - 1
        lo = hi = None
        truncation = {"lower": float("nan"), "upper": float("nan"), "n_truncated": 0}
        if settings.truncation_percentiles is not None and (a > 0 or b is not None) and population.any():
            ref = final_raw[population]
            lo, hi = (float(v) for v in np.percentile(ref, settings.truncation_percentiles))
            # The caps are applied to every weight of the strategy (also to clones whose outcome
            # came before the window closed, and to the transitional weights inside it), which can
            # lie outside the range of the reference population: percentile 0 or 100 means no cap
            # at that end, so [0, 100] is exactly no truncation.
            truncation = {"lower": lo, "upper": hi, "n_truncated": int(np.sum((ref < lo) | (ref > hi)))}
            p_lo, p_hi = settings.truncation_percentiles
            lo = -np.inf if p_lo <= 0 else lo
            hi = np.inf if p_hi >= 100 else hi
        groups = [g for g in groupings if g == "all" or name in with_subgroups]
        specs[name] = dict(
            a=a,
            b=b,
            s_a=s_a,
            s_b=s_b,
            denom=denom,
            final_raw=final_raw,
            population=population,
            from_day=from_day,
            loop_last=min(loop_last, D - 1),
            lo=lo,
            hi=hi,
            truncation=truncation,
            acc={g: _Acc.zeros(groupings[g][1], D) for g in groups},
        )

    # Days a clone spends not yet referred, when its weight changes daily: one pass over the days
    # with the persons at risk and not yet referred on day s (min(time, referral) >= s) kept as a
    # shrinking prefix of the persons sorted by that day.
    last_loop = max([sp["loop_last"] for sp in specs.values()] + [-1])
    if last_loop >= 0:
        u = np.minimum(time, referral)
        order = np.argsort(-u, kind="stable")
        u_sorted = u[order]
        counts = np.bincount(np.clip(u_sorted, -1, last_loop + 1) + 1, minlength=last_loop + 3)
        count_ge = np.cumsum(counts[::-1])[::-1][1:]  # count_ge[s] = persons with u >= s
        t_sorted, e_sorted = time[order], event[order]
        log_keep = np.ascontiguousarray(model.log_keep[order].T) if model.fitted else None
        codes_sorted = {g: c[order] for g, (c, _) in groupings.items()}
        per_strategy_sorted = {
            name: (
                sp["s_a"][order],
                None if sp["s_b"] is None else sp["s_b"][order],
                None if sp["denom"] is None else sp["denom"][order],
            )
            for name, sp in specs.items()
        }
        cum = np.zeros(n)  # -log S(s-1) for the prefix
        for s in range(last_loop + 1):
            k = int(count_ge[s])
            if k == 0:
                break
            k1 = int(count_ge[s + 1])
            inv_prev = np.exp(cum[:k])  # 1 / S(s-1)
            tail_event = np.where(t_sorted[k1:k] == s, e_sorted[k1:k], 0)
            for name, sp in specs.items():
                if s > sp["loop_last"]:
                    continue
                a = sp["a"]
                if s <= a:
                    w = inv_prev
                else:
                    _, s_b, denom = per_strategy_sorted[name]
                    w = (1.0 - s_b[:k] * inv_prev) / denom[:k]
                if sp["hi"] is not None:
                    # transitional weights (the upper cap only: before the window closes the
                    # weights of clones not yet referred legitimately fall towards 0)
                    w = np.minimum(w, sp["hi"])
                w_tail = w[k1:k]
                for g, acc in sp["acc"].items():
                    L = groupings[g][1]
                    if L == 1:
                        acc.at_risk[0, s] += w.sum()
                        acc.n_at_risk[0, s] += k
                        for c in (1, 2):
                            sel = tail_event == c
                            acc.events[0, s, c - 1] += w_tail[sel].sum()
                            acc.n_events[0, s, c - 1] += sel.sum()
                    else:
                        codes = codes_sorted[g][:k]
                        acc.at_risk[:, s] += np.bincount(codes, weights=w, minlength=L)
                        acc.n_at_risk[:, s] += np.bincount(codes, minlength=L)
                        tail_codes = codes[k1:k]
                        for c in (1, 2):
                            sel = tail_event == c
                            acc.events[:, s, c - 1] += np.bincount(tail_codes[sel], weights=w_tail[sel], minlength=L)
                            acc.n_events[:, s, c - 1] += np.bincount(tail_codes[sel], minlength=L)
            if log_keep is not None and s < model.horizon:
                cum[:k] -= log_keep[model.interval_of_day[s], :k]

    fits = {}
    for name, sp in specs.items():
        a, b = sp["a"], sp["b"]
        final = sp["final_raw"] if sp["lo"] is None else np.clip(sp["final_raw"], sp["lo"], sp["hi"])
        if b is not None:
            # referred within the window: constant weight from the day after the referral
            members = (referral >= a) & (referral <= b) & (referral < time)
            start = referral + 1
        else:
            # from day a on every clone (referred since or not) carries 1 / S(a-1)
            members = (referral >= a) & (time >= a)
            start = np.full(n, a)
        for g, acc in sp["acc"].items():
            codes, L = groupings[g]
            _add_constant(acc, codes[members], L, D, start[members], time[members], event[members], final[members])
        tables = sp["acc"]
        table = _table(tables["all"], 0)
        cif, cif_comp, km = curves(table)
        fits[name] = StrategyFit(
            name=name,
            window=(a, b),
            table=table,
            group_tables=tables,
            cif=cif,
            cif_competing=cif_comp,
            km_rtw=km,
            final_weight=np.where(sp["population"], final, np.nan),
            final_weight_raw=np.where(sp["population"], sp["final_raw"], np.nan),
            weighted_population=sp["population"],
            weights_from_day=sp["from_day"],
            truncation=sp["truncation"],
            n_clones=n,
        )
    return fits, model


def _subgroup_cif(fit: StrategyFit, group: str, n_levels: int, horizons) -> np.ndarray:
    out = np.full((n_levels, len(horizons)), np.nan)
    for level in range(n_levels):
        cif, _, _ = curves(_table(fit.group_tables[group], level))
        out[level] = cif[list(horizons)]
    return out


def _estimate(settings: _Settings, data) -> tuple[dict[str, np.ndarray], dict[str, StrategyFit], _Referral]:
    fits, model = _fit_all(settings, data)
    h = list(settings.horizons)
    with_subgroups = set(settings.subgroup_contrast or ())
    values: dict[str, np.ndarray] = {}
    for name, f in fits.items():
        arm_values(values, name, f.table, h)
        if name in with_subgroups:
            for g, levels in settings.subgroups.items():
                values[f"sub/{g}/{name}"] = _subgroup_cif(f, g, len(levels), h)
    for s1, s0 in settings.contrasts:
        contrast_values(values, s1, s0, fits[s1].table, fits[s0].table, h)
    if settings.subgroup_contrast:
        s1, s0 = settings.subgroup_contrast
        for g in settings.subgroups:
            values[f"sub_rd/{g}"] = values[f"sub/{g}/{s1}"] - values[f"sub/{g}/{s0}"]
    return values, fits, model


class _Statistic:
    """Picklable bootstrap statistic: refit the whole design on a resample."""

    def __init__(self, settings: _Settings):
        self.settings = settings

    def __call__(self, data):
        return _estimate(self.settings, data)[0]


def cochran_q_pvalue(estimates: np.ndarray, variances: np.ndarray) -> float:
    """P-value of Cochran's Q test that the estimates of several subgroup levels are equal."""
    ok = np.isfinite(estimates) & np.isfinite(variances) & (variances > 0)
    if ok.sum() < 2:
        return float("nan")
    e, v = estimates[ok], variances[ok]
    pooled = np.sum(e / v) / np.sum(1 / v)
    q = np.sum((e - pooled) ** 2 / v)
    return float(stats.chi2.sf(q, ok.sum() - 1))


def strategy_settings(
    estimator: TwoArmSurvivalEstimator, truncation_percentiles, subgroups: dict[str, list[str]]
) -> _Settings:
    """The validated settings of a clone-censor-weight estimator (one outcome or many): its strategies
    (default: the grace period's two) and contrasts, the curves' grid, the referral model's settings."""
    if estimator.strategies is None:
        strategies = grace_period_strategies(estimator.grace_period_days)
        contrasts = estimator.contrasts if estimator.contrasts is not None else [("early", "delayed")]
    else:
        strategies = dict(estimator.strategies)
        contrasts = list(estimator.contrasts or [])
    horizons, max_day = estimator._grid()
    for name, (a, b) in strategies.items():
        if a < 0 or (b is not None and b < a) or a > max_day:
            raise IpmError(f"strategy {name}: window [{a}, {b}] is not a valid range of referral days")
    for pair in contrasts:
        for s in pair:
            if s not in strategies:
                raise IpmError(f"contrast names unknown strategy {s!r}")
    return _Settings(
        strategies=strategies,
        contrasts=contrasts,
        horizons=horizons,
        max_day=max_day,
        truncation_percentiles=truncation_percentiles,
        hazard_interval_days=estimator.hazard_interval_days,
        block_days=int(estimator.hazard_block_days or estimator.grace_period_days + 1),
        l2=estimator.l2,
        subgroups=subgroups,
        subgroup_contrast=contrasts[0] if contrasts and subgroups else None,
    )


class CloneCensorWeight(TwoArmSurvivalEstimator):
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
        Percentiles of each strategy's final weights; every weight of the strategy is clipped to
        them (default: none).
    hazard_interval_days : int
        Width of the piecewise-constant baseline of the referral-hazard model.
    hazard_block_days : int, optional
        Length of the blocks of days with their own covariate effects in the referral model
        (default: grace period + 1).
    l2 : float
        Ridge penalty of the referral model (0 = maximum likelihood; see :class:`PooledLogisticHazard`).
    n_bootstrap, seed, workers : bootstrap settings (``n_bootstrap=0``: point estimates only).
    alpha : float
        1 - confidence level.

    Attributes (after ``fit``)
    --------------------------
    curves_ : DataFrame
        One row per strategy per day 0..max_day: cumulative_incidence (RTW, Aalen-Johansen),
        ci_low, ci_high, cumulative_incidence_competing, one_minus_km (competing events treated as
        censoring; for comparison only, it overstates RTW), n_at_risk (unweighted clones at risk),
        weighted_at_risk.
    summary : DataFrame
        One row per measure per arm (or contrast) per horizon: measure, arm (None for contrasts),
        contrast, horizon_days, estimate, ci_low, ci_high, n.
    subgroups_ : DataFrame
        One row per subgroup level per measure (per arm) per horizon, with the p-value of a test of
        heterogeneity (interaction) of the risk differences across the levels (Cochran's Q with
        bootstrap variances).
    weights_ : DataFrame
        One row per strategy: distribution of the final weights (normalised to mean 1), truncation
        caps and count, effective sample size.
    fits_ : dict
        Per-strategy curves and final weights (for diagnostics).
    referral_score_ : array
        Model-based probability of referral within the grace period, 1 - S(G | X), per person
        (the propensity of the primary contrast; for equipoise diagnostics).
    bootstrap_ : BootstrapResult or None
    """

    def __init__(
        self,
        grace_period_days: int = 42,
        strategies: dict[str, tuple[int, int | None]] | None = None,
        contrasts: list[tuple[str, str]] | None = None,
        horizons: tuple[int, ...] = (90, 180, 365),
        max_day: int | None = None,
        truncation_percentiles: tuple[float, float] | None = None,
        hazard_interval_days: int = 7,
        hazard_block_days: int | None = None,
        l2: float = 0.0,
        n_bootstrap: int = 200,
        seed: int = 0,
        workers: int | None = None,
        alpha: float = 0.05,
    ):
        self.grace_period_days = grace_period_days
        self.strategies = strategies
        self.contrasts = contrasts
        self.horizons = horizons
        self.max_day = max_day
        self.truncation_percentiles = truncation_percentiles
        self.hazard_interval_days = hazard_interval_days
        self.hazard_block_days = hazard_block_days
        self.l2 = l2
        self.n_bootstrap = n_bootstrap
        self.seed = seed
        self.workers = workers
        self.alpha = alpha

    def _settings(self, subgroups: dict[str, list[str]]) -> _Settings:
        return strategy_settings(self, self.truncation_percentiles, subgroups)

    def referral_survival(self, X: np.ndarray, time, referral, days, init: dict | None = None) -> np.ndarray:
        """S(s | X), the probability of no referral through day s, from this estimator's referral model.

        The model (pooled logistic daily hazard, blocks of days, the settings of this estimator) is
        fitted to the persons given, as :meth:`fit` fits it; the cost estimator
        (:class:`~ipm_outcomes.estimators.costs.CloneCensorCost`) weights with it.

        Parameters
        ----------
        X : array (n, p)
            Standardised design matrix of the baseline covariates.
        time : array of int
            Persons are at risk of referral on days 0..time-1.
        referral : array of int
            Referral day (:data:`~ipm_outcomes.estimators._common.NEVER` for none).
        days : sequence of int
            The days s.
        init : dict, optional
            Warm starts of a fit on similar data (:meth:`referral_start_values` of the full data, for a
            bootstrap replicate: the same solution in fewer iterations, as :meth:`fit`'s replicates).

        Returns
        -------
        array (n, len(days))
            Grain: one row per person, one column per day.
        """
        return self.referral_fit(X, time, referral, days, init)[0]

    def referral_fit(self, X: np.ndarray, time, referral, days, init: dict | None = None) -> tuple[np.ndarray, dict]:
        """:meth:`referral_survival` and the fitted model's warm starts for bootstrap replicates ({} when no
        model is needed)."""
        time = np.asarray(time, dtype=np.int64)
        settings = replace(self._settings({}), init=dict(init or {}))
        model = _Referral(settings, np.asarray(X, dtype=float), time, np.asarray(referral, dtype=np.int64))
        if not model.fitted:
            return np.ones((len(time), len(days))), {}
        return np.column_stack([model.survival(int(d)) for d in days]), model.start_values()

    def fit(
        self,
        df: pd.DataFrame,
        covariates: list[str],
        duration_col: str = "time_days",
        event_col: str = "event",
        referral_col: str = "referral_day",
        subgroup_cols: list[str] | tuple[str, ...] = (),
        categorical: list[str] | tuple[str, ...] = (),
        followup_col: str | None = None,
    ) -> CloneCensorWeight:
        """Clone, censor, weight and estimate.

        Parameters
        ----------
        df : DataFrame
            One row per person: last day of follow-up, event code (0 censored, 1 return to work,
            2 competing), referral day (null = none during follow-up), covariates.
        covariates : list of str
            Baseline covariates of the referral model.
        subgroup_cols : list of str
            Columns whose levels get their own estimates (same weights).
        categorical : list of str
            Covariates to dummy-code although numeric (see :func:`~ipm_outcomes.estimators.design.build_design`).
        followup_col : str, optional
            Last day of each person's follow-up (death, loss or end of data), when the outcome does not
            end it: the referral model's person-days then run to this day instead of to the outcome
            (persons stay at risk of referral after an outcome that does not end follow-up, such as a new
            diagnosis). Default: the duration column (the outcome ends follow-up, as return to work does).
            Every duration must be <= its follow-up.

        Returns
        -------
        self
        """
        require_columns(
            df, [duration_col, event_col, referral_col, *subgroup_cols, *([followup_col] if followup_col else [])],
            "clone-censor-weight",
        )
        if len(df) == 0:
            raise IpmError("clone-censor-weight: the analysis table is empty")
        time = integer_days(df[duration_col], duration_col)
        event = event_codes(df[event_col], event_col)
        referral = integer_days(df[referral_col], referral_col, nullable=True)
        design = build_design(df, covariates, categorical=categorical)
        # the models see covariates standardised once with full-data moments, so every bootstrap
        # replicate works on the same scale (and warm starts from the full-data fit are exact)
        data = {"X": standardize(design.matrix), "time": time, "event": event, "referral": referral}
        if followup_col is not None:
            data["followup"] = followup_days(df[followup_col], followup_col, time, duration_col)
        subgroups: dict[str, list[str]] = {}
        for col in subgroup_cols:
            labels = df[col].astype("string").fillna("(missing)")
            levels = sorted(labels.unique())
            subgroups[col] = levels
            data[f"sub/{col}"] = pd.Categorical(labels, categories=levels).codes.astype(np.int64)
        settings = self._settings(subgroups)
        self.settings_ = settings
        self.design_ = design
        self.n_ = len(df)
        values, fits, model = _estimate(settings, data)
        self.fits_ = fits
        self.values_ = values
        self.referral_models_ = model.models
        grace = [b for a, b in settings.strategies.values() if a == 0 and b is not None]
        self.referral_score_ = 1.0 - model.survival(grace[0]) if grace and model.fitted else None
        # replicates start Newton-Raphson from the full-data fit (same answer, fewer steps)
        init = model.start_values() if model.fitted else {}
        self._bootstrap(_Statistic(replace(settings, init=init)), data, values)
        self._tabulate(data)
        return self

    def _tabulate(self, data) -> None:
        s = self.settings_
        h = list(s.horizons)
        interval = interval_function(self.values_, self.bootstrap_, self.alpha)
        self._interval = interval
        self._days_off_inputs = (self.values_, interval, {k: f.n_clones for k, f in self.fits_.items()}, self.n_)
        self.curves_ = curve_frame(self.values_, interval, {k: f.table for k, f in self.fits_.items()}, s.max_day)
        self.summary = summary_frame(
            self.values_, interval, {k: f.n_clones for k, f in self.fits_.items()}, s.contrasts, h, self.n_, s.max_day
        )

        sub_rows = []
        if s.subgroup_contrast:
            s1, s0 = s.subgroup_contrast
            for g, levels in s.subgroups.items():
                codes = data[f"sub/{g}"]
                rd_key = f"sub_rd/{g}"
                rd = self.values_[rd_key]
                rd_lo, rd_hi = self._interval(rd_key)
                var = (
                    self.bootstrap_.standard_error(rd_key) ** 2
                    if self.bootstrap_ is not None
                    else np.full(rd.shape, np.nan)
                )
                p_values = [cochran_q_pvalue(rd[:, i], var[:, i]) for i in range(len(h))]
                for li, level in enumerate(levels):
                    n_level = int(np.sum(codes == li))
                    for name in (s1, s0):
                        key = f"sub/{g}/{name}"
                        lo, hi = self._interval(key)
                        for i, t in enumerate(h):
                            sub_rows.append(
                                dict(
                                    subgroup=g,
                                    level=level,
                                    measure=CUMULATIVE_INCIDENCE,
                                    arm=name,
                                    horizon_days=t,
                                    estimate=self.values_[key][li, i],
                                    ci_low=lo[li, i],
                                    ci_high=hi[li, i],
                                    n=n_level,
                                    p_interaction=np.nan,
                                )
                            )
                    for i, t in enumerate(h):
                        sub_rows.append(
                            dict(
                                subgroup=g,
                                level=level,
                                measure="risk_difference",
                                arm=None,
                                horizon_days=t,
                                estimate=rd[li, i],
                                ci_low=rd_lo[li, i],
                                ci_high=rd_hi[li, i],
                                n=n_level,
                                p_interaction=p_values[i],
                            )
                        )
        self.subgroups_ = pd.DataFrame(
            sub_rows,
            columns=[
                "subgroup",
                "level",
                "measure",
                "arm",
                "horizon_days",
                "estimate",
                "ci_low",
                "ci_high",
                "n",
                "p_interaction",
            ],
        )

        weight_rows = []
        for name, f in self.fits_.items():
            pop = f.weighted_population
            raw = f.final_weight_raw[pop]
            w = f.final_weight[pop]
            scale = raw.mean() if raw.size else np.nan
            q = np.percentile(raw / scale, [1, 50, 99]) if raw.size else [np.nan] * 3
            weight_rows.append(
                dict(
                    arm=name,
                    window_start=f.window[0],
                    window_end=f.window[1],
                    weights_from_day=f.weights_from_day,
                    n_weighted=int(raw.size),
                    min=float(raw.min() / scale) if raw.size else np.nan,
                    p01=float(q[0]),
                    median=float(q[1]),
                    p99=float(q[2]),
                    max=float(raw.max() / scale) if raw.size else np.nan,
                    truncated_lower=f.truncation["lower"] / scale if raw.size else np.nan,
                    truncated_upper=f.truncation["upper"] / scale if raw.size else np.nan,
                    n_truncated=f.truncation["n_truncated"],
                    ess=float(w.sum() ** 2 / np.sum(w**2)) if w.size and np.sum(w**2) > 0 else np.nan,
                )
            )
        self.weights_ = pd.DataFrame(weight_rows)

