"""Shared pieces of the two-arm survival estimators (clone-censor-weight, landmark, naive): their
base class :class:`TwoArmSurvivalEstimator` (settings, bootstrap, tabulation) and the helpers it uses.

Each estimator computes, for the full data and for every bootstrap replicate, the same dict of
arrays (keys ``cif/<arm>``, ``days_off/<arm>``, ``rd/<a>/<b>``, ...); these helpers compute the
dict from daily event tables and turn it, with the bootstrap replicates, into tidy tables.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from ..errors import IpmError
from . import bootstrap as boot
from .base import BaseEstimator, check_alpha
from .survival import EventTable, aalen_johansen, cause_specific_hazard_ratio, event_table, kaplan_meier

CUMULATIVE_INCIDENCE = "cumulative_incidence"
DAYS_OFF_WORK = "restricted_mean_days_off_work"
SUMMARY_COLUMNS = ["measure", "arm", "contrast", "horizon_days", "estimate", "ci_low", "ci_high", "n"]


def daily_table(time, event, weights, max_day: int) -> EventTable:
    """Weighted event table on days 0..max_day (later follow-up counts as at risk throughout)."""
    return event_table(time, event, weights, timeline=np.arange(max_day + 1), n_causes=2)


def curves(table: EventTable) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RTW and competing cumulative incidence (Aalen-Johansen) and 1 - KM of RTW (competing events
    censored); NaN beyond the last day anyone is at risk, where the curves are not identified."""
    _, cif = aalen_johansen(table)
    km = kaplan_meier(table, cause=1)
    unidentified = np.cumsum(table.at_risk[::-1] > 0)[::-1] == 0
    cif = np.where(unidentified[:, None], np.nan, cif)
    km = np.where(unidentified, np.nan, km)
    return cif[:, 0], cif[:, 1], 1.0 - km


def days_off_work(cif: np.ndarray, horizon: int) -> float:
    """Restricted mean days not (yet) back at work over days 0..horizon-1 (each day counts 1 - CIF)."""
    return float(horizon - np.sum(cif[:horizon]))


def days_off_by_day(cif: np.ndarray) -> np.ndarray:
    """:func:`days_off_work` at every horizon t = 0..len(cif)-1, so that it can be read at a horizon
    chosen after the fit (e.g. the last day on which every arm still has enough persons at risk)."""
    return np.arange(len(cif)) - np.concatenate([[0.0], np.cumsum(cif[:-1])])


def arm_values(values: dict, name: str, table: EventTable, horizons) -> tuple[np.ndarray, ...]:
    """Add ``cif``, ``cif_competing``, ``km`` and ``days_off`` of one arm to ``values``."""
    cif, cif_comp, km = curves(table)
    values[f"cif/{name}"] = cif
    values[f"cif_competing/{name}"] = cif_comp
    values[f"km/{name}"] = km
    values[f"days_off/{name}"] = np.array([days_off_work(cif, t) for t in horizons])
    return cif, cif_comp, km


def contrast_values(values: dict, s1: str, s0: str, t1: EventTable, t0: EventTable, horizons) -> None:
    """Add risk difference, risk ratio, days-off difference and hazard ratio of s1 vs s0."""
    h = list(horizons)
    c1, c0 = values[f"cif/{s1}"][h], values[f"cif/{s0}"][h]
    values[f"rd/{s1}/{s0}"] = c1 - c0
    with np.errstate(divide="ignore", invalid="ignore"):
        values[f"rr/{s1}/{s0}"] = c1 / c0
    values[f"days_off_diff/{s1}/{s0}"] = values[f"days_off/{s1}"] - values[f"days_off/{s0}"]
    for arm in (s1, s0):
        values[f"days_off_by_day/{arm}"] = days_off_by_day(values[f"cif/{arm}"])
    values[f"days_off_diff_by_day/{s1}/{s0}"] = values[f"days_off_by_day/{s1}"] - values[f"days_off_by_day/{s0}"]
    log_hr, _ = cause_specific_hazard_ratio(t1, t0, cause=1)
    values[f"hr/{s1}/{s0}"] = np.array(math.exp(log_hr) if np.isfinite(log_hr) else np.nan)


def curve_frame(values: dict, interval: Callable, arms: dict[str, EventTable], max_day: int) -> pd.DataFrame:
    """Curves with pointwise bootstrap bands; grain: one row per arm per day 0..max_day."""
    days = np.arange(max_day + 1)
    frames = []
    for name, table in arms.items():
        lo, hi = interval(f"cif/{name}")
        frames.append(
            pd.DataFrame(
                {
                    "arm": name,
                    "day": days,
                    "cumulative_incidence": values[f"cif/{name}"],
                    "ci_low": lo,
                    "ci_high": hi,
                    "cumulative_incidence_competing": values[f"cif_competing/{name}"],
                    "one_minus_km": values[f"km/{name}"],
                    "n_at_risk": table.n_at_risk.astype(np.int64),
                    "weighted_at_risk": table.at_risk,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def summary_frame(
    values: dict,
    interval: Callable,
    arms: dict[str, int],
    contrasts: list[tuple[str, str]],
    horizons,
    n_total: int,
    hr_horizon: int,
) -> pd.DataFrame:
    """Arm levels and contrasts; grain: one row per measure per arm (or contrast) per horizon.

    ``arms`` maps each arm to its number of persons; contrast rows carry ``n_total`` and
    ``arm=None``. The hazard ratio (over the whole follow-up) is reported at ``hr_horizon``.
    """
    h = list(horizons)
    rows = []
    for name, n_arm in arms.items():
        for measure, key in ((CUMULATIVE_INCIDENCE, "cif"), (DAYS_OFF_WORK, "days_off")):
            lo, hi = interval(f"{key}/{name}")
            est = values[f"{key}/{name}"]
            for i, t in enumerate(h):
                j = t if key == "cif" else i
                rows.append(
                    dict(
                        measure=measure,
                        arm=name,
                        contrast=None,
                        horizon_days=t,
                        estimate=float(est[j]),
                        ci_low=float(lo[j]),
                        ci_high=float(hi[j]),
                        n=int(n_arm),
                    )
                )
    for s1, s0 in contrasts:
        label = f"{s1} vs {s0}"
        for measure, key in (("risk_difference", "rd"), ("risk_ratio", "rr"), ("rmst_difference", "days_off_diff")):
            k = f"{key}/{s1}/{s0}"
            lo, hi = interval(k)
            for i, t in enumerate(h):
                rows.append(
                    dict(
                        measure=measure,
                        arm=None,
                        contrast=label,
                        horizon_days=t,
                        estimate=float(values[k][i]),
                        ci_low=float(lo[i]),
                        ci_high=float(hi[i]),
                        n=int(n_total),
                    )
                )
        k = f"hr/{s1}/{s0}"
        lo, hi = interval(k)
        rows.append(
            dict(
                measure="hazard_ratio",
                arm=None,
                contrast=label,
                horizon_days=hr_horizon,
                estimate=float(values[k]),
                ci_low=float(lo),
                ci_high=float(hi),
                n=int(n_total),
            )
        )
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def days_off_frame(
    values: dict, interval: Callable, arms: dict[str, int], contrast: tuple[str, str], horizons, n_total: int
) -> pd.DataFrame:
    """Days off work of the two arms of ``contrast`` and their difference at any ``horizons`` (read from
    the by-day values, so the horizons need not be the estimator's); rows as in :func:`summary_frame`."""
    s1, s0 = contrast
    rows = []
    for name in (s1, s0):
        lo, hi = interval(f"days_off_by_day/{name}")
        est = values[f"days_off_by_day/{name}"]
        rows += [
            dict(measure=DAYS_OFF_WORK, arm=name, contrast=None, horizon_days=int(t), estimate=float(est[t]),
                 ci_low=float(lo[t]), ci_high=float(hi[t]), n=int(arms[name]))
            for t in horizons
        ]
    k = f"days_off_diff_by_day/{s1}/{s0}"
    lo, hi = interval(k)
    rows += [
        dict(measure="rmst_difference", arm=None, contrast=f"{s1} vs {s0}", horizon_days=int(t),
             estimate=float(values[k][t]), ci_low=float(lo[t]), ci_high=float(hi[t]), n=int(n_total))
        for t in horizons
    ]
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def interval_function(values: dict, bootstrap, alpha: float) -> Callable:
    """``key -> (low, high)`` percentile intervals (NaN without a bootstrap)."""

    def interval(key: str):
        if bootstrap is None:
            shape = np.shape(values[key])
            return np.full(shape, np.nan), np.full(shape, np.nan)
        return bootstrap.interval(key, 1 - alpha)

    return interval


class TwoArmSurvivalEstimator(BaseEstimator):
    """Base of the two-arm cumulative-incidence estimators (settings, bootstrap, tabulation).

    Subclasses declare ``horizons``, ``max_day``, ``n_bootstrap``, ``seed``, ``workers`` and
    ``alpha`` among their constructor arguments, compute one dict of statistics (keys
    ``cif/<arm>``, ``rd/<a>/<b>``, ...; see :mod:`ipm_outcomes.estimators._summary`) from a dict of
    person-level arrays, and call :meth:`_bootstrap` and :meth:`_tables`.
    """

    def _grid(self) -> tuple[tuple[int, ...], int]:
        """Validated horizons and last day of the curves (default: the largest horizon)."""
        horizons = tuple(int(h) for h in self.horizons)
        if not horizons or min(horizons) < 1:
            raise IpmError(f"horizons must be whole numbers of days >= 1, got {list(self.horizons)}")
        max_day = int(self.max_day if self.max_day is not None else max(horizons))
        if max(horizons) > max_day:
            raise IpmError("every horizon must be <= max_day")
        check_alpha(self.alpha)
        return horizons, max_day

    def _bootstrap(
        self, statistic: Callable[[Mapping[str, np.ndarray]], dict], data: Mapping[str, np.ndarray], values: dict
    ) -> Callable:
        """Run the person-level bootstrap (when ``n_bootstrap > 0``; sets ``bootstrap_``) and return
        ``key -> (low, high)`` percentile intervals (NaN without a bootstrap)."""
        self.bootstrap_ = None
        if self.n_bootstrap > 0:
            self.bootstrap_ = boot.run(
                statistic, data, values, n_replicates=self.n_bootstrap, seed=self.seed, workers=self.workers
            )
        return interval_function(values, self.bootstrap_, self.alpha)

    def _tables(
        self,
        values: dict,
        interval: Callable,
        tables: dict[str, EventTable],
        n_arm: dict[str, int],
        contrasts: list[tuple[str, str]],
        n_total: int,
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(curves, summary): one row per arm per day, and one row per measure per arm (or
        contrast) per horizon (the hazard ratio over the whole follow-up at ``max_day``)."""
        horizons, max_day = self._grid()
        curves = curve_frame(values, interval, tables, max_day)
        summary = summary_frame(values, interval, n_arm, contrasts, horizons, n_total, max_day)
        return curves, summary

    def days_off_at(self, horizons, contrast: tuple[str, str] = ("early", "delayed")) -> pd.DataFrame:
        """Days off work (restricted mean time without the event) of the two arms of ``contrast`` and
        their difference within each of ``horizons`` days (any days up to ``max_day``, not only the
        estimator's horizons), with the bootstrap intervals; rows as in ``summary``."""
        if not hasattr(self, "_days_off_inputs"):
            raise IpmError(f"{type(self).__name__}: call fit before days_off_at")
        values, interval, n_arm, n_total = self._days_off_inputs
        return days_off_frame(values, interval, n_arm, contrast, horizons, n_total)
