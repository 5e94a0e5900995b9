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
from ._common import binary_column, event_codes, integer_days, require_columns
from ._summary import TwoArmSurvivalEstimator, arm_values, contrast_values, daily_table
from .ccw import _Acc, _add_constant, _table
from .ccw_outcomes import outcome_tables, outcome_values

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


class NaiveComparison(TwoArmSurvivalEstimator):
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
        self.horizons = horizons
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
        horizons, max_day = self._grid()
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
        data = {"time": time, "event": event, "group": np.where(early, 0, 1)}
        values, tables = _estimate(data, horizons, max_day)
        self.values_ = values
        interval = self._bootstrap(_Statistic(horizons, max_day), data, values)
        n_arm = {"early": int(early.sum()), "delayed": int((~early).sum())}
        self.curves_, self.summary = self._tables(values, interval, tables, n_arm, [("early", "delayed")], len(df))
        self._days_off_inputs = (values, interval, n_arm, len(df))
        return self



class _OutcomesStatistic:
    def __init__(self, names, horizons, max_day):
        self.names, self.horizons, self.max_day = names, horizons, max_day

    def __call__(self, data):
        return _estimate_outcomes(data, self.names, self.horizons, self.max_day)[0]


def _estimate_outcomes(data, names, horizons, max_day):
    K, D = len(names), max_day + 1
    acc = _Acc.zeros(2 * K, D)
    for i, k in enumerate(names):
        pop = data[f"pop/{k}"]
        codes = 2 * i + data["group"][pop]
        time = data[f"time/{k}"][pop]
        _add_constant(acc, codes, 2 * K, D, np.zeros(time.shape, np.int64), time, data[f"event/{k}"][pop],
                      np.ones(time.shape))
    tables = {arm: {k: _table(acc, 2 * i + g) for i, k in enumerate(names)} for g, arm in enumerate(ARMS)}
    return outcome_values(tables, names, [ARMS], horizons), tables


class MultiOutcomeNaive(TwoArmSurvivalEstimator):
    """The naive comparison (persons referred within the grace period vs the rest, unadjusted
    Aalen-Johansen from index) for many outcomes at once, each in its own population; the outcomes share
    the bootstrap resamples. Biased by design (immortal time, confounding by indication): shown beside the
    clone-censor-weight estimates of :class:`~ipm_outcomes.estimators.ccw_outcomes.MultiOutcomeCloneCensorWeight`,
    with the same ``summary`` and ``curves_`` columns.
    """

    label = NaiveComparison.label

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
        self.horizons = horizons
        self.max_day = max_day
        self.n_bootstrap = n_bootstrap
        self.seed = seed
        self.workers = workers
        self.alpha = alpha

    def fit(self, df: pd.DataFrame, outcomes, referral_col: str = "referral_day") -> MultiOutcomeNaive:
        """``outcomes`` as in :meth:`MultiOutcomeCloneCensorWeight.fit`; early = referral on day 0..G."""
        horizons, max_day = self._grid()
        names = tuple(str(k) for k in outcomes)
        require_columns(df, [referral_col, *(c for cols in outcomes.values() for c in cols)], "naive comparison")
        if len(df) == 0:
            raise IpmError("naive comparison: the analysis table is empty")
        referral = integer_days(df[referral_col], referral_col, nullable=True)
        data = {"group": np.where(referral <= self.grace_period_days, 0, 1)}
        for k, cols in outcomes.items():
            data[f"time/{k}"] = integer_days(df[cols[0]], cols[0])
            data[f"event/{k}"] = event_codes(df[cols[1]], cols[1])
            data[f"pop/{k}"] = binary_column(df, cols[2]) if len(cols) == 3 else np.ones(len(df), bool)
        values, tables = _estimate_outcomes(data, names, horizons, max_day)
        self.values_, self.tables_, self.outcomes_ = values, tables, names
        self._bootstrap(_OutcomesStatistic(names, horizons, max_day), data, values)
        n_pop = {k: int(data[f"pop/{k}"].sum()) for k in names}
        self.summary, self.curves_ = outcome_tables(
            values, tables, names, [ARMS], horizons, max_day, n_pop, self.bootstrap_, self.alpha
        )
        return self
