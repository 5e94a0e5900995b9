"""The naive comparison: early vs delayed by eventual referral time, follow-up from index.

Reported only as the biased contrast, and labelled so. It is what a quick look at the data would
show, and it is wrong in two ways the causal methods fix: confounding by indication (sicker
patients are referred sooner and return to work more slowly) and immortal time (to be "early" a
patient must still be off work, and in the data, when referred; a patient who returns to work
before any referral can only ever be "delayed").
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import IpmError
from . import bootstrap as boot
from ._common import event_codes, integer_days, require_columns
from ._summary import (
    arm_values,
    contrast_values,
    curve_frame,
    daily_table,
    days_off_frame,
    interval_function,
    summary_frame,
)

ARMS = ("early", "delayed")


class _Statistic:
    def __init__(self, horizons, max_day):
        self.horizons = horizons
        self.max_day = max_day

    def __call__(self, data):
        return _estimate(data, self.horizons, self.max_day)[0]


def _estimate(data, horizons, max_day):
    values: dict[str, np.ndarray] = {}
    tables = {}
    for code, name in enumerate(ARMS):
        rows = data["group"] == code
        tables[name] = daily_table(data["time"][rows], data["event"][rows], None, max_day)
        arm_values(values, name, tables[name], horizons)
    contrast_values(values, "early", "delayed", tables["early"], tables["delayed"], horizons)
    return values, tables


class NaiveComparison:
    """Unadjusted Aalen-Johansen comparison of persons referred within the grace period vs the rest.

    Parameters
    ----------
    grace_period_days : int
        Early = referral on day 0..G (used when no group column is given).
    horizons, max_day, n_bootstrap, seed, workers, alpha : as in
        :class:`~ipm_outcomes.estimators.ccw.CloneCensorWeight`.

    Attributes (after ``fit``)
    --------------------------
    summary : DataFrame
        One row per measure per arm (or contrast) per horizon (see ``CloneCensorWeight.summary``).
    curves_ : DataFrame
        One row per arm per day.
    bootstrap_ : BootstrapResult or None
    """

    label = "naive (biased: immortal time and confounding by indication)"

    def __init__(
        self,
        grace_period_days: int = 42,
        horizons: tuple[int, ...] = (90, 180, 365),
        max_day: int | None = None,
        n_bootstrap: int = 200,
        seed: int = 0,
        workers: int | None = None,
        alpha: float = 0.05,
    ):
        self.grace_period_days = grace_period_days
        self.horizons = tuple(int(h) for h in horizons)
        self.max_day = max_day
        self.n_bootstrap = n_bootstrap
        self.seed = seed
        self.workers = workers
        self.alpha = alpha

    def fit(
        self,
        df: pd.DataFrame,
        duration_col: str = "time_days",
        event_col: str = "event",
        referral_col: str = "referral_day",
        group_col: str | None = None,
    ) -> NaiveComparison:
        """Fit; ``group_col`` (values 'early'/'delayed') overrides grouping by ``referral_col``."""
        require_columns(df, [duration_col, event_col, group_col or referral_col], "naive comparison")
        if len(df) == 0:
            raise IpmError("naive comparison: the analysis table is empty")
        time = integer_days(df[duration_col], duration_col)
        event = event_codes(df[event_col], event_col)
        if group_col is not None:
            labels = df[group_col].astype("string")
            bad = ~labels.isin(ARMS).fillna(False)
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise IpmError(
                    f"column {group_col}: row {row} holds {df[group_col].iloc[row]!r}; expected early or delayed"
                )
            early = (labels == "early").to_numpy(dtype=bool)
        else:
            referral = integer_days(df[referral_col], referral_col, nullable=True)
            early = referral <= self.grace_period_days
        max_day = int(self.max_day if self.max_day is not None else max(self.horizons))
        data = {"time": time, "event": event, "group": np.where(early, 0, 1)}
        values, tables = _estimate(data, self.horizons, max_day)
        self.values_ = values
        self.bootstrap_ = None
        if self.n_bootstrap > 0:
            self.bootstrap_ = boot.run(
                _Statistic(self.horizons, max_day),
                data,
                values,
                n_replicates=self.n_bootstrap,
                seed=self.seed,
                workers=self.workers,
            )
        interval = interval_function(values, self.bootstrap_, self.alpha)
        self.curves_ = curve_frame(values, interval, tables, max_day)
        n_arm = {"early": int(early.sum()), "delayed": int((~early).sum())}
        self.summary = summary_frame(values, interval, n_arm, [("early", "delayed")], self.horizons, len(df), max_day)
        self._days_off = (values, interval, n_arm, len(df))
        return self

    def days_off_at(self, horizons) -> pd.DataFrame:
        """Days off work of each group and their difference within each of ``horizons`` days (any days up
        to ``max_day``), with the bootstrap intervals; rows as in ``summary``."""
        values, interval, n_arm, n = self._days_off
        return days_off_frame(values, interval, n_arm, ("early", "delayed"), horizons, n)
