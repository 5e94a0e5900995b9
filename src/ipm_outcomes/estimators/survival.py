"""Weighted Kaplan-Meier and Aalen-Johansen curves, vectorised with numpy.

Every causal method here ends in a weighted survival curve: clone-censor-weight clones carry
weights that change day by day during the grace period, landmark and IPTW analyses carry one
weight per person. lifelines' fitters take one weight per row and are slow at 10^5 rows inside a
bootstrap, so the curves are computed from aggregated event tables instead (one ``np.bincount``
per weight segment), which costs O(n) per curve.

Weights may be time-varying: ``weights`` is then an ``n x K`` matrix and ``weight_breaks`` the
``K`` times from which each column applies (column ``k`` is used for risk sets at times ``t`` with
``weight_breaks[k] <= t < weight_breaks[k+1]``; the last column applies to the end of follow-up).

Ties: at a time ``t`` all events happen before the censorings at ``t`` (a person censored at
``t`` is in the risk set at ``t``), as in lifelines and R's ``survival``. Events of different
causes at the same time are handled exactly by the Aalen-Johansen product (no jittering).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import IpmError
from .base import BaseEstimator


@dataclass
class EventTable:
    """Aggregated risk sets and events; grain: one row per time in ``times``.

    ``at_risk``/``events`` are weighted sums; ``n_at_risk``/``n_events`` are unweighted counts.
    ``events`` and ``n_events`` have one column per cause ``1..n_causes``.
    """

    times: np.ndarray
    at_risk: np.ndarray
    events: np.ndarray
    n_at_risk: np.ndarray
    n_events: np.ndarray

    def to_frame(self) -> pd.DataFrame:
        """The table as a DataFrame indexed by time (columns at_risk, events_<k>, n_at_risk, n_events_<k>)."""
        data = {"at_risk": self.at_risk, "n_at_risk": self.n_at_risk}
        for k in range(self.events.shape[1]):
            data[f"events_{k + 1}"] = self.events[:, k]
            data[f"n_events_{k + 1}"] = self.n_events[:, k]
        return pd.DataFrame(data, index=pd.Index(self.times, name="time"))


def event_table(
    durations,
    events,
    weights=None,
    *,
    weight_breaks=None,
    timeline=None,
    n_causes: int | None = None,
) -> EventTable:
    """Weighted risk sets and event counts.

    Parameters
    ----------
    durations : array of float, length n
        Time of the event or censoring.
    events : array of int, length n
        0 censored, ``k >= 1`` event of cause ``k``.
    weights : None, array of length n, or array n x K
        Row weights; a matrix gives time-varying weights (see module docstring).
    weight_breaks : array of length K, optional
        Times from which each weight column applies; required with a weight matrix.
    timeline : array, optional
        Times at which to tabulate. Default: the sorted distinct durations. When given, every
        duration inside its range must be one of its values (e.g. whole days on a daily grid);
        rows beyond its end count as at risk throughout.
    n_causes : int, optional
        Number of causes to tabulate (default: the largest event code, at least 1).

    Returns
    -------
    EventTable
        One row per time.
    """
    t = np.asarray(durations, dtype=float)
    e = np.asarray(events).astype(np.int64)
    n = t.shape[0]
    if e.shape[0] != n:
        raise IpmError("durations and events have different lengths")
    if n_causes is None:
        n_causes = max(int(e.max()) if n else 1, 1)
    if timeline is None:
        times, idx = np.unique(t, return_inverse=True)
    else:
        times = np.asarray(timeline, dtype=float)
        idx = np.searchsorted(times, t, side="left")
        inside = idx < times.shape[0]
        if np.any(times[idx[inside]] != t[inside]):
            raise IpmError("durations fall between the points of the timeline; use a timeline holding every duration")
    m = times.shape[0]
    counts = np.bincount(idx, minlength=m + 1)
    n_at_risk = np.cumsum(counts[::-1])[::-1][:m]
    n_events = np.zeros((m, n_causes))
    for k in range(1, n_causes + 1):
        sel = e == k
        n_events[:, k - 1] = np.bincount(idx[sel], minlength=m + 1)[:m]

    if weights is None:
        return EventTable(times, n_at_risk.astype(float), n_events.copy(), n_at_risk, n_events)

    w = np.asarray(weights, dtype=float)
    if w.ndim == 1:
        if w.shape[0] != n:
            raise IpmError("weights and durations have different lengths")
        w = w[:, None]
        breaks = np.array([-np.inf])
    else:
        if weight_breaks is None:
            raise IpmError("a weight matrix needs weight_breaks (the time each column starts to apply)")
        breaks = np.asarray(weight_breaks, dtype=float)
        if w.shape != (n, breaks.shape[0]):
            raise IpmError("weight matrix must be n rows by len(weight_breaks) columns")
    if np.any(~np.isfinite(w)) or np.any(w < 0):
        raise IpmError("weights must be finite and >= 0")
    seg = np.clip(np.searchsorted(breaks, times, side="right") - 1, 0, None)

    # At-risk weight at time j is the sum over rows with idx >= j of that row's weight in the
    # segment of time j: accumulate rows in decreasing idx order once, then read the running sum.
    order = np.argsort(-idx, kind="stable")
    running = w[order]
    np.cumsum(running, axis=0, out=running)
    last_row = n_at_risk - 1  # rows with idx >= j are the first n_at_risk[j] rows of `order`
    at_risk = np.where(last_row >= 0, running[np.clip(last_row, 0, None), seg], 0.0)

    row_seg = seg[np.clip(idx, 0, m - 1)]
    w_at_own_time = w[np.arange(n), row_seg]
    ev = np.zeros((m, n_causes))
    for k in range(1, n_causes + 1):
        sel = (e == k) & (idx < m)
        ev[:, k - 1] = np.bincount(idx[sel], weights=w_at_own_time[sel], minlength=m)[:m]
    return EventTable(times, at_risk, ev, n_at_risk, n_events)


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros_like(num, dtype=float)
    np.divide(num, den, out=out, where=den > 0)
    return out


def aalen_johansen(table: EventTable) -> tuple[np.ndarray, np.ndarray]:
    """Overall event-free survival and cumulative incidence of each cause.

    Returns
    -------
    survival : array (m,)
        P(no event of any cause by time t).
    cif : array (m, n_causes)
        Aalen-Johansen cumulative incidence of each cause by time t.
    """
    hazard = _safe_ratio(table.events, table.at_risk[:, None])
    survival = np.cumprod(1.0 - hazard.sum(axis=1))
    lagged = np.concatenate([[1.0], survival[:-1]])
    cif = np.cumsum(lagged[:, None] * hazard, axis=0)
    return survival, cif


def kaplan_meier(table: EventTable, cause: int = 1) -> np.ndarray:
    """Kaplan-Meier survival for ``cause``, every other cause treated as censoring."""
    hazard = _safe_ratio(table.events[:, cause - 1], table.at_risk)
    return np.cumprod(1.0 - hazard)


def step_at(times: np.ndarray, values: np.ndarray, at, before: float = 0.0) -> np.ndarray:
    """Right-continuous step function (``values`` at ``times``) evaluated at ``at``."""
    at = np.atleast_1d(np.asarray(at, dtype=float))
    pos = np.searchsorted(times, at, side="right") - 1
    vals = np.asarray(values)
    out = np.where(pos >= 0, vals[np.clip(pos, 0, None)] if vals.size else before, before)
    return out


def restricted_mean(
    times: np.ndarray, curve: np.ndarray, horizon: float, start: float = 0.0, before: float = 1.0
) -> float:
    """Integral of a right-continuous step curve over ``[start, horizon]``.

    With ``curve`` = 1 - cumulative incidence of return to work this is the restricted mean number
    of days not back at work by ``horizon``.
    """
    inside = (times > start) & (times < horizon)
    knots = np.concatenate([[start], times[inside], [horizon]])
    vals = step_at(times, curve, knots[:-1], before=before)
    return float(np.sum(vals * np.diff(knots)))


def cause_specific_hazard_ratio(
    treated: EventTable, control: EventTable, cause: int = 1, max_iter: int = 50
) -> tuple[float, float]:
    """Weighted Cox hazard ratio (treated vs control) for one cause, from two event tables.

    A Cox model with a single binary covariate depends on the data only through the weighted
    number at risk and of events per arm at each event time, so it can be fitted from the tables
    (Breslow ties) in microseconds; with time-varying clone weights this is the weighted
    cause-specific Cox model of the clone-censor-weight design.

    Returns
    -------
    (log_hr, se)
        ``se`` is the model-based standard error, valid only for unweighted data (use the
        bootstrap otherwise). ``nan`` when an arm has no events.
    """
    if not np.array_equal(treated.times, control.times):
        raise IpmError("event tables of the two arms must share one timeline")
    d1 = treated.events[:, cause - 1]
    d0 = control.events[:, cause - 1]
    y1, y0 = treated.at_risk, control.at_risk
    keep = (d1 + d0 > 0) & (y1 > 0) & (y0 > 0)
    d1, d0, y1, y0 = d1[keep], d0[keep], y1[keep], y0[keep]
    if d1.sum() <= 0 or d0.sum() <= 0:
        return float("nan"), float("nan")
    d = d1 + d0
    beta = np.log((d1.sum() / y1.sum()) / (d0.sum() / y0.sum()))
    info = np.nan
    for _ in range(max_iter):
        r = y1 * np.exp(beta)
        p = r / (r + y0)
        score = np.sum(d1 - d * p)
        info = np.sum(d * p * (1 - p))
        step = score / info
        beta += step
        if abs(step) < 1e-12:
            break
    r = y1 * np.exp(beta)
    p = r / (r + y0)
    info = np.sum(d * p * (1 - p))
    return float(beta), float(1.0 / np.sqrt(info))


class WeightedAalenJohansenFitter(BaseEstimator):
    """Cumulative incidence with competing events (Aalen-Johansen), with optional weights.

    Parameters
    ----------
    event_of_interest : int
        Event code whose cumulative incidence is reported (other non-zero codes compete).
    label : str
        Column name of the estimate.

    Attributes (after ``fit``)
    --------------------------
    cumulative_incidence_ : DataFrame
        One row per time; column ``label``.
    overall_survival_ : DataFrame
        One row per time; probability of no event of any cause.
    event_table_ : DataFrame
        One row per time: weighted and unweighted at-risk and event counts.
    """

    def __init__(self, event_of_interest: int = 1, label: str = "AJ_estimate"):
        self.event_of_interest = event_of_interest
        self.label = label

    def fit(self, durations, events, weights=None, weight_breaks=None, timeline=None) -> WeightedAalenJohansenFitter:
        """Fit to durations and event codes (0 censored, k >= 1 cause k); returns self."""
        e = np.asarray(events).astype(np.int64)
        n_causes = max(int(e.max()) if e.size else 1, self.event_of_interest)
        table = event_table(durations, e, weights, weight_breaks=weight_breaks, timeline=timeline, n_causes=n_causes)
        survival, cif = aalen_johansen(table)
        index = pd.Index(table.times, name="timeline")
        self.table_ = table
        self.timeline_ = table.times
        self.cumulative_incidence_ = pd.DataFrame({self.label: cif[:, self.event_of_interest - 1]}, index=index)
        self.overall_survival_ = pd.DataFrame({self.label: survival}, index=index)
        self.event_table_ = table.to_frame()
        return self

    def predict(self, times) -> np.ndarray:
        """Cumulative incidence at ``times`` (0 before the first time)."""
        return step_at(self.timeline_, self.cumulative_incidence_[self.label].to_numpy(), times, before=0.0)

    def restricted_mean_event_free_time(self, horizon: float) -> float:
        """Integral of 1 - cumulative incidence over [0, horizon] (e.g. mean days not back at work)."""
        return restricted_mean(self.timeline_, 1.0 - self.cumulative_incidence_[self.label].to_numpy(), horizon)


class WeightedKaplanMeierFitter(BaseEstimator):
    """Kaplan-Meier survival with optional (time-varying) weights.

    Attributes (after ``fit``)
    --------------------------
    survival_function_ : DataFrame
        One row per time; column ``label``.
    event_table_ : DataFrame
        One row per time: weighted and unweighted at-risk and event counts.
    """

    def __init__(self, label: str = "KM_estimate"):
        self.label = label

    def fit(
        self, durations, event_observed, weights=None, weight_breaks=None, timeline=None
    ) -> WeightedKaplanMeierFitter:
        """Fit to durations and event indicators (true = event, false = censored); returns self."""
        e = np.asarray(event_observed).astype(bool).astype(np.int64)
        table = event_table(durations, e, weights, weight_breaks=weight_breaks, timeline=timeline, n_causes=1)
        self.table_ = table
        self.timeline_ = table.times
        index = pd.Index(table.times, name="timeline")
        self.survival_function_ = pd.DataFrame({self.label: kaplan_meier(table, 1)}, index=index)
        self.event_table_ = table.to_frame()
        return self

    def predict(self, times) -> np.ndarray:
        """Survival at ``times`` (1 before the first time)."""
        return step_at(self.timeline_, self.survival_function_[self.label].to_numpy(), times, before=1.0)
