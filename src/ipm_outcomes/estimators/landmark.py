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
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import IpmError
from . import bootstrap as boot
from ._common import build_design, event_codes, integer_days, require_columns, standardize
from ._summary import arm_values, contrast_values, curve_frame, daily_table, interval_function, summary_frame
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
    def __init__(self, horizons, max_day, percentiles, l2, init=None):
        self.horizons, self.max_day, self.percentiles, self.l2, self.init = horizons, max_day, percentiles, l2, init


def _estimate(settings: _Settings, data):
    X, time, event, treated = data["X"], data["time"], data["event"], data["treated"]
    if treated.all() or not treated.any():
        raise IpmError("landmark analysis: everyone at risk at the landmark is in the same group")
    model = LogisticRegression(l2=settings.l2, standardize=False).fit(X, treated, init=settings.init)
    ps = model.predict_proba(X)
    values: dict[str, np.ndarray] = {}
    tables = {}
    weights = {}
    for est in ESTIMANDS:
        w, trunc = _weights(ps, treated, est, settings.percentiles)
        weights[est] = (w, trunc)
        part = {}
        for code, name in ((True, "early"), (False, "delayed")):
            rows = treated == code
            tables[(est, name)] = daily_table(time[rows], event[rows], w[rows], settings.max_day)
            arm_values(part, name, tables[(est, name)], settings.horizons)
        contrast_values(part, "early", "delayed", tables[(est, "early")], tables[(est, "delayed")], settings.horizons)
        values.update({f"{est}|{k}": v for k, v in part.items()})
    return values, tables, model, ps, weights


class _Statistic:
    def __init__(self, settings):
        self.settings = settings

    def __call__(self, data):
        return _estimate(self.settings, data)[0]


class LandmarkIPTW:
    """Landmark comparison at ``landmark_day`` with ATE, ATT and overlap propensity weights.

    Parameters
    ----------
    landmark_day : int
        Landmark L (default: the 42-day grace period); exposure = referral on day 0..L.
    estimand : {"ate", "att", "overlap"}
        The weighting reported in ``summary`` (all three are in ``summaries_``).
    truncation_percentiles : (low, high) or None
        Percentiles at which ATE and ATT weights are clipped.
    horizons, max_day, n_bootstrap, seed, workers, alpha : as in ``CloneCensorWeight``.

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
        truncation_percentiles: tuple[float, float] | None = (1.0, 99.0),
        l2: float = 1e-4,
        n_bootstrap: int = 200,
        seed: int = 0,
        workers: int | None = None,
        alpha: float = 0.05,
    ):
        if estimand not in ESTIMANDS:
            raise IpmError(f"unknown estimand {estimand!r}; use one of {', '.join(ESTIMANDS)}")
        self.landmark_day = int(landmark_day)
        self.estimand = estimand
        self.horizons = tuple(int(h) for h in horizons)
        self.max_day = max_day
        self.truncation_percentiles = truncation_percentiles
        self.l2 = l2
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
    ) -> LandmarkIPTW:
        """Fit on an analysis table (one row per person); returns self."""
        require_columns(df, [duration_col, event_col, referral_col], "landmark analysis")
        time = integer_days(df[duration_col], duration_col)
        event = event_codes(df[event_col], event_col)
        referral = integer_days(df[referral_col], referral_col, nullable=True)
        L = self.landmark_day
        max_day = int(self.max_day if self.max_day is not None else max(self.horizons))
        if any(h <= L for h in self.horizons):
            raise IpmError(f"landmark analysis: every horizon must be after the landmark day {L}")
        population = time > L
        if not population.any():
            raise IpmError(f"landmark analysis: nobody is still at risk after day {L}")
        sub = df.loc[population]
        design = build_design(sub, covariates)
        treated = referral[population] <= L
        data = {
            "X": standardize(design.matrix),
            "time": time[population],
            "event": event[population],
            "treated": treated,
        }
        settings = _Settings(self.horizons, max_day, self.truncation_percentiles, self.l2)
        values, tables, model, ps, weights = _estimate(settings, data)
        self.population_ = population
        self.design_ = design
        self.treated_ = treated
        self.ps_ = ps
        self.weights_ = {k: w for k, (w, _) in weights.items()}
        self.truncation_ = {k: t for k, (_, t) in weights.items()}
        self.values_ = values
        self.bootstrap_ = None
        if self.n_bootstrap > 0:
            settings.init = (model.intercept_, model.coef_)
            self.bootstrap_ = boot.run(
                _Statistic(settings), data, values, n_replicates=self.n_bootstrap, seed=self.seed, workers=self.workers
            )
        interval = interval_function(values, self.bootstrap_, self.alpha)
        n_arm = {"early": int(treated.sum()), "delayed": int((~treated).sum())}
        self.summaries_ = {}
        for est in ESTIMANDS:
            prefix = f"{est}|"
            part = {k[len(prefix) :]: v for k, v in values.items() if k.startswith(prefix)}

            def part_interval(key, prefix=prefix):
                return interval(prefix + key)

            self.summaries_[est] = summary_frame(
                part, part_interval, n_arm, [("early", "delayed")], self.horizons, int(population.sum()), max_day
            )
            if est == self.estimand:
                self.curves_ = curve_frame(part, part_interval, {a: tables[(est, a)] for a in ARMS}, max_day)
        self.summary = self.summaries_[self.estimand]
        return self
