"""Landmark analysis at the end of the grace period with propensity-score weighting.

Among persons still at risk after the landmark day L (no outcome and still followed through day
L), those referred by day L are compared with those not referred, weighting by the propensity of
referral by L given baseline covariates. Conditioning on being at risk at the landmark removes the
immortal time (nobody's exposure is defined by what happens after follow-up starts), at the price
of answering a narrower question: the effect among those still off work at six weeks. Three
weightings: ATE (the landmark population), ATT (those referred) and overlap weights (persons in
clinical equipoise; Li, Morgan & Zaslavsky 2018).

Curves keep the clock from index: the cumulative incidence at day h is P(RTW by day h | at risk
after day L).

The exposure is referral by day L, from a referral-day column; or any 0/1 treatment known at the
landmark, from a plain treatment column (``fit(..., treatment_col=...)``; with ``landmark_day=0``
this is a propensity-weighted comparison of a baseline treatment among persons followed past day 0).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import IpmError
from ._common import binary_column, event_codes, integer_days
from ._summary import TwoArmSurvivalEstimator, arm_values, contrast_values, daily_table
from .design import build_design, require_columns, standardize
from .iptw import ESTIMANDS, treatment_weights, truncate
from .propensity import LogisticRegression

ARMS = ("early", "delayed")


def _weights(ps, treated, estimand, percentiles):
    w = treatment_weights(ps, treated, estimand, stabilized=True)
    if estimand != "overlap" and percentiles is not None:
        w, lo, hi, n_out = truncate(w, percentiles)
        return w, {"lower": lo, "upper": hi, "n_truncated": n_out}
    return w, {"lower": float("nan"), "upper": float("nan"), "n_truncated": 0}


class _Settings:
    def __init__(self, horizons, max_day, percentiles, l2, arms=ARMS, init=None):
        self.horizons, self.max_day, self.percentiles, self.l2, self.init = horizons, max_day, percentiles, l2, init
        self.arms = tuple(arms)


def _estimate(settings: _Settings, data):
    X, time, event, treated = data["X"], data["time"], data["event"], data["treated"]
    if treated.all() or not treated.any():
        raise IpmError("landmark analysis: everyone at risk at the landmark is in the same group")
    arm1, arm0 = settings.arms
    model = LogisticRegression(l2=settings.l2, standardize=False).fit(X, treated, init=settings.init)
    ps = model.predict_proba(X)
    values: dict[str, np.ndarray] = {}
    tables = {}
    weights = {}
    for est in ESTIMANDS:
        w, trunc = _weights(ps, treated, est, settings.percentiles)
        weights[est] = (w, trunc)
        part = {}
        for code, name in ((True, arm1), (False, arm0)):
            rows = treated == code
            tables[(est, name)] = daily_table(time[rows], event[rows], w[rows], settings.max_day)
            arm_values(part, name, tables[(est, name)], settings.horizons)
        contrast_values(part, arm1, arm0, tables[(est, arm1)], tables[(est, arm0)], settings.horizons)
        values.update({f"{est}|{k}": v for k, v in part.items()})
    return values, tables, model, ps, weights


class _Statistic:
    def __init__(self, settings):
        self.settings = settings

    def __call__(self, data):
        return _estimate(self.settings, data)[0]



class LandmarkIPTW(TwoArmSurvivalEstimator):
    """Landmark comparison at ``landmark_day`` with ATE, ATT and overlap propensity weights.

    Parameters
    ----------
    landmark_day : int
        Landmark L (default: the 42-day grace period); persons still at risk after day L are
        compared. Exposure = referral on day 0..L, or the ``treatment_col`` given to ``fit``.
    estimand : {"ate", "att", "overlap"}
        The weighting reported in ``summary`` (all three are in ``summaries_``).
    horizons : tuple of int
        Days at which cumulative incidences and contrasts are reported (each after the landmark).
    max_day : int, optional
        Last day of the curves (default: the largest horizon).
    truncation_percentiles : (low, high) or None
        Percentiles at which ATE and ATT weights are clipped (default: none).
    l2 : float
        Ridge penalty of the propensity model (0 = maximum likelihood; see
        :class:`~ipm_outcomes.estimators.propensity.LogisticRegression`).
    arms : (str, str)
        Names of the exposed and unexposed arms in the tables (the contrast is ``"<a> vs <b>"``).
    n_bootstrap, seed, workers : person-level bootstrap (0 replicates: no intervals).
    alpha : float
        1 - confidence level.

    Attributes (after ``fit``)
    --------------------------
    summary : DataFrame
        One row per measure per arm (or contrast) per horizon for ``estimand``.
    summaries_ : dict
        The same for each weighting.
    curves_ : DataFrame
        One row per arm per day (``estimand`` weights).
    population_ : array of bool
        Rows of the input at risk after the landmark.
    treated_, ps_, weights_ : arrays over the landmark population.
    design_ : Design of the landmark population (for balance diagnostics).
    """

    def __init__(
        self,
        landmark_day: int = 42,
        estimand: str = "ate",
        horizons: tuple[int, ...] = (90, 180, 365),
        max_day: int | None = None,
        truncation_percentiles: tuple[float, float] | None = None,
        l2: float = 0.0,
        arms: tuple[str, str] = ARMS,
        n_bootstrap: int = 200,
        seed: int = 0,
        workers: int | None = None,
        alpha: float = 0.05,
    ):
        self.landmark_day = landmark_day
        self.estimand = estimand
        self.horizons = horizons
        self.max_day = max_day
        self.truncation_percentiles = truncation_percentiles
        self.l2 = l2
        self.arms = arms
        self.n_bootstrap = n_bootstrap
        self.seed = seed
        self.workers = workers
        self.alpha = alpha

    def fit(
        self,
        df: pd.DataFrame,
        covariates: list[str],
        duration_col: str = "time_days",
        event_col: str = "event",
        referral_col: str = "referral_day",
        treatment_col: str | None = None,
        categorical: list[str] | tuple[str, ...] = (),
    ) -> LandmarkIPTW:
        """Fit on an analysis table (one row per person); returns self.

        Parameters
        ----------
        df : DataFrame
            One row per person: last day of follow-up, event code (0 censored, 1 event of
            interest, 2 competing), the exposure (referral day, or a 0/1 treatment), covariates.
        covariates : list of str
            Baseline covariates of the propensity model.
        treatment_col : str, optional
            A 0/1 (or boolean) exposure column known at the landmark, used instead of
            ``referral_col`` (which is then not needed).
        categorical : list of str
            Covariates to dummy-code although numeric (see :func:`~ipm_outcomes.estimators.design.build_design`).
        """
        if self.estimand not in ESTIMANDS:
            raise IpmError(f"unknown estimand {self.estimand!r}; use one of {', '.join(ESTIMANDS)}")
        arms = tuple(str(a) for a in self.arms)
        if len(arms) != 2 or arms[0] == arms[1]:
            raise IpmError(f"arms must be two different names, got {list(self.arms)}")
        horizons, max_day = self._grid()
        L = int(self.landmark_day)
        if L < 0:
            raise IpmError(f"landmark day must be >= 0, got {self.landmark_day}")
        exposure_col = treatment_col or referral_col
        require_columns(df, [duration_col, event_col, exposure_col], "landmark analysis")
        time = integer_days(df[duration_col], duration_col)
        event = event_codes(df[event_col], event_col)
        if treatment_col is not None:
            exposed = binary_column(df, treatment_col)
        else:
            exposed = integer_days(df[referral_col], referral_col, nullable=True) <= L
        if any(h <= L for h in horizons):
            raise IpmError(f"landmark analysis: every horizon must be after the landmark day {L}")
        population = time > L
        if not population.any():
            raise IpmError(f"landmark analysis: nobody is still at risk after day {L}")
        sub = df.loc[population]
        design = build_design(sub, covariates, categorical=categorical)
        treated = exposed[population]
        data = {
            "X": standardize(design.matrix),
            "time": time[population],
            "event": event[population],
            "treated": treated,
        }
        settings = _Settings(horizons, max_day, self.truncation_percentiles, self.l2, arms)
        values, tables, model, ps, weights = _estimate(settings, data)
        self.population_ = population
        self.design_ = design
        self.treated_ = treated
        self.ps_ = ps
        self.weights_ = {k: w for k, (w, _) in weights.items()}
        self.truncation_ = {k: t for k, (_, t) in weights.items()}
        self.values_ = values
        # replicates start Newton-Raphson from the full-data fit (same answer, fewer steps)
        settings.init = (model.intercept_, model.coef_)
        interval = self._bootstrap(_Statistic(settings), data, values)
        n_arm = {arms[0]: int(treated.sum()), arms[1]: int((~treated).sum())}
        self.summaries_ = {}
        for est in ESTIMANDS:
            prefix = f"{est}|"
            part = {k[len(prefix) :]: v for k, v in values.items() if k.startswith(prefix)}

            def part_interval(key, prefix=prefix):
                return interval(prefix + key)

            curves, self.summaries_[est] = self._tables(
                part, part_interval, {a: tables[(est, a)] for a in arms}, n_arm, [arms], int(population.sum())
            )
            if est == self.estimand:
                self.curves_ = curves
                self._days_off_inputs = (part, part_interval, n_arm, int(population.sum()))
        self.summary = self.summaries_[self.estimand]
        return self
