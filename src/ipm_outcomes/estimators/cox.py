"""Cox proportional-hazards regression (Breslow ties) for counting-process data, in numpy.

lifelines' ``CoxPHFitter(robust=True)`` with weights took over two minutes for one fit on 10^5
rows here; this fitter computes the risk-set sums with cumulative sums over the distinct event
times and the information matrix as one weighted ``X.T @ X`` product, so a fit on 10^5 persons
with tens of covariates takes about a second. It supports delayed entry (start-stop rows, for
time-varying covariates), case weights and a cluster-robust (sandwich) variance (Lin & Wei 1989;
Binder 1992), as R's ``coxph(..., cluster=id)``.

Ties: Breslow. Without tied event times this equals Efron's method (lifelines' default), which
is how the tests compare the two.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse, stats

from ..errors import IpmError
from .base import BaseEstimator


class CoxRegression(BaseEstimator):
    """Cox model with Breslow ties, start-stop rows, weights and cluster-robust standard errors.

    Parameters
    ----------
    alpha : float
        1 - confidence level of the reported intervals.
    max_iter, tol : Newton-Raphson settings.

    Attributes (after ``fit``)
    --------------------------
    params_ : Series
        Log hazard ratios, one per covariate.
    variance_matrix_ : DataFrame
        Robust (sandwich) variance when ``cluster`` or ``weights`` were given (or ``robust=True``),
        otherwise the inverse information.
    summary : DataFrame
        One row per covariate: coef, exp(coef), se(coef), z, p, lower/upper bounds of coef and exp(coef).
    log_likelihood_ : float
        Log partial likelihood at the estimate.
    """

    def __init__(self, alpha: float = 0.05, max_iter: int = 50, tol: float = 1e-9):
        self.alpha = alpha
        self.max_iter = max_iter
        self.tol = tol

    def fit(
        self,
        X,
        stop,
        event,
        start=None,
        weights=None,
        cluster=None,
        robust: bool | None = None,
        names: list[str] | None = None,
    ) -> CoxRegression:
        """Fit.

        Parameters
        ----------
        X : array (n, p)
            Covariates of each row (constant over the row's interval).
        stop : array (n,)
            End of each row's interval (event or censoring time).
        event : array of bool (n,)
            Whether the row ends in the event.
        start : array (n,), optional
            Start of each row's interval (the row is at risk on (start, stop]); default: -inf.
        weights : array (n,), optional
            Case weights.
        cluster : array (n,), optional
            Cluster (person) of each row, for the robust variance.
        robust : bool, optional
            Sandwich variance; default: when weights or clusters are given.
        names : list of str, optional
            Covariate names.
        """
        X = np.asarray(X, dtype=float)
        n, p = X.shape
        stop = np.asarray(stop, dtype=float)
        event = np.asarray(event).astype(bool)
        start = np.full(n, -np.inf) if start is None else np.asarray(start, dtype=float)
        w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
        if np.any(stop <= start):
            raise IpmError("Cox model: every row needs stop > start")
        robust = (weights is not None or cluster is not None) if robust is None else robust
        names = names or [f"x{j}" for j in range(p)]
        times = np.unique(stop[event])
        K = times.shape[0]
        if K == 0:
            raise IpmError("Cox model: no events to fit")
        # row r is at risk at event times k in [lo_r, hi_r)
        lo = np.searchsorted(times, start, side="right")
        hi = np.searchsorted(times, stop, side="right")
        ev_k = np.searchsorted(times, stop[event])
        d = np.bincount(ev_k, weights=w[event], minlength=K)
        enter = sparse.csr_matrix((np.ones(n), (lo, np.arange(n))), shape=(K + 1, n))
        leave = sparse.csr_matrix((np.ones(n), (hi, np.arange(n))), shape=(K + 1, n))
        delta = (enter - leave).tocsr()
        # centring keeps exp(eta) in range; it does not change the estimates
        center = (w @ X) / w.sum()
        Z = X - center
        score_events = Z[event].T @ w[event]

        def sums(beta):
            risk = w * np.exp(Z @ beta)
            s0 = np.cumsum(delta @ risk)[:K]
            s1 = np.cumsum(delta @ (Z * risk[:, None]), axis=0)[:K]
            return risk, s0, s1

        def loglik(beta, s0):
            return float(w[event] @ (Z[event] @ beta) - d @ np.log(s0))

        beta = np.zeros(p)
        risk, s0, s1 = sums(beta)
        ll = loglik(beta, s0)
        self.converged_ = False
        for it in range(self.max_iter):
            xbar = s1 / s0[:, None]
            score = score_events - d @ xbar
            c = np.concatenate([[0.0], np.cumsum(d / s0)])
            exposure = c[hi] - c[lo]  # sum of d_k / S0_k over the row's risk times
            Zs = Z * np.sqrt(risk * exposure)[:, None]
            xs = xbar * np.sqrt(d)[:, None]
            info = Zs.T @ Zs - xs.T @ xs
            step = np.linalg.solve(info + 1e-12 * np.eye(p), score)
            t = 1.0
            for _ in range(30):
                cand = beta + t * step
                risk_c, s0_c, s1_c = sums(cand)
                ll_c = loglik(cand, s0_c)
                if ll_c >= ll - 1e-12 * abs(ll):
                    break
                t *= 0.5
            beta, risk, s0, s1, ll = cand, risk_c, s0_c, s1_c, ll_c
            self.n_iter_ = it + 1
            if np.max(np.abs(t * step)) < self.tol:
                self.converged_ = True
                break
        xbar = s1 / s0[:, None]
        c = np.concatenate([[0.0], np.cumsum(d / s0)])
        exposure = c[hi] - c[lo]
        Zs = Z * np.sqrt(risk * exposure)[:, None]
        xs = xbar * np.sqrt(d)[:, None]
        info = Zs.T @ Zs - xs.T @ xs
        inv_info = np.linalg.inv(info)
        if robust:
            # score residuals: L_r = event_r (z_r - xbar(stop_r)) - exp(eta_r) sum_k d_k/S0_k (z_r - xbar_k)
            G = np.vstack([np.zeros((1, p)), np.cumsum(xbar * (d / s0)[:, None], axis=0)])
            e_eta = np.exp(Z @ beta)
            resid = -e_eta[:, None] * (Z * exposure[:, None] - (G[hi] - G[lo]))
            resid[event] += Z[event] - xbar[ev_k]
            resid *= w[:, None]
            if cluster is not None:
                codes = pd.factorize(np.asarray(cluster))[0]
                resid = np.vstack([np.bincount(codes, weights=resid[:, j]) for j in range(p)]).T
            meat = resid.T @ resid
            variance = inv_info @ meat @ inv_info
        else:
            variance = inv_info
        se = np.sqrt(np.diag(variance))
        z = beta / se
        q = stats.norm.ppf(1 - self.alpha / 2)
        self.params_ = pd.Series(beta, index=names, name="coef")
        self.variance_matrix_ = pd.DataFrame(variance, index=names, columns=names)
        self.log_likelihood_ = ll
        self.robust_ = robust
        self.summary = pd.DataFrame(
            {
                "coef": beta,
                "exp(coef)": np.exp(beta),
                "se(coef)": se,
                "z": z,
                "p": 2 * stats.norm.sf(np.abs(z)),
                "coef lower": beta - q * se,
                "coef upper": beta + q * se,
                "exp(coef) lower": np.exp(beta - q * se),
                "exp(coef) upper": np.exp(beta + q * se),
            },
            index=pd.Index(names, name="covariate"),
        )
        return self
