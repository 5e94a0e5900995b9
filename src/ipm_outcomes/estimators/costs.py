"""Mean costs over a horizon when follow-up is censored: inverse probability of censoring weighting.

Costs accrue day by day until death or the horizon H (day 0 .. H); a person lost to follow-up
(disenrolment, end of data) before then has an unknown rest of the cost history. Dropping such
persons biases the mean towards those followed longest, and treating their observed cost as complete
biases it down. Bang and Tsiatis (2000, Biometrika 87:329) weight the persons whose cost history is
complete by the inverse of the probability of having stayed under observation that long:

* **simple** (their "simple weighted" estimator): ``mean = 1/n sum_i delta_i M_i / K_i(T_i)`` where
  ``delta_i`` = the whole history is observed (died while followed, or followed to H), ``M_i`` its
  total cost and ``T_i`` its last day;
* **partitioned**: the horizon is cut into intervals (e.g. 30 days); a person's cost in interval
  ``[a_k, b_k]`` is used when it is whole (followed through ``b_k``, or died in or before it) and
  weighted by ``1 / K_i(min(T_i, b_k))``. More persons contribute (those censored later contribute
  their early intervals), so it is more efficient; with one interval it is the simple estimator.

**Days.** ``K(t)`` is the probability of being still observed on day t (``K(0) = 1``): a person whose
last observed day is T was not lost on days 0..T-1. Its Kaplan-Meier estimate treats loss to
follow-up as the event and a complete history as censoring for it: on day s, ``L(s)`` persons are
lost after day s among ``R(s)`` who could be (observed on day s and not complete on it), and
``K(t) = prod_{s < t} (1 - L(s) / R(s))``. A subject-specific ``K_i(t)`` (from a censoring model
with covariates) can be supplied instead; it is needed when loss depends on covariates that also
drive costs.

**Strategies (clone-censor-weight).** :class:`CloneCensorCost` estimates the mean cost under the
referral-timing strategies of :mod:`.ccw` ("early" = referral within the grace period G, "delayed" =
none within it). Each person is cloned into both strategies; a clone's cost is observed until the
person is lost, or until its data stop agreeing with the strategy. A referral's own cost falls on its
day, so a "delayed" clone referred on day r <= G is observed through day r - 1, and an "early" clone
not referred by day G through day G. The clone's probability of being observed on day t is
``K_i(t) = A_i(t) * K_lost(t)``: ``K_lost`` the probability of not being lost (Kaplan-Meier as
above, or a pooled logistic model of the daily loss hazard given the covariates), and ``1 / A_i(t)`` the
clone-censor weight of :mod:`.ccw` read one day later (there the day's outcome precedes the day's
referral; here the day's cost includes it), from the referral model of
:meth:`CloneCensorWeight.referral_survival <ipm_outcomes.estimators.ccw.CloneCensorWeight.referral_survival>`
with S(s) = P(no referral through day s | X):

* early, referred on day r <= t: ``1 / (1 - S(G))``; not referred through day t <= G:
  ``(1 - S(G) / S(t)) / (1 - S(G))`` (the referral day inside the window is left to its natural
  course); not referred by G, t > G: artificially censored;
* delayed, not referred through day min(t, G): ``1 / S(min(t, G))``.

Death ends the cost history (complete); nobody is dropped. Intervals come from the person-level
bootstrap (persons resampled, the referral model refitted in every replicate).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..errors import IpmError
from . import bootstrap as boot
from ._common import NEVER, _shown, build_design, integer_days, require_columns, standardize
from .base import BaseEstimator, check_alpha
from .bootstrap import BootstrapResult
from .ccw import CloneCensorWeight, grace_period_strategies
from .propensity import PooledLogisticHazard

METHODS = ("simple", "partitioned")
LOSS_MODELS = ("km", "pooled_logistic")
SUMMARY_COLUMNS = ["measure", "arm", "contrast", "horizon_days", "estimate", "ci_low", "ci_high", "n"]


def km_censoring_survival(last_day: np.ndarray, complete: np.ndarray, horizon: int) -> np.ndarray:
    """Kaplan-Meier estimate of K(t) = P(still observed on day t), t = 0..horizon.

    Parameters
    ----------
    last_day : array of int
        Last day each person's costs are observed (0..horizon).
    complete : array of bool
        The cost history ends there (death, or followed to the horizon): not lost.
    horizon : int

    Returns
    -------
    array (horizon + 1,)
        Grain: one value per day 0..horizon. Loss after day s counts on day s among the persons
        observed on day s whose history is not complete on it.
    """
    last_day = np.asarray(last_day, dtype=np.int64)
    complete = np.asarray(complete, dtype=bool)
    lost = np.bincount(last_day[~complete], minlength=horizon + 1)[: horizon + 1]
    ending = np.bincount(last_day, minlength=horizon + 1)[: horizon + 1]
    finished = np.bincount(last_day[complete], minlength=horizon + 1)[: horizon + 1]
    observed = np.cumsum(ending[::-1])[::-1]  # observed on day s: last_day >= s
    at_risk = observed - finished
    with np.errstate(divide="ignore", invalid="ignore"):
        keep = np.where(at_risk > 0, 1.0 - lost / at_risk, 1.0)
    return np.concatenate([[1.0], np.cumprod(keep)[:-1]])


def interval_bounds(horizon: int, interval_days: int) -> tuple[np.ndarray, np.ndarray]:
    """First and last day of each interval of ``interval_days`` days covering days 0..horizon."""
    starts = np.arange(0, horizon + 1, int(interval_days))
    ends = np.minimum(starts + int(interval_days) - 1, horizon)
    return starts, ends


def interval_costs(person: np.ndarray, day: np.ndarray, amount: np.ndarray, n: int, starts: np.ndarray) -> np.ndarray:
    """Costs summed per person per interval (days before the first start or after the horizon are
    the caller's to drop). Grain: one row per person, one column per interval."""
    k = np.searchsorted(starts, day, side="right") - 1
    out = np.zeros((n, len(starts)))
    np.add.at(out, (person, k), amount)
    return out


def ipcw_mean(costs: np.ndarray, last_day, complete, ends: np.ndarray, survival) -> float:
    """Bang-Tsiatis mean cost from interval costs (partitioned; one interval = the simple estimator).

    Parameters
    ----------
    costs : array (n, k)
        Cost of each person in each interval (only days observed may hold costs).
    last_day, complete : arrays (n,)
        Last observed day (-1: none) and whether the history is complete there.
    ends : array (k,)
        Last day of each interval.
    survival : callable
        ``survival(rows, days) -> K`` for persons ``rows`` on their ``days``: the probability of being
        observed on that day (> 0 wherever a person contributes).
    """
    return ipcw_means([costs], last_day, complete, ends, survival)[0]


def ipcw_means(costs: list[np.ndarray], last_day, complete, ends: np.ndarray, survival) -> list[float]:
    """:func:`ipcw_mean` of several cost matrices (outcomes) of the same persons with the same follow-up:
    ``survival`` is evaluated once per interval for the persons whose interval is whole, and each
    outcome sums its nonzero costs over them (the same terms in the same order as one call per outcome)."""
    n = costs[0].shape[0] if costs else 0
    last_day = np.asarray(last_day, dtype=np.int64)
    complete = np.asarray(complete, dtype=bool)
    totals = [0.0] * len(costs)
    for k, b in enumerate(ends):
        whole = (last_day >= b) | (complete & (last_day <= b) & (last_day >= 0))
        paid = [c[:, k] != 0 for c in costs]
        rows = np.flatnonzero(whole & np.logical_or.reduce(paid)) if costs else np.zeros(0, np.int64)
        if rows.size == 0:
            continue
        K = survival(rows, np.minimum(last_day[rows], b))
        for j, c in enumerate(costs):
            use = paid[j][rows]
            totals[j] += float(np.sum(c[rows[use], k] / K[use]))
    return [t / n for t in totals]


def _check_history(df: pd.DataFrame, duration_col: str, complete_col: str, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    last = integer_days(df[duration_col], duration_col)
    comp = df[complete_col]
    values = pd.to_numeric(comp.astype("Float64") if pd.api.types.is_bool_dtype(comp) else comp, errors="coerce")
    x = values.to_numpy(dtype=float, na_value=np.nan)
    bad = ~np.isin(x, (0.0, 1.0))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise IpmError(f"column {complete_col}: row {row} holds {_shown(comp.iloc[row])!r}; expected true/false (cost history complete)")
    complete = (x == 1.0) | (last >= horizon)  # followed to the horizon: complete
    return np.minimum(last, horizon), complete


def _daily(daily: pd.DataFrame, ids: pd.Series, id_col: str, day_col: str, amount_col: str, last_day: np.ndarray, horizon: int):
    """Rows of the cost table as (person row, day, amount), days 0..min(last observed day, horizon)."""
    require_columns(daily, [id_col, day_col, amount_col], "cost table")
    if ids.duplicated().any():
        row = int(np.flatnonzero(ids.duplicated().to_numpy())[0])
        raise IpmError(f"column {id_col}: row {row} repeats person {_shown(ids.iloc[row])!r}; one row per person")
    position = pd.Series(np.arange(len(ids)), index=pd.Index(ids))
    person = daily[id_col].map(position)
    unknown = person.isna().to_numpy()
    if unknown.any():
        row = int(np.flatnonzero(unknown)[0])
        raise IpmError(f"cost table, column {id_col}: row {row} names person {_shown(daily[id_col].iloc[row])!r}, who is not in the person table")
    day = integer_days(daily[day_col], day_col)
    amount = pd.to_numeric(daily[amount_col], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = ~np.isfinite(amount) | (amount < 0)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise IpmError(f"cost table, column {amount_col}: row {row} holds {_shown(daily[amount_col].iloc[row])!r}; expected an amount >= 0")
    person = person.to_numpy(dtype=np.int64)
    keep = (day <= last_day[person]) & (day <= horizon)
    return person[keep], day[keep], amount[keep]


def _check_settings(method: str, horizon_days: int, interval_days: int) -> None:
    if method not in METHODS:
        raise IpmError(f"method={method!r}: use one of {', '.join(METHODS)}")
    if int(horizon_days) < 0 or int(interval_days) < 1:
        raise IpmError(f"horizon_days ({horizon_days}) must be >= 0 and interval_days ({interval_days}) >= 1")


class IPCWMeanCost(BaseEstimator):
    """Mean cost over days 0..horizon with censored follow-up (Bang and Tsiatis 2000; module docstring).

    Parameters
    ----------
    method : {"partitioned", "simple"}
        The partitioned estimator (costs per interval, each weighted at the interval's end) or the
        simple weighted one (complete histories only).
    horizon_days : int
        Last day of the cost window (day 0 = time zero).
    interval_days : int
        Length of the partitioned estimator's intervals.

    Attributes (after ``fit``)
    --------------------------
    mean_ : float
        The weighted mean cost.
    complete_case_mean_ : float
        The mean among persons whose history is complete (biased when loss depends on costs; for comparison).
    censoring_survival_ : array or None
        The Kaplan-Meier K(t), t = 0..horizon (None when the caller gave a subject-specific K).
    n_, n_complete_ : int
    summary : DataFrame
        One row: measure ``mean_cost``, estimate, n.
    """

    def __init__(self, method: str = "partitioned", horizon_days: int = 365, interval_days: int = 30):
        self.method = method
        self.horizon_days = horizon_days
        self.interval_days = interval_days

    def fit(
        self,
        df: pd.DataFrame,
        daily: pd.DataFrame,
        id_col: str = "person_id",
        duration_col: str = "observed_day",
        complete_col: str = "complete",
        day_col: str = "day",
        amount_col: str = "amount",
        censoring_survival: np.ndarray | None = None,
    ) -> IPCWMeanCost:
        """Estimate the mean cost.

        Parameters
        ----------
        df : DataFrame
            One row per person: identifier, last day observed (``duration_col``), whether the cost
            history is complete there (``complete_col``: died, or followed to the horizon).
        daily : DataFrame
            One row per person per day with a cost (several rows per day are summed): identifier,
            day since time zero, amount >= 0. Days after the person's last observed day are ignored.
        censoring_survival : array (n, horizon + 1), optional
            Subject-specific K_i(t) = P(person i still observed on day t | covariates), in the
            order of ``df``; default: Kaplan-Meier of loss to follow-up (same for everyone).

        Returns
        -------
        self
        """
        _check_settings(self.method, self.horizon_days, self.interval_days)
        H = int(self.horizon_days)
        require_columns(df, [id_col, duration_col, complete_col], "cost estimator")
        if len(df) == 0:
            raise IpmError("cost estimator: the person table is empty")
        last, complete = _check_history(df, duration_col, complete_col, H)
        person, day, amount = _daily(daily, df[id_col], id_col, day_col, amount_col, last, H)
        n = len(df)
        if censoring_survival is None:
            K = km_censoring_survival(last, complete, H)
            self.censoring_survival_ = K

            def survival(rows, days):
                return K[days]

        else:
            Ki = np.asarray(censoring_survival, dtype=float)
            if Ki.shape != (n, H + 1) or not np.all((Ki > 0) & (Ki <= 1)):
                raise IpmError(f"censoring_survival must be an array of shape ({n}, {H + 1}) with values in (0, 1]")
            self.censoring_survival_ = None

            def survival(rows, days):
                return Ki[rows, days]

        if self.method == "simple":
            starts, ends = np.array([0]), np.array([H])
        else:
            starts, ends = interval_bounds(H, self.interval_days)
        costs = interval_costs(person, day, amount, n, starts)
        self.mean_ = ipcw_mean(costs, last, complete, ends, survival)
        total = costs.sum(axis=1)
        self.n_ = n
        self.n_complete_ = int(complete.sum())
        self.complete_case_mean_ = float(total[complete].mean()) if complete.any() else float("nan")
        self.summary = pd.DataFrame(
            [dict(measure="mean_cost", arm=None, contrast=None, horizon_days=H, estimate=self.mean_,
                  ci_low=np.nan, ci_high=np.nan, n=n)],  # fmt: skip
            columns=SUMMARY_COLUMNS,
        )
        return self


def _strategy_weights(name: str, grace: int, S: np.ndarray, referral: np.ndarray):
    """(last day consistent with the strategy, A(rows, days)) of one strategy's clones; A is the
    probability of the clone's referral history as observed relative to the strategy (see the module
    docstring), so the clone weight on day t is 1 / (A(t) K_lost(t))."""
    s_g = S[:, grace]
    referred_in = referral <= grace
    if name == "early":
        consistent_to = np.where(referred_in, NEVER, grace)
        denom = np.clip(1.0 - s_g, 1e-12, None)

        def prob(rows, days):
            # the ratio is 0 on day G for a clone not yet referred (it must be referred by then):
            # probability 1/0, weight 0
            ratio = np.where(
                referral[rows] <= days,
                1.0 / denom[rows],
                (1.0 - s_g[rows] / S[rows, np.minimum(days, grace)]) / denom[rows],
            )
            with np.errstate(divide="ignore"):
                return 1.0 / ratio

    else:
        consistent_to = np.where(referred_in, referral - 1, NEVER)

        def prob(rows, days):
            return S[rows, np.minimum(days, grace)]

    return consistent_to, prob


def _loss_survival(settings: dict, data):
    """``(rows, days) -> P(not lost before day t)``: Kaplan-Meier of loss, or a pooled logistic model
    of the daily loss hazard given the baseline covariates (at risk of loss after day s: observed on
    day s and the history not complete on it)."""
    last, complete, H = data["last"], data["complete"], settings["horizon"]
    if settings["loss_model"] == "km" or H < 1:
        K = km_censoring_survival(last, complete, H)
        return lambda rows, days: K[days]
    model = PooledLogisticHazard(interval_days=settings["loss_interval_days"], l2=settings["l2"], standardize=False)
    model.fit(data["X"], np.where(complete, last - 1, last), ~complete, horizon=H)
    log_keep = np.log1p(-np.minimum(model.interval_hazard(data["X"]), 1 - 1e-15))
    starts, widths = model.breaks_[:-1], np.diff(model.breaks_)

    def survival(rows, days):
        days_before = np.clip(np.asarray(days)[:, None] - starts[None, :], 0, widths[None, :])
        return np.exp(np.sum(log_keep[rows] * days_before, axis=1))

    return survival


def _key(outcome: str | None, measure: str, tail: str) -> str:
    """Key of a value or bootstrap replicate: ``mean/early`` for :class:`CloneCensorCost`'s one outcome
    (``outcome`` None), ``mean/<outcome>/early`` for each of :class:`MultiOutcomeCloneCensorCost`'s."""
    return f"{measure}/{tail}" if outcome is None else f"{measure}/{outcome}/{tail}"


def _costs_key(outcome: str | None) -> str:
    return "costs" if outcome is None else f"costs/{outcome}"


def _strategy_means(settings: dict, data) -> dict[str, np.ndarray]:
    """Mean cost per strategy and the difference of every outcome in ``settings["outcomes"]``, from one
    referral model and one loss curve (they depend on the persons' follow-up, referral and covariates,
    never on the costs)."""
    return _fit_strategy_means(settings, data)[0]


def _fit_strategy_means(settings: dict, data) -> tuple[dict[str, np.ndarray], dict]:
    """:func:`_strategy_means` and the referral model's warm starts for the bootstrap replicates
    (``settings["init"]``: warm starts of the full-data fit, for a replicate)."""
    grace, outcomes = settings["grace"], settings["outcomes"]
    last, complete, referral = data["last"], data["complete"], data["referral"]
    costs = [data[_costs_key(k)] for k in outcomes]
    S, start = settings["referral"].referral_fit(data["X"], last + 1, referral, range(grace + 1), settings.get("init"))
    lost = _loss_survival(settings, data)
    values: dict[str, np.ndarray] = {}
    for name in ("early", "delayed"):
        consistent_to, prob = _strategy_weights(name, grace, S, referral)
        clone_last = np.minimum(last, consistent_to)
        clone_complete = complete & (last <= consistent_to)

        def survival(rows, days, prob=prob):
            return prob(rows, days) * lost(rows, days)

        means = ipcw_means(costs, clone_last, clone_complete, settings["ends"], survival)
        for k, mean in zip(outcomes, means, strict=True):
            values[_key(k, "mean", name)] = np.array(mean)
    for k in outcomes:
        values[_key(k, "difference", "early/delayed")] = values[_key(k, "mean", "early")] - values[_key(k, "mean", "delayed")]
    return values, start


def _strategy_inputs(df, dailies: Mapping, cols: dict, horizon: int, method: str, interval_days: int, what: str):
    """The person-level arrays both strategy comparisons read: last observed day, complete, referral day
    (NEVER when none is seen while observed), costs per interval of each outcome (``dailies``:
    ``{outcome: daily cost table}``, outcome None for a single one); and the intervals' last days.
    ``cols``: the id, duration, complete, referral, day and amount columns; ``what`` names the caller in errors."""
    id_col, duration_col, complete_col, referral_col = (cols[k] for k in ("id", "duration", "complete", "referral"))
    require_columns(df, [id_col, duration_col, complete_col, referral_col], what)
    if len(df) == 0:
        raise IpmError(f"{what}: the person table is empty")
    last, complete = _check_history(df, duration_col, complete_col, horizon)
    referral = integer_days(df[referral_col], referral_col, nullable=True)
    referral = np.where(referral <= last, referral, NEVER)  # a referral is seen only while observed
    if method == "simple":
        starts, ends = np.array([0]), np.array([horizon])
    else:
        starts, ends = interval_bounds(horizon, interval_days)
    data = {"last": last, "complete": complete, "referral": referral}
    for k, daily in dailies.items():
        try:
            person, day, amount = _daily(daily, df[id_col], id_col, cols["day"], cols["amount"], last, horizon)
        except IpmError as exc:
            raise IpmError(str(exc) if k is None else f"{k}: {exc}") from None
        data[_costs_key(k)] = interval_costs(person, day, amount, len(df), starts)
    return data, ends


def _strategy_summary(values: dict, bootstrap: BootstrapResult | None, n_arm: dict, n: int, horizon: int, alpha: float,
                      outcome: str | None = None):  # fmt: skip
    """The summary of a two-strategy cost comparison: one row per arm (``mean_cost``), one for the difference."""
    rows = []
    for key, measure, arm, contrast, count in (
        (_key(outcome, "mean", "early"), "mean_cost", "early", None, n_arm["early"]),
        (_key(outcome, "mean", "delayed"), "mean_cost", "delayed", None, n_arm["delayed"]),
        (_key(outcome, "difference", "early/delayed"), "mean_cost_difference", None, "early vs delayed", n),
    ):
        lo, hi = (np.nan, np.nan) if bootstrap is None else bootstrap.interval(key, 1 - alpha)
        rows.append(dict(measure=measure, arm=arm, contrast=contrast, horizon_days=horizon, estimate=float(values[key]),
                         ci_low=float(lo), ci_high=float(hi), n=count))  # fmt: skip
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


class _Statistic:
    """Picklable bootstrap statistic: refit the referral model and the loss curve on a resample, once for
    every outcome."""

    def __init__(self, settings: dict):
        self.settings = settings

    def __call__(self, data):
        return _strategy_means(self.settings, data)


class _StrategyCost(BaseEstimator):
    """What :class:`CloneCensorCost` and :class:`MultiOutcomeCloneCensorCost` share: settings, the referral
    model, the loss curve and the bootstrap."""

    def __init__(
        self,
        grace_period_days: int = 42,
        horizon_days: int = 365,
        method: str = "partitioned",
        interval_days: int = 30,
        hazard_interval_days: int = 7,
        hazard_block_days: int | None = None,
        l2: float = 0.0,
        loss_model: str = "km",
        loss_interval_days: int = 30,
        n_bootstrap: int = 200,
        seed: int = 0,
        workers: int | None = None,
        alpha: float = 0.05,
    ):
        self.grace_period_days = grace_period_days
        self.horizon_days = horizon_days
        self.method = method
        self.interval_days = interval_days
        self.hazard_interval_days = hazard_interval_days
        self.hazard_block_days = hazard_block_days
        self.l2 = l2
        self.loss_model = loss_model
        self.loss_interval_days = loss_interval_days
        self.n_bootstrap = n_bootstrap
        self.seed = seed
        self.workers = workers
        self.alpha = alpha

    def _fit(self, df, dailies: Mapping, covariates, cols: dict, categorical, what: str) -> dict:
        """Clone, censor, weight and estimate every outcome of ``dailies``; sets the fitted attributes the
        two estimators share and returns the per-arm person counts."""
        _check_settings(self.method, self.horizon_days, self.interval_days)
        check_alpha(self.alpha)
        H, G = int(self.horizon_days), int(self.grace_period_days)
        if not 0 <= G < H:
            raise IpmError(f"grace_period_days ({G}) must be >= 0 and below horizon_days ({H})")
        if self.loss_model not in LOSS_MODELS or int(self.loss_interval_days) < 1:
            raise IpmError(
                f"loss_model={self.loss_model!r}, loss_interval_days={self.loss_interval_days!r}: use one of "
                f"{', '.join(LOSS_MODELS)} and a whole number of days >= 1"
            )
        data, ends = _strategy_inputs(df, dailies, cols, H, self.method, self.interval_days, what)
        design = build_design(df, covariates, categorical=categorical)
        data["X"] = standardize(design.matrix)
        complete, referral = data["complete"], data["referral"]
        referral_model = CloneCensorWeight(
            grace_period_days=G,
            strategies=grace_period_strategies(G),
            horizons=(H,),
            hazard_interval_days=self.hazard_interval_days,
            hazard_block_days=self.hazard_block_days,
            l2=self.l2,
            n_bootstrap=0,
        )
        settings = {
            "grace": G,
            "horizon": H,
            "ends": ends,
            "outcomes": tuple(dailies),
            "referral": referral_model,
            "loss_model": self.loss_model,
            "loss_interval_days": int(self.loss_interval_days),
            "l2": self.l2,
        }
        values, start = _fit_strategy_means(settings, data)
        self.design_ = design
        self.values_ = values
        self.n_ = len(df)
        self.n_complete_ = int(complete.sum())
        self.bootstrap_: BootstrapResult | None = None
        if self.n_bootstrap > 0:
            # each replicate refits the referral model from the full-data fit's coefficients (and Hessian)
            self.bootstrap_ = boot.run(
                _Statistic({**settings, "init": start}), data, values, n_replicates=self.n_bootstrap, seed=self.seed,
                workers=self.workers,
            )
        return {"early": int(np.sum(referral <= G)), "delayed": int(np.sum(referral > G))}


class CloneCensorCost(_StrategyCost):
    """Mean cost over days 0..horizon per referral-timing strategy, by clone-censor-weight (module docstring).

    Parameters
    ----------
    grace_period_days : int
        Grace period G: "early" = referral on days 0..G, "delayed" = none by day G.
    horizon_days : int
        Last day of the cost window.
    method : {"partitioned", "simple"}
    interval_days : int
        Intervals of the partitioned estimator.
    hazard_interval_days, hazard_block_days, l2
        Settings of the referral model, as :class:`~ipm_outcomes.estimators.ccw.CloneCensorWeight`
        (``l2`` also of the loss model).
    loss_model : {"km", "pooled_logistic"}
        Probability of not being lost to follow-up: Kaplan-Meier (loss independent of the covariates,
        the textbook default), or a pooled logistic model of the daily loss hazard given the baseline
        covariates (loss that depends on them; piecewise-constant baseline of ``loss_interval_days``).
    n_bootstrap, seed, workers, alpha
        Person-level bootstrap (``n_bootstrap=0``: point estimates only).

    Attributes (after ``fit``)
    --------------------------
    summary : DataFrame
        One row per arm (measure ``mean_cost``) and one for the difference early - delayed
        (``mean_cost_difference``): estimate, ci_low, ci_high, n (persons who followed the arm's
        strategy; all persons for the difference).
    values_ : dict
        ``mean/early``, ``mean/delayed``, ``difference/early/delayed``.
    bootstrap_ : BootstrapResult or None
    n_, n_complete_ : int
    """

    def fit(
        self,
        df: pd.DataFrame,
        daily: pd.DataFrame,
        covariates: list[str],
        id_col: str = "person_id",
        duration_col: str = "observed_day",
        complete_col: str = "complete",
        referral_col: str = "referral_day",
        day_col: str = "day",
        amount_col: str = "amount",
        categorical: list[str] | tuple[str, ...] = (),
    ) -> CloneCensorCost:
        """Clone, censor, weight and estimate the mean cost per strategy.

        Parameters
        ----------
        df : DataFrame
            One row per person: identifier, last day observed, complete (died or followed to the
            horizon), referral day (null = none while observed), baseline covariates.
        daily : DataFrame
            One row per person per day with a cost: identifier, day, amount >= 0.
        covariates : list of str
            Baseline covariates of the referral model.
        categorical : list of str
            Covariates to dummy-code although numeric.

        Returns
        -------
        self
        """
        cols = dict(id=id_col, duration=duration_col, complete=complete_col, referral=referral_col, day=day_col,
                    amount=amount_col)
        n_arm = self._fit(df, {None: daily}, covariates, cols, categorical, "clone-censor-weight costs")
        self.summary = _strategy_summary(self.values_, self.bootstrap_, n_arm, self.n_, int(self.horizon_days), self.alpha)
        return self


class MultiOutcomeCloneCensorCost(_StrategyCost):
    """:class:`CloneCensorCost` for several cost outcomes of the same persons with one referral model, one
    loss curve and one bootstrap.

    What is shared, and why that is valid: a clone's weight on day t, ``1 / (A_i(t) K_lost(t))``, depends
    on the person's covariates, referral day and follow-up (last observed day, complete or not), and the
    referral and loss models are fitted to those alone; the costs enter only the weighted sums. Cost
    outcomes of the same persons with the same follow-up (all-claims and back-pain costs over the same
    window end where the person's follow-up ends) therefore have the same models and weights, and one
    fit, and in each bootstrap replicate one resample of persons, one refit of both models, serve them
    all. Each outcome's estimates, intervals and bootstrap replicates equal those of its own
    :class:`CloneCensorCost` with the same seed (tests/estimators/test_costs.py).

    Parameters
    ----------
    As :class:`CloneCensorCost`.

    Attributes (after ``fit``)
    --------------------------
    summary : DataFrame
        :class:`CloneCensorCost`'s summary of every outcome, stacked, with an ``outcome`` column first.
    values_ : dict
        ``mean/<outcome>/early``, ``mean/<outcome>/delayed``, ``difference/<outcome>/early/delayed``.
    outcomes_ : tuple of str
    bootstrap_ : BootstrapResult or None
    n_, n_complete_ : int
    """

    def fit(
        self,
        df: pd.DataFrame,
        daily: Mapping[str, pd.DataFrame],
        covariates: list[str],
        id_col: str = "person_id",
        duration_col: str = "observed_day",
        complete_col: str = "complete",
        referral_col: str = "referral_day",
        day_col: str = "day",
        amount_col: str = "amount",
        categorical: list[str] | tuple[str, ...] = (),
    ) -> MultiOutcomeCloneCensorCost:
        """Clone, censor, weight once; estimate the mean cost per strategy of every outcome.

        Parameters
        ----------
        df : DataFrame
            One row per person, as :meth:`CloneCensorCost.fit`: the follow-up every outcome shares.
        daily : dict
            ``{outcome: daily cost table}``, each one row per person per day with a cost: identifier,
            day, amount >= 0.
        covariates, categorical
            As :meth:`CloneCensorCost.fit`.

        Returns
        -------
        self
        """
        if not daily:
            raise IpmError("multi-outcome clone-censor-weight costs: no outcomes given")
        dailies = {str(k): v for k, v in daily.items()}
        cols = dict(id=id_col, duration=duration_col, complete=complete_col, referral=referral_col, day=day_col,
                    amount=amount_col)
        n_arm = self._fit(df, dailies, covariates, cols, categorical, "multi-outcome clone-censor-weight costs")
        self.outcomes_ = tuple(dailies)
        H = int(self.horizon_days)
        self.summary = pd.concat(
            [_strategy_summary(self.values_, self.bootstrap_, n_arm, self.n_, H, self.alpha, k).assign(outcome=k)
             for k in self.outcomes_],
            ignore_index=True,
        )[["outcome", *SUMMARY_COLUMNS]]
        return self


def _naive_means(settings: dict, data) -> dict[str, np.ndarray]:
    """Bang-Tsiatis mean per eventual-referral group, each with its own Kaplan-Meier of loss."""
    H, ends = settings["horizon"], settings["ends"]
    values: dict[str, np.ndarray] = {}
    for code, name in enumerate(("early", "delayed")):
        rows = np.flatnonzero(data["group"] == code)
        if rows.size == 0:
            values[f"mean/{name}"] = np.array(np.nan)
            continue
        last, complete = data["last"][rows], data["complete"][rows]
        K = km_censoring_survival(last, complete, H)
        values[f"mean/{name}"] = np.array(ipcw_mean(data["costs"][rows], last, complete, ends, lambda r, d, K=K: K[d]))
    values["difference/early/delayed"] = values["mean/early"] - values["mean/delayed"]
    return values


class _NaiveStatistic:
    """Picklable bootstrap statistic of :class:`NaiveCostComparison`."""

    def __init__(self, settings: dict):
        self.settings = settings

    def __call__(self, data):
        return _naive_means(self.settings, data)


class NaiveCostComparison(BaseEstimator):
    """Mean cost over days 0..horizon by eventual referral timing, unadjusted: biased by design.

    Persons referred on days 0..G (as far as their follow-up shows) against the rest, compared as they
    were observed: no cloning, no weighting for who is referred when. Shown beside
    :class:`CloneCensorCost` as the naive return-to-work comparison is beside the clone-censor-weight one
    (immortal time: a person must survive uncensored to day r to be "referred on day r"; confounding by
    indication: the sicker are referred sooner and cost more). Censored follow-up is handled as in
    :class:`IPCWMeanCost`, with a Kaplan-Meier of loss within each group, so the bias shown is the
    comparison's, not the dropping of censored persons.

    Parameters
    ----------
    grace_period_days, horizon_days, method, interval_days
        As :class:`CloneCensorCost`.
    n_bootstrap, seed, workers, alpha
        Person-level bootstrap (``n_bootstrap=0``: point estimates only).

    Attributes (after ``fit``)
    --------------------------
    summary : DataFrame
        As :class:`CloneCensorCost`'s: one row per group (measure ``mean_cost``, n = persons in it) and
        one for the difference early - delayed (``mean_cost_difference``, n = all persons).
    values_ : dict
    bootstrap_ : BootstrapResult or None
    """

    def __init__(
        self,
        grace_period_days: int = 42,
        horizon_days: int = 365,
        method: str = "partitioned",
        interval_days: int = 30,
        n_bootstrap: int = 200,
        seed: int = 0,
        workers: int | None = None,
        alpha: float = 0.05,
    ):
        self.grace_period_days = grace_period_days
        self.horizon_days = horizon_days
        self.method = method
        self.interval_days = interval_days
        self.n_bootstrap = n_bootstrap
        self.seed = seed
        self.workers = workers
        self.alpha = alpha

    def fit(
        self,
        df: pd.DataFrame,
        daily: pd.DataFrame,
        id_col: str = "person_id",
        duration_col: str = "observed_day",
        complete_col: str = "complete",
        referral_col: str = "referral_day",
        day_col: str = "day",
        amount_col: str = "amount",
    ) -> NaiveCostComparison:
        """Estimate the mean cost per eventual-referral group; arguments as :meth:`CloneCensorCost.fit`
        without covariates."""
        _check_settings(self.method, self.horizon_days, self.interval_days)
        check_alpha(self.alpha)
        H, G = int(self.horizon_days), int(self.grace_period_days)
        cols = dict(id=id_col, duration=duration_col, complete=complete_col, referral=referral_col, day=day_col,
                    amount=amount_col)
        data, ends = _strategy_inputs(df, {None: daily}, cols, H, self.method, self.interval_days, "naive cost comparison")
        data["group"] = np.where(data.pop("referral") <= G, 0, 1)
        settings = {"horizon": H, "ends": ends}
        values = _naive_means(settings, data)
        self.values_ = values
        self.bootstrap_: BootstrapResult | None = None
        if self.n_bootstrap > 0:
            self.bootstrap_ = boot.run(
                _NaiveStatistic(settings), data, values, n_replicates=self.n_bootstrap, seed=self.seed, workers=self.workers
            )
        n_early = int(np.sum(data["group"] == 0))
        n_arm = {"early": n_early, "delayed": len(df) - n_early}
        self.summary = _strategy_summary(values, self.bootstrap_, n_arm, len(df), H, self.alpha)
        return self
