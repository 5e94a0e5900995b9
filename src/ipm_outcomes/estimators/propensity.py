"""Treatment and censoring models: logistic regression and a pooled (discrete-time) logistic hazard.

Both are fitted by Newton-Raphson in numpy. They run hundreds of times inside the bootstrap, so
they must be fast and deterministic: a full Newton step on 10^5 persons and ~50 covariates costs
one ``X.T @ (w * X)`` product, and they converge in a handful of steps (fewer from a warm start).
Covariates are standardised internally; a small ridge penalty on the (standardised) slopes keeps
the fit finite under separation (e.g. a rare category seen only in one group) without
noticeably shrinking well-identified coefficients.
"""

from __future__ import annotations

import numpy as np

from ..errors import IpmError


def _expit(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


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


class LogisticRegression:
    """Logistic regression P(y = 1 | X) with an intercept, fitted by penalised Newton-Raphson.

    Parameters
    ----------
    l2 : float
        Ridge penalty per unit of total weight on the standardised slopes (not the intercept).
    max_iter, tol : Newton settings (tol on the largest parameter change).

    Attributes
    ----------
    intercept_ : float
    coef_ : array (p,)
        On the original covariate scale.
    converged_ : bool
    """

    def __init__(self, l2: float = 1e-4, max_iter: int = 100, tol: float = 1e-8):
        self.l2 = l2
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
        self._std = _Standardizer(X, w)
        Z = np.hstack([np.ones((n, 1)), self._std(X)])
        p = Z.shape[1]
        lam = np.full(p, self.l2 * w.sum())
        lam[0] = 0.0
        ybar = np.clip((w @ y) / w.sum(), 1e-6, 1 - 1e-6)
        theta = np.zeros(p)
        theta[0] = np.log(ybar / (1 - ybar))
        if init is not None and len(init[1]) == p - 1:
            theta[1:] = np.asarray(init[1]) * self._std.scale
            theta[0] = init[0] + np.sum(np.asarray(init[1]) * self._std.mean)

        def objective(th):
            eta = Z @ th
            # log-likelihood written to stay finite for large |eta|
            ll = np.sum(w * (y * eta - np.logaddexp(0.0, eta)))
            return ll - 0.5 * np.sum(lam * th**2)

        obj = objective(theta)
        self.converged_ = False
        for it in range(self.max_iter):
            mu = _expit(Z @ theta)
            grad = Z.T @ (w * (y - mu)) - lam * theta
            hess = (Z * (w * mu * (1 - mu))[:, None]).T @ Z + np.diag(lam)
            hess[np.diag_indices(p)] += 1e-10
            step = np.linalg.solve(hess, grad)
            t = 1.0
            for _ in range(30):
                cand = theta + t * step
                new = objective(cand)
                if new >= obj - 1e-12 * abs(obj):
                    break
                t *= 0.5
            theta, obj = cand, new
            self.n_iter_ = it + 1
            if np.max(np.abs(t * step)) < self.tol:
                self.converged_ = True
                break
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


class PooledLogisticHazard:
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
    l2, max_iter, tol : as in :class:`LogisticRegression`.

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

    def __init__(self, interval_days: int = 7, l2: float = 1e-4, max_iter: int = 100, tol: float = 1e-8):
        if interval_days < 1:
            raise IpmError("interval_days must be >= 1")
        self.interval_days = int(interval_days)
        self.l2 = l2
        self.max_iter = max_iter
        self.tol = tol

    def _exposure(self, exit_day: np.ndarray, event: np.ndarray):
        c = self.breaks_
        last = np.minimum(exit_day, self.horizon_ - 1)
        start = c[:-1][None, :]
        stop = c[1:][None, :]
        days = np.clip(np.minimum(last[:, None] + 1, stop) - start, 0, None).astype(float)
        ev = (event.astype(bool) & (exit_day <= self.horizon_ - 1))[:, None] & (last[:, None] >= start) & (
            last[:, None] < stop
        )
        return days, ev.astype(float)

    def fit(self, X, exit_day, event, horizon: int, init: tuple[np.ndarray, np.ndarray] | None = None) -> PooledLogisticHazard:
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
        init : (intercepts at X = 0, coef), optional
            Starting values from an earlier fit (see :meth:`start_values`).
        """
        X = np.asarray(X, dtype=float)
        exit_day = np.asarray(exit_day, dtype=np.int64)
        event = np.asarray(event, dtype=bool)
        if horizon < 1:
            raise IpmError("hazard model horizon must be >= 1 day")
        self.horizon_ = int(horizon)
        self.breaks_ = np.append(np.arange(0, self.horizon_, self.interval_days), self.horizon_)
        days, ev = self._exposure(exit_day, event)
        n, p = X.shape
        self._std = _Standardizer(X)
        Z = self._std(X)
        active = ev.sum(axis=0) > 0
        J = int(active.sum())
        D, E = days[:, active], ev[:, active]
        alpha = np.log(E.sum(0) / np.clip(D.sum(0) - E.sum(0), 1e-12, None)) if J else np.zeros(0)
        beta = np.zeros(p)
        if init is not None and len(init[1]) == p and len(init[0]) == len(active):
            start_alpha = np.asarray(init[0], dtype=float)[active] + np.sum(np.asarray(init[1]) * self._std.mean)
            alpha = np.where(np.isfinite(start_alpha), start_alpha, alpha)
            beta = np.asarray(init[1], dtype=float) * self._std.scale
        lam = self.l2 * n

        def loglik(a, b):
            eta = a[None, :] + (Z @ b)[:, None]
            return np.sum(E * eta - D * np.logaddexp(0.0, eta)) - 0.5 * lam * np.sum(b**2)

        self.converged_ = p == 0
        self.n_iter_ = 0
        if p > 0 and J > 0:
            obj = loglik(alpha, beta)
            for it in range(self.max_iter):
                eta = alpha[None, :] + (Z @ beta)[:, None]
                mu = _expit(eta)
                resid = E - D * mu
                W = D * mu * (1 - mu)
                g = np.concatenate([resid.sum(0), Z.T @ resid.sum(1) - lam * beta])
                H = np.empty((J + p, J + p))
                H[:J, :J] = np.diag(W.sum(0))
                H[:J, J:] = W.T @ Z
                H[J:, :J] = H[:J, J:].T
                H[J:, J:] = (Z * W.sum(1)[:, None]).T @ Z + lam * np.eye(p)
                H[np.diag_indices(J + p)] += 1e-10
                step = np.linalg.solve(H, g)
                t = 1.0
                for _ in range(30):
                    a_c, b_c = alpha + t * step[:J], beta + t * step[J:]
                    new = loglik(a_c, b_c)
                    if new >= obj - 1e-12 * abs(obj):
                        break
                    t *= 0.5
                alpha, beta, obj = a_c, b_c, new
                self.n_iter_ = it + 1
                if np.max(np.abs(t * step)) < self.tol:
                    self.converged_ = True
                    break
        full_alpha = np.full(len(self.breaks_) - 1, -np.inf)
        full_alpha[active] = alpha
        self.alpha_ = full_alpha
        self._beta_std = beta
        self.coef_ = beta / self._std.scale if p else beta
        self.n_events_ = int(ev.sum())
        return self

    def start_values(self) -> tuple[np.ndarray, np.ndarray]:
        """(interval intercepts at X = 0, coef): starting values for a refit on similar data."""
        return self.alpha_ - np.sum(self.coef_ * self._std.mean), self.coef_

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


class PropensityScore:
    """Propensity score P(treated | X) by logistic regression.

    Attributes
    ----------
    model_ : LogisticRegression
    ps_ : array
        Fitted scores of the rows used to fit.
    """

    def __init__(self, l2: float = 1e-4):
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
