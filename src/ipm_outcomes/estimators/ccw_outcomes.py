"""Clone-censor-weight for many outcomes at once: one referral model, one set of weights, every outcome.

:class:`~ipm_outcomes.estimators.ccw.CloneCensorWeight` estimates one outcome whose event ends the
person's follow-up (return to work), so its referral model's person-days end at the outcome. Secondary
and negative-control outcomes (a new diagnosis, long-term opioid use, an emergency visit) do not end
follow-up: a person with a new depression diagnosis on day 10 can still be referred on day 20. For them
the referral (censoring) model is fitted once on the persons' follow-up, which ends at referral, death,
loss or the end of data, whatever happens to any outcome, and its weights serve every outcome:

* **shared**: the clones, the referral model and each person's weight on each day (it depends on the
  person's covariates and referral history only), and, in the bootstrap, one resample of persons per
  replicate, one refit of the referral model and every outcome's curves from it;
* **per outcome**: the event day and type, and the at-risk set: the persons of the outcome's population
  (``in_population``: e.g. no such diagnosis in the baseline year) until their event, death or censoring.

**The assumption that makes one set of weights valid for every outcome.** A clone's weight on day s is
``1 / P(its referral history through day s | X)`` computed from the referral hazard among persons still in
follow-up and not yet referred. For outcome k the weights must use the referral hazard among those
persons *who are also still free of outcome k and in outcome k's population*. The two are the same when
**the daily referral hazard, given the model's covariates X (and being alive, followed and not yet
referred), does not depend on the outcome's own history**: neither on an occurrence of the outcome
before index (the population restriction) nor on one during follow-up (e.g. a new anxiety diagnosis
does not itself make an IPM referral more or less likely on the next day, given X). Where the outcome's
history does drive referral (an emergency visit for back pain that leads to an IPM referral), the shared
weights are misspecified for that outcome and a referral model that also conditions on the outcome's
history would be needed; :class:`~ipm_outcomes.estimators.ccw.CloneCensorWeight` with that outcome as its
duration (the referral model then ends at the outcome) is the per-outcome alternative.

Everything else is the single-outcome estimator's: the strategies ``[a, b]``, the day convention (the
day's outcomes first, a referral after them), the closed-form weights, the weighted Aalen-Johansen
cumulative incidence with death (or any event code 2) competing, and the person-level bootstrap. With
the same referral model (an outcome that cannot occur before the end of follow-up, or persons whose
follow-up is the duration) the estimates equal the single-outcome estimator's (tests/estimators).
Weight truncation is not offered: per-outcome caps would make the weights outcome-specific, and the
study's primary analysis does not truncate.

Contrasts: risk difference and risk ratio of the cumulative incidences at the horizons, and the log risk
ratio (the negative-control estimate of empirical calibration, on the scale calibration works in).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import sparse

from ..errors import IpmError
from ._common import binary_column, build_design, event_codes, integer_days, require_columns, standardize
from ._summary import CUMULATIVE_INCIDENCE, TwoArmSurvivalEstimator, curves, interval_function
from .ccw import _Acc, _add_constant, _Referral, _Settings, _table, strategy_settings
from .survival import EventTable

#: Columns of :attr:`MultiOutcomeCloneCensorWeight.summary`.
SUMMARY_COLUMNS = [
    "outcome", "measure", "arm", "contrast", "horizon_days", "estimate", "ci_low", "ci_high", "se",
    "n", "n_events", "n_at_risk",
]


@dataclass
class OutcomeArm:
    """One outcome's event table under one strategy (unweighted counts in ``n_at_risk``/``n_events``)."""

    outcome: str
    arm: str
    table: EventTable


def _pairs(data, names) -> tuple[np.ndarray, ...]:
    """Every (outcome, person) of the outcomes' populations, stacked: person index, outcome code, time, event."""
    persons = [np.flatnonzero(data[f"pop/{k}"]) for k in names]
    person = np.concatenate(persons) if persons else np.zeros(0, np.int64)
    code = np.repeat(np.arange(len(names)), [p.size for p in persons])
    time = np.concatenate([data[f"time/{k}"][p] for k, p in zip(names, persons, strict=True)]) if persons else person
    event = np.concatenate([data[f"event/{k}"][p] for k, p in zip(names, persons, strict=True)]) if persons else person
    return person, code, time, event


def _inverse_survival(model: _Referral, n: int, days: int) -> np.ndarray:
    """1 / S(s-1 | X) for days s = 0..days-1 and every person: days x n (1 on day 0)."""
    out = np.ones((days, n))
    if days <= 1 or not model.fitted:
        return out
    last = min(days - 1, model.horizon)  # S(s-1) stops changing after the model's last day
    logs = model.log_keep[:, model.interval_of_day[:last]]  # n x last: log P(no referral on day d)
    cum = -np.cumsum(logs, axis=1).T  # last x n: -log S(d) for d = 0..last-1
    out[1 : last + 1] = np.exp(cum)
    if days - 1 > last:
        out[last + 1 :] = out[last]
    return out


def _fit_outcomes(
    settings: _Settings, data, names: tuple[str, ...], counts: bool = True
) -> tuple[dict[str, dict[str, EventTable]], _Referral]:
    """Weighted event tables of every outcome under every strategy, from one referral model (``counts``:
    also the unweighted numbers at risk and of events, which a bootstrap replicate does not need).

    Returns ``{strategy: {outcome: EventTable}}`` (grain of each table: one row per day 0..max_day) and
    the referral model.
    """
    X, follow, referral = data["X"], data["followup"], data["referral"]
    n = follow.shape[0]
    K = len(names)
    D = settings.max_day + 1
    model = _Referral(settings, X, follow, referral)
    person, code, time, event = _pairs(data, names)
    ref = referral[person]
    loops = {
        name: min((b if b is not None else a - 1), D - 1) for name, (a, b) in settings.strategies.items()
    }
    split = _split_pairs(data, names, follow)
    span = max([v for v in loops.values()] + [-1]) + 1
    inv_prev = _inverse_survival(model, n, span) if span > 0 else None
    out: dict[str, dict[str, EventTable]] = {}
    for name, (a, b) in settings.strategies.items():
        acc = _Acc.zeros(K, D)
        s_a = model.survival(a - 1) if model.fitted else np.ones(n)
        if b is not None:
            s_b = model.survival(b) if model.fitted else np.ones(n)
            denom = np.clip(s_a - s_b, 1e-12, None)
            final = 1.0 / denom
        else:
            s_b = denom = None
            final = 1.0 / np.clip(s_a, 1e-12, None)
        L = loops[name] + 1
        if L > 0:
            # weight of a clone not yet referred on day s (days 0..L-1): L x n
            w = inv_prev[:L].copy()
            if b is not None and a + 1 < L:
                w[a + 1 :] = (1.0 - s_b[None, :] * inv_prev[a + 1 : L]) / denom[None, :]
            # each (outcome, person) is at risk unreferred on days 0..min(time, referral, L-1)
            last = np.minimum(np.minimum(time, ref), L)  # L: through the whole loop
            whole = last == L
            whole_counts = np.bincount(person[whole] * K + code[whole], minlength=n * K).reshape(n, K).astype(float)
            acc.at_risk[:, :L] += (w @ whole_counts).T
            if counts:
                acc.n_at_risk[:, :L] += whole_counts.sum(axis=0)[:, None]
            part = ~whole
            if part.any():
                rows = code[part] * L + last[part]
                e = sparse.csr_matrix((np.ones(int(part.sum())), (rows, person[part])), shape=(K * L, n))
                g = np.asarray(e @ w.T).reshape(K, L, L)  # [outcome, last day, day]
                upto = np.tril(np.ones((L, L)))  # [last day v, day s]: at risk on s when v >= s
                acc.at_risk[:, :L] += np.einsum("kvs,vs->ks", g, upto)
                if counts:
                    n_last = np.bincount(rows, minlength=K * L).reshape(K, L)
                    acc.n_at_risk[:, :L] += np.cumsum(n_last[:, ::-1], axis=1)[:, ::-1]
            # events on a day the clone is at risk unreferred (referral on the same day comes after)
            hit = (time < L) & (time <= ref) & (event > 0)
            for c in (1, 2):
                sel = hit & (event == c)
                idx = code[sel] * D + time[sel]
                acc.events[:, :, c - 1] += np.bincount(idx, weights=w[time[sel], person[sel]], minlength=K * D).reshape(K, D)
                if counts:
                    acc.n_events[:, :, c - 1] += np.bincount(idx, minlength=K * D).reshape(K, D)
        _after_window(acc, a, b, final, follow, referral, split, counts)
        out[name] = {k: _table(acc, i) for i, k in enumerate(names)}
    return out, model


def _split_pairs(data, names, follow) -> tuple[np.ndarray, tuple, tuple]:
    """The (outcome, person) pairs by whether their last day is the person's end of follow-up (no outcome
    before it): ``at_end`` (outcomes x persons, 1.0 for such a pair); those of them with an event on that
    day (death, or the outcome on the last day), and the other pairs, each as (person, code, time, event)."""
    n = follow.shape[0]
    at_end = np.zeros((len(names), n))
    ends, others = [], []
    for i, k in enumerate(names):
        pop, time, event = data[f"pop/{k}"], data[f"time/{k}"], data[f"event/{k}"]
        end = pop & (time == follow)
        at_end[i] = end
        ends.append(np.flatnonzero(end & (event > 0)))
        others.append(np.flatnonzero(pop & ~end))

    def stack(persons):
        person = np.concatenate(persons)
        code = np.repeat(np.arange(len(names)), [p.size for p in persons])
        time = np.concatenate([data[f"time/{k}"][p] for k, p in zip(names, persons, strict=True)])
        event = np.concatenate([data[f"event/{k}"][p] for k, p in zip(names, persons, strict=True)])
        return person, code, time, event

    return at_end, stack(ends), stack(others)


def _after_window(acc: _Acc, a: int, b: int | None, final, follow, referral, split, counts: bool) -> None:
    """Add the clones that followed strategy ``[a, b]`` after its window: constant weight ``final`` from the
    day after the referral (``[a, b]``) or from day ``a`` (not referred by then) through the pair's last day,
    and its event there.

    Most pairs have no outcome before the person's end of follow-up (``split``: :func:`_split_pairs`): their
    days at risk are the person's own, so they are summed once per person (one sparse days x persons
    product with the outcomes' membership) instead of once per pair, and only their events are added pair
    by pair; the other pairs are added one by one. The same sums as adding every pair one by one
    (tests/estimators)."""
    at_end, (e_person, e_code, e_time, e_event), (person, code, time, event) = split
    K, D = acc.at_risk.shape
    n = follow.shape[0]
    # the persons who followed the strategy after its window, were their last day the end of follow-up
    if b is not None:
        member = (referral >= a) & (referral <= b) & (referral < follow)
        start = referral + 1
    else:
        member = (referral >= a) & (follow >= a)
        start = np.full(n, a)
    first, last = np.maximum(start, 0), np.minimum(follow, D - 1)
    who = np.flatnonzero(member & (last >= first))
    if who.size:
        cols = np.concatenate([who, who])
        days = np.concatenate([first[who], last[who] + 1])
        for target, w in ((acc.at_risk, final[who]), (acc.n_at_risk, np.ones(who.size)))[: 2 if counts else 1]:
            delta = sparse.csr_matrix((np.concatenate([w, -w]), (days, cols)), shape=(D + 1, n))
            target += np.cumsum(np.asarray(delta @ at_end.T).T, axis=1)[:, :D]
    # their events, on that last day
    ok = member[e_person] & (e_time <= D - 1) & (e_time >= first[e_person])
    for c in (1, 2):
        sel = ok & (e_event == c)
        idx = e_code[sel] * D + e_time[sel]
        acc.events[:, :, c - 1] += np.bincount(idx, weights=final[e_person[sel]], minlength=K * D).reshape(K, D)
        if counts:
            acc.n_events[:, :, c - 1] += np.bincount(idx, minlength=K * D).reshape(K, D)
    # the pairs with an outcome before the end of follow-up, one by one
    ref = referral[person]
    if b is not None:
        members = (ref >= a) & (ref <= b) & (ref < time)
        begin = ref + 1
    else:
        members = (ref >= a) & (time >= a)
        begin = np.full(ref.shape, a)
    _add_constant(acc, code[members], K, D, begin[members], time[members], event[members], final[person[members]], counts)


def outcome_values(tables: dict[str, dict[str, EventTable]], names, contrasts, horizons) -> dict[str, np.ndarray]:
    """Cumulative incidences per outcome and arm (``cif/<outcome>/<arm>``), and the contrasts at the
    horizons (``rd/``, ``rr/``, ``log_rr/<outcome>/<arm 1>/<arm 0>``)."""
    h = list(horizons)
    values: dict[str, np.ndarray] = {}
    for arm, per_outcome in tables.items():
        for k in names:
            cif, cif_comp, _ = curves(per_outcome[k])
            values[f"cif/{k}/{arm}"] = cif
            values[f"cif_competing/{k}/{arm}"] = cif_comp
    for s1, s0 in contrasts:
        for k in names:
            c1, c0 = values[f"cif/{k}/{s1}"][h], values[f"cif/{k}/{s0}"][h]
            values[f"rd/{k}/{s1}/{s0}"] = c1 - c0
            with np.errstate(divide="ignore", invalid="ignore"):
                values[f"rr/{k}/{s1}/{s0}"] = c1 / c0
                values[f"log_rr/{k}/{s1}/{s0}"] = np.log(c1) - np.log(c0)
    # non-finite log ratios (no events in an arm) are NaN, never +-inf, so bootstrap SEs skip them
    for key in [k for k in values if k.startswith(("rr/", "log_rr/"))]:
        values[key] = np.where(np.isfinite(values[key]), values[key], np.nan)
    return values


def _estimate(settings: _Settings, data, names, counts: bool = True):
    tables, model = _fit_outcomes(settings, data, names, counts)
    return outcome_values(tables, names, settings.contrasts, settings.horizons), tables, model


class _Statistic:
    """Picklable bootstrap statistic: refit the referral model once, then every outcome."""

    def __init__(self, settings: _Settings, names: tuple[str, ...]):
        self.settings = settings
        self.names = names

    def __call__(self, data):
        return _estimate(self.settings, data, self.names, counts=False)[0]


class MultiOutcomeCloneCensorWeight(TwoArmSurvivalEstimator):
    """Clone-censor-weight emulation of referral-timing strategies for many outcomes with one referral model.

    See the module docstring for what is shared and the assumption under which that is valid.

    Parameters
    ----------
    grace_period_days, strategies, contrasts, horizons, max_day, hazard_interval_days, hazard_block_days,
    l2, n_bootstrap, seed, workers, alpha :
        As in :class:`~ipm_outcomes.estimators.ccw.CloneCensorWeight` (no weight truncation).

    Attributes (after ``fit``)
    --------------------------
    summary : DataFrame
        One row per outcome per measure per arm (or contrast) per horizon: outcome, measure
        (cumulative_incidence, risk_difference, risk_ratio, log_risk_ratio), arm (None for contrasts),
        contrast, horizon_days, estimate, ci_low, ci_high, se (bootstrap standard error), n (persons in the
        outcome's population), n_events (arms: unweighted events counted in the arm's curve by the horizon;
        contrasts: the smaller of the two arms'), n_at_risk (arms: clones at risk on the horizon day).
    curves_ : DataFrame
        One row per outcome per strategy per day 0..max_day: cumulative_incidence with its band,
        cumulative_incidence_competing, n_at_risk, n_events (cumulative, unweighted).
    tables_ : dict
        ``{strategy: {outcome: EventTable}}``.
    referral_models_ : list
        The fitted referral-hazard models (one per block of days).
    bootstrap_ : BootstrapResult or None
    """

    def __init__(
        self,
        grace_period_days: int = 42,
        strategies: dict[str, tuple[int, int | None]] | None = None,
        contrasts: list[tuple[str, str]] | None = None,
        horizons: tuple[int, ...] = (90, 180, 365),
        max_day: int | None = None,
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
        self.hazard_interval_days = hazard_interval_days
        self.hazard_block_days = hazard_block_days
        self.l2 = l2
        self.n_bootstrap = n_bootstrap
        self.seed = seed
        self.workers = workers
        self.alpha = alpha

    def _settings(self) -> _Settings:
        return strategy_settings(self, None, {})

    def fit(
        self,
        df: pd.DataFrame,
        outcomes: Mapping[str, tuple[str, ...]],
        covariates: list[str],
        followup_col: str = "followup_days",
        referral_col: str = "referral_day",
        categorical: list[str] | tuple[str, ...] = (),
    ) -> MultiOutcomeCloneCensorWeight:
        """Clone, censor, weight once; estimate every outcome.

        Parameters
        ----------
        df : DataFrame
            One row per person: last day of follow-up (death, loss or end of data), referral day (null =
            none during follow-up), covariates, and per outcome its columns.
        outcomes : dict
            ``{outcome: (duration column, event column[, population column])}``: the day of the outcome,
            death (event 2) or censoring, with event code 0 censored, 1 the outcome, 2 competing; the
            optional population column (0/1 or boolean) marks the persons the outcome is analysed in
            (default everyone). Durations of the population must be <= the follow-up.
        covariates : list of str
            Baseline covariates of the referral model.
        categorical : list of str
            Covariates to dummy-code although numeric.

        Returns
        -------
        self
        """
        if not outcomes:
            raise IpmError("multi-outcome clone-censor-weight: no outcomes given")
        names = tuple(str(k) for k in outcomes)
        columns = [c for cols in outcomes.values() for c in cols]
        require_columns(df, [followup_col, referral_col, *columns], "multi-outcome clone-censor-weight")
        if len(df) == 0:
            raise IpmError("multi-outcome clone-censor-weight: the analysis table is empty")
        for k, cols in outcomes.items():
            if len(cols) not in (2, 3):
                raise IpmError(f"outcome {k}: give (duration column, event column[, population column]), got {cols!r}")
        settings = self._settings()
        referral = integer_days(df[referral_col], referral_col, nullable=True)
        follow = integer_days(df[followup_col], followup_col)
        design = build_design(df, covariates, categorical=categorical)
        data = {"X": standardize(design.matrix), "followup": follow, "referral": referral}
        for k, cols in outcomes.items():
            time = integer_days(df[cols[0]], cols[0])
            event = event_codes(df[cols[1]], cols[1])
            pop = binary_column(df, cols[2]) if len(cols) == 3 else np.ones(len(df), bool)
            late = pop & (time > follow)
            if late.any():
                row = int(np.flatnonzero(late)[0])
                raise IpmError(
                    f"column {cols[0]}: row {row} holds day {int(time[row])}, after the end of follow-up "
                    f"({followup_col} = {int(follow[row])}); an outcome must fall within follow-up"
                )
            data[f"time/{k}"], data[f"event/{k}"], data[f"pop/{k}"] = time, event, pop
        self.settings_, self.design_, self.outcomes_ = settings, design, names
        self.n_ = len(df)
        values, tables, model = _estimate(settings, data, names)
        self.values_, self.tables_ = values, tables
        self.referral_models_ = model.models
        init = model.start_values() if model.fitted else {}
        self._bootstrap(_Statistic(replace(settings, init=init), names), data, values)
        self._tabulate(data)
        return self

    def _tabulate(self, data) -> None:
        s = self.settings_
        n_pop = {k: int(data[f"pop/{k}"].sum()) for k in self.outcomes_}
        self.summary, self.curves_ = outcome_tables(
            self.values_, self.tables_, self.outcomes_, s.contrasts, s.horizons, s.max_day, n_pop, self.bootstrap_,
            self.alpha,
        )


def outcome_tables(values, tables, names, contrasts, horizons, max_day, n_pop, bootstrap, alpha):
    """(summary, curves) of a multi-outcome estimator (columns as :class:`MultiOutcomeCloneCensorWeight`'s)
    from its values, ``{arm: {outcome: EventTable}}`` and the bootstrap."""
    h = list(horizons)
    interval = interval_function(values, bootstrap, alpha)

    def se(key):
        if bootstrap is None:
            return np.full(np.shape(values[key]), np.nan)
        return bootstrap.standard_error(key)

    rows, frames = [], []
    days = np.arange(max_day + 1)
    for k in names:
        ev_by_h = {}
        for arm, per_outcome in tables.items():
            t = per_outcome[k]
            events = np.cumsum(t.n_events[:, 0])
            ev_by_h[arm] = events[h]
            key = f"cif/{k}/{arm}"
            lo, hi = interval(key)
            sd = se(key)
            for t_day in h:
                rows.append(dict(outcome=k, measure=CUMULATIVE_INCIDENCE, arm=arm, contrast=None, horizon_days=t_day,
                                 estimate=values[key][t_day], ci_low=lo[t_day], ci_high=hi[t_day], se=sd[t_day],
                                 n=n_pop[k], n_events=int(events[t_day]), n_at_risk=int(t.n_at_risk[t_day])))
            frames.append(pd.DataFrame({
                "outcome": k, "arm": arm, "day": days, "cumulative_incidence": values[key], "ci_low": lo,
                "ci_high": hi, "cumulative_incidence_competing": values[f"cif_competing/{k}/{arm}"],
                "n_at_risk": t.n_at_risk.astype(np.int64), "n_events": events.astype(np.int64),
            }))
        for s1, s0 in contrasts:
            fewer = np.minimum(ev_by_h[s1], ev_by_h[s0])
            for measure, prefix in (("risk_difference", "rd"), ("risk_ratio", "rr"), ("log_risk_ratio", "log_rr")):
                key = f"{prefix}/{k}/{s1}/{s0}"
                lo, hi = interval(key)
                sd = se(key)
                for i, t_day in enumerate(h):
                    rows.append(dict(outcome=k, measure=measure, arm=None, contrast=f"{s1} vs {s0}", horizon_days=t_day,
                                     estimate=values[key][i], ci_low=lo[i], ci_high=hi[i], se=sd[i], n=n_pop[k],
                                     n_events=int(fewer[i]), n_at_risk=None))
    summary = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    return summary, (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame())
