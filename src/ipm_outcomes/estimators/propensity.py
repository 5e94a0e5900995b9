"""Treatment and censoring models: logistic regression and a pooled (discrete-time) logistic hazard.

Both are fitted by Newton-Raphson in numpy. They run hundreds of times inside the bootstrap, so
they must be fast and deterministic: a full Newton step on 10^5 persons and ~50 covariates costs
one ``X.T @ (w * X)`` product, and they converge in a handful of steps (fewer from a warm start).
Covariates are standardised internally (the estimates do not depend on it).

By default both are the textbook maximum-likelihood fits (equal to statsmodels' ``GLM`` to 1e-7,
see tests/estimators/test_propensity.py). ``l2`` adds a ridge penalty on the standardised slopes,
per unit of total weight: it keeps the fit finite under separation (a rare category seen in one
group only, where the likelihood has no maximum and ``converged_`` stays false), at the price of
shrinking coefficients (noticeably those of squared terms even at 1e-4). The study's analysis sets
it from the spec key ``analysis.model_l2_penalty``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit as _expit

from ..errors import IpmError
from .base import BaseEstimator


def _log1pexp(x: np.ndarray) -> np.ndarray:
    # log(1 + e^x) without overflow; faster than np.logaddexp(0, x)
    return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0.0)


class _Standardizer:
    def __init__(self, X: np.ndarray, weights: np.ndarray | None = None):
        if X.shape[1] == 0:
            self.mean = np.zeros(0)
            self.scale = np.ones(0)
            return
        w = np.ones(X.shape[0]) if weights is None else weights
        tot = w.sum()
        self.mean = (w @ X) / tot
        var = (w @ (X - self.mean) ** 2) / tot
        sd = np.sqrt(var)
        self.scale = np.where(sd > 0, sd, 1.0)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean) / self.scale


class _Identity(_Standardizer):
    def __init__(self, p: int):
        self.mean = np.zeros(p)
        self.scale = np.ones(p)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return X


#: Newton steps larger than this (in standardised units) are checked by a backtracking line search;
#: smaller ones, taken near the optimum of these strictly concave likelihoods, are accepted as is.
_TRUST_STEP = 1.0


class LogisticRegression(BaseEstimator):
    """Logistic regression P(y = 1 | X) with an intercept, fitted by Newton-Raphson.

    Parameters
    ----------
    l2 : float
        Ridge penalty per unit of total weight on the standardised slopes (not the intercept);
        0 (default) is maximum likelihood. See the module docstring for when to use one.
    standardize : bool
        Centre and scale the covariates internally (turn off when the caller already did, to
        save the work inside a bootstrap).
    max_iter, tol : Newton settings (tol on the largest parameter change).

    Attributes
    ----------
    intercept_ : float
    coef_ : array (p,)
        On the original covariate scale.
    converged_ : bool
    """

    def __init__(self, l2: float = 0.0, standardize: bool = True, max_iter: int = 100, tol: float = 1e-7):
        self.l2 = l2
        self.standardize = standardize
        self.max_iter = max_iter
        self.tol = tol

    def fit(self, X, y, sample_weight=None, init: tuple[float, np.ndarray] | None = None) -> LogisticRegression:
        """Fit to covariates ``X`` (n x p) and binary ``y``; returns self.

        ``init`` = (intercept, coef) of an earlier fit (e.g. on the full data, for a bootstrap
        replicate) starts Newton-Raphson nearer the solution.
        """
        X = np.asarray(X, dtype=float)
        y = np.asarray(y, dtype=float)
        n = X.shape[0]
        if n == 0:
            raise IpmError("logistic model: no rows to fit")
        w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        self._std = _Standardizer(X, w) if self.standardize else _Identity(X.shape[1])
        Z = np.empty((n, X.shape[1] + 1))
        Z[:, 0] = 1.0
        Z[:, 1:] = self._std(X)
        p = Z.shape[1]
        lam = np.full(p, self.l2 * w.sum())
        lam[0] = 0.0
        ybar = np.clip((w @ y) / w.sum(), 1e-6, 1 - 1e-6)
        theta = np.zeros(p)
        theta[0] = np.log(ybar / (1 - ybar))
        if init is not None and len(init[1]) == p - 1:
            theta[1:] = np.asarray(init[1]) * self._std.scale
            theta[0] = init[0] + np.sum(np.asarray(init[1]) * self._std.mean)

        def objective(eta, th):
            return np.sum(w * (y * eta - _log1pexp(eta))) - 0.5 * np.sum(lam * th**2)

        eta = Z @ theta
        self.converged_ = False
        self.n_iter_ = 0
        hess = None
        for it in range(self.max_iter):
            mu = _expit(eta)
            grad = Z.T @ (w * (y - mu)) - lam * theta
            # converged when the step predicted by the last Hessian is negligible (saves a Hessian)
            if hess is not None:
                last = np.linalg.solve(hess, grad)
                if np.max(np.abs(last)) < self.tol:
                    theta = theta + last
                    self.converged_ = True
                    break
            # Zs.T @ Zs with Zs = sqrt(weights) * Z runs as a symmetric rank-k update (half the work)
            Zs = Z * np.sqrt(w * mu * (1 - mu))[:, None]
            hess = Zs.T @ Zs + np.diag(lam)
            hess[np.diag_indices(p)] += 1e-10
            step = np.linalg.solve(hess, grad)
            cand = theta + step
            eta_c = Z @ cand
            if np.max(np.abs(step)) > _TRUST_STEP:
                obj = objective(eta, theta)
                t = 1.0
                for _ in range(30):
                    if objective(eta_c, cand) >= obj - 1e-12 * abs(obj):
                        break
                    t *= 0.5
                    cand = theta + t * step
                    eta_c = Z @ cand
            theta, eta = cand, eta_c
            self.n_iter_ = it + 1
        self._theta = theta
        self.coef_ = theta[1:] / self._std.scale
        self.intercept_ = float(theta[0] - np.sum(self.coef_ * self._std.mean))
        return self

    def linear_predictor(self, X) -> np.ndarray:
        """Log-odds for each row of ``X``."""
        return self.intercept_ + np.asarray(X, dtype=float) @ self.coef_

    def predict_proba(self, X) -> np.ndarray:
        """P(y = 1 | X) for each row of ``X``."""
        return _expit(self.linear_predictor(X))


class PooledLogisticHazard(BaseEstimator):
    """Discrete-time (daily) hazard model: logit h(s | X) = alpha_j(s) + X beta.

    The baseline is piecewise constant over intervals of ``interval_days`` days. The model is the
    pooled logistic regression on person-days, but it is fitted without expanding the data: with
    baseline covariates the person-days of one person in one interval share one probability, so
    each person contributes (days at risk, events) per interval. This is exact, and costs
    O(n x intervals) per Newton step instead of O(n x days).

    Parameters
    ----------
    interval_days : int
        Width of the baseline-hazard intervals.
    l2, standardize, max_iter, tol : as in :class:`LogisticRegression` (unpenalised by default).

    Attributes
    ----------
    horizon_ : int
        Days ``0 .. horizon_-1`` are modelled.
    breaks_ : array
        Interval start days (plus ``horizon_`` at the end).
    alpha_ : array
        Interval log-odds at mean covariates (``-inf`` for intervals without events).
    coef_ : array (p,)
    """

    def __init__(
        self, interval_days: int = 7, l2: float = 0.0, standardize: bool = True, max_iter: int = 100, tol: float = 1e-7
    ):
        self.interval_days = interval_days
        self.l2 = l2
        self.standardize = standardize
        self.max_iter = max_iter
        self.tol = tol

    def _exposure(self, exit_day: np.ndarray, event: np.ndarray):
        """Long layout: one row per person per interval with days at risk (grain: person-interval).

        Returns (person, interval, days at risk, event) arrays; only intervals a person is at risk
        in are listed, which is far fewer rows than persons x intervals when most leave early.
        """
        c = self.breaks_
        last = np.minimum(exit_day, self.horizon_ - 1)
        at_risk = last >= 0
        last_interval = np.searchsorted(c, last, side="right") - 1
        n_rows = np.where(at_risk, last_interval + 1, 0)
        person = np.repeat(np.arange(exit_day.shape[0]), n_rows)
        first_row = np.cumsum(n_rows) - n_rows
        interval = np.arange(person.shape[0]) - np.repeat(first_row, n_rows)
        days = (np.minimum(last[person] + 1, c[interval + 1]) - c[interval]).astype(float)
        is_last = interval == last_interval[person]
        ev = (is_last & event[person] & (exit_day[person] <= self.horizon_ - 1)).astype(float)
        return person, interval, days, ev

    def fit(
        self, X, exit_day, event, horizon: int, init: tuple | None = None, sample_weight=None
    ) -> PooledLogisticHazard:
        """Fit the hazard over days ``0 .. horizon-1``.

        Parameters
        ----------
        X : array (n, p)
            Baseline covariates.
        exit_day : array of int (n,)
            Last day the person is at risk (a negative value: never at risk).
        event : array of bool (n,)
            Whether the event happens on ``exit_day``.
        horizon : int
            Number of days modelled.
        init : tuple, optional
            Starting values from an earlier fit (see :meth:`start_values`).
        sample_weight : array (n,), optional
            Person weights (e.g. inverse-probability weights): each person-day counts this much,
            as in a person-day logistic regression with these frequency weights.
        """
        X = np.asarray(X, dtype=float)
        exit_day = np.asarray(exit_day, dtype=np.int64)
        event = np.asarray(event, dtype=bool)
        if int(self.interval_days) < 1:
            raise IpmError("interval_days must be >= 1")
        if horizon < 1:
            raise IpmError("hazard model horizon must be >= 1 day")
        self.horizon_ = int(horizon)
        self.breaks_ = np.append(np.arange(0, self.horizon_, int(self.interval_days)), self.horizon_)
        n_int = len(self.breaks_) - 1
        person, interval, D, E = self._exposure(exit_day, event)
        n, p = X.shape
        n_events = int(E.sum())
        if sample_weight is None:
            self._std = _Standardizer(X) if self.standardize else _Identity(p)
            total_weight = float(n)
        else:
            w = np.asarray(sample_weight, dtype=float)
            if w.shape != (n,) or np.any(~np.isfinite(w)) or np.any(w < 0):
                raise IpmError("hazard model: sample_weight must be one finite weight >= 0 per person")
            self._std = _Standardizer(X, w) if self.standardize else _Identity(p)
            total_weight = float(w.sum())
            D, E = D * w[person], E * w[person]
        Z = self._std(X)
        ev_per = np.bincount(interval, weights=E, minlength=n_int)
        days_per = np.bincount(interval, weights=D, minlength=n_int)
        active = ev_per > 0
        J = int(active.sum())
        # intervals without events have hazard 0 (alpha = -inf): drop their rows from the fit
        keep = active[interval]
        person, D, E = person[keep], D[keep], E[keep]
        col = (np.cumsum(active) - 1)[interval[keep]]
        alpha = np.log(ev_per[active] / np.clip(days_per[active] - ev_per[active], 1e-12, None))
        beta = np.zeros(p)
        if init is not None and len(init[1]) == p and len(init[0]) == n_int:
            start_alpha = np.asarray(init[0], dtype=float)[active] + np.sum(np.asarray(init[1]) * self._std.mean)
            alpha = np.where(np.isfinite(start_alpha), start_alpha, alpha)
            beta = np.asarray(init[1], dtype=float) * self._std.scale
        lam = self.l2 * total_weight

        def linear(a, b):
            return a[col] + (Z @ b)[person]

        def loglik(eta, b):
            return np.sum(E * eta - D * _log1pexp(eta)) - 0.5 * lam * np.sum(b**2)

        def gradient(eta, b):
            resid = E - D * _expit(eta)
            g_a = np.bincount(col, weights=resid, minlength=J)
            g_b = Z.T @ np.bincount(person, weights=resid, minlength=n) - lam * b
            return np.concatenate([g_a, g_b])

        self.converged_ = p == 0
        self.n_iter_ = 0
        H = None
        if p > 0 and J > 0:
            eta = linear(alpha, beta)
            fixed = init[2] if init is not None and len(init) > 2 else None
            if fixed is not None and fixed[1].shape == active.shape and np.array_equal(fixed[1], active):
                # Chord iterations with the Hessian of an earlier fit on similar data (a bootstrap
                # replicate of it): each step costs one gradient, and converges to the same solution.
                H = fixed[0]
                for it in range(30):
                    step = np.linalg.solve(H, gradient(eta, beta))
                    if np.max(np.abs(step)) > _TRUST_STEP:
                        break  # too far for a fixed Hessian: continue with full Newton below
                    alpha, beta = alpha + step[:J], beta + step[J:]
                    eta = linear(alpha, beta)
                    self.n_iter_ = it + 1
                    if np.max(np.abs(step)) < self.tol:
                        self.converged_ = True
                        break
                H = None
            for _ in range(0 if self.converged_ else self.max_iter):
                g = gradient(eta, beta)
                if H is not None:
                    last = np.linalg.solve(H, g)
                    if np.max(np.abs(last)) < self.tol:
                        alpha, beta = alpha + last[:J], beta + last[J:]
                        self.converged_ = True
                        break
                mu = _expit(eta)
                W = D * mu * (1 - mu)
                H = np.empty((J + p, J + p))
                H[:J, :J] = np.diag(np.bincount(col, weights=W, minlength=J))
                # sum over rows of W * z_person, per interval: (J x n) @ Z without a dense J x n matrix
                per_person = np.bincount(person * J + col, weights=W, minlength=n * J).reshape(n, J)
                H[:J, J:] = per_person.T @ Z
                H[J:, :J] = H[:J, J:].T
                Zs = Z * np.sqrt(per_person.sum(1))[:, None]
                H[J:, J:] = Zs.T @ Zs + lam * np.eye(p)
                H[np.diag_indices(J + p)] += 1e-10
                step = np.linalg.solve(H, g)
                a_c, b_c = alpha + step[:J], beta + step[J:]
                eta_c = linear(a_c, b_c)
                if np.max(np.abs(step)) > _TRUST_STEP:
                    obj = loglik(eta, beta)
                    t = 1.0
                    for _ in range(30):
                        if loglik(eta_c, b_c) >= obj - 1e-12 * abs(obj):
                            break
                        t *= 0.5
                        a_c, b_c = alpha + t * step[:J], beta + t * step[J:]
                        eta_c = linear(a_c, b_c)
                alpha, beta, eta = a_c, b_c, eta_c
                self.n_iter_ += 1
        self._hessian = (H, active) if H is not None else None
        full_alpha = np.full(n_int, -np.inf)
        full_alpha[active] = alpha
        self.alpha_ = full_alpha
        self._beta_std = beta
        self.coef_ = beta / self._std.scale if p else beta
        self.n_events_ = n_events
        return self

    def start_values(self) -> tuple:
        """Starting values for a refit on similar data (a bootstrap replicate): interval intercepts
        at X = 0, coef, and the Hessian at the solution (used when covariates are not
        standardised internally, so both fits share one parametrisation)."""
        start = (self.alpha_ - np.sum(self.coef_ * self._std.mean), self.coef_)
        if not self.standardize and self._hessian is not None:
            start = start + (self._hessian,)
        return start

    def interval_hazard(self, X) -> np.ndarray:
        """Daily hazard in each interval; grain: one row per person, one column per interval."""
        Z = self._std(np.asarray(X, dtype=float))
        eta = self.alpha_[None, :] + (Z @ self._beta_std)[:, None]
        return _expit(eta)

    def survival(self, X) -> np.ndarray:
        """P(no event through day s | X); grain: one row per person, one column per day 0..horizon_-1."""
        h = self.interval_hazard(X)
        widths = np.diff(self.breaks_)
        log_keep = np.repeat(np.log1p(-np.minimum(h, 1 - 1e-15)), widths, axis=1)
        return np.exp(np.cumsum(log_keep, axis=1))


class PropensityScore(BaseEstimator):
    """Propensity score P(treated | X) by logistic regression.

    Parameters
    ----------
    l2 : float
        Ridge penalty (see :class:`LogisticRegression`); 0 = maximum likelihood.

    Attributes
    ----------
    model_ : LogisticRegression
    ps_ : array
        Fitted scores of the rows used to fit.
    """

    def __init__(self, l2: float = 0.0):
        self.l2 = l2

    def fit(self, X, treated) -> PropensityScore:
        """Fit to covariates ``X`` and a 0/1 treatment indicator; returns self."""
        treated = np.asarray(treated).astype(float)
        if treated.min(initial=0) == treated.max(initial=0):
            raise IpmError("propensity model: every person is in the same group; nothing to compare")
        self.model_ = LogisticRegression(l2=self.l2).fit(X, treated)
        self.ps_ = self.model_.predict_proba(X)
        self.prevalence_ = float(treated.mean())
        return self

    def predict(self, X) -> np.ndarray:
        """Propensity scores for new rows."""
        return self.model_.predict_proba(X)
