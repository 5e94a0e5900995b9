"""Weighted generalised linear models with sandwich (robust) standard errors, in numpy.

The outcome model of an inverse-probability-weighted analysis (a marginal structural model) is a
GLM fitted with the weights, and its standard errors must not take the weights as numbers of
persons: the robust (sandwich, "HC0") covariance is the one R's ``sandwich::vcovHC(type="HC0")``,
``geepack::geeglm`` and the ``survey`` package report for such a fit; "HC1" multiplies it by
``n / (n - p)`` (Stata's ``robust``). Both treat the weights as known; with estimated propensity
weights they are conservative for the ATE (Lunceford & Davidian 2004). The person-level bootstrap
of the estimators that use this model refits the weights instead.

Families with their canonical links: gaussian (identity), binomial (logit), poisson (log).
Fitted by iteratively reweighted least squares; equal to statsmodels' ``GLM(y, X, family,
var_weights=w).fit(cov_type=...)`` (the tests check it to 1e-6).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import expit

from ..errors import IpmError
from .base import BaseEstimator, check_alpha

FAMILIES = ("gaussian", "binomial", "poisson")
COV_TYPES = ("HC0", "HC1", "nonrobust")


def _mean(family: str, eta: np.ndarray) -> np.ndarray:
    if family == "gaussian":
        return eta
    if family == "binomial":
        return expit(eta)
    return np.exp(eta)


def _variance(family: str, mu: np.ndarray) -> np.ndarray:
    if family == "gaussian":
        return np.ones_like(mu)
    if family == "binomial":
        return mu * (1 - mu)
    return mu


def check_cov_type(cov_type: str) -> str:
    """``cov_type`` as given when known, or one readable error."""
    if cov_type not in COV_TYPES:
        raise IpmError(f"unknown cov_type {cov_type!r}; use one of {', '.join(COV_TYPES)}")
    return cov_type


def sandwich(X: np.ndarray, scores: np.ndarray, bread: np.ndarray, cov_type: str) -> np.ndarray:
    """Robust covariance ``bread @ (scores.T @ scores) @ bread`` (HC0), times ``n / (n - p)`` for HC1.

    Parameters
    ----------
    X : array (n, p)
        Design (for n and p).
    scores : array (n, p)
        Each row's contribution to the estimating equation (weight x residual x covariates).
    bread : array (p, p)
        Inverse of the (weighted) information matrix.
    """
    meat = scores.T @ scores
    cov = bread @ meat @ bread
    if cov_type == "HC1":
        n, p = X.shape
        cov = cov * n / (n - p)
    return cov


class WeightedGLM(BaseEstimator):
    """Weighted GLM with a canonical link and robust (sandwich) or model-based standard errors.

    Parameters
    ----------
    family : {"gaussian", "binomial", "poisson"}
        Outcome distribution (links: identity, logit, log).
    cov_type : {"HC0", "HC1", "nonrobust"}
        ``HC0``: the sandwich as R's sandwich/geepack/survey report (default; right for weights
        that are not counts of persons); ``HC1``: HC0 x n/(n-p); ``nonrobust``: model-based,
        taking the weights as precision (variance) weights.
    alpha : float
        1 - confidence level of the intervals in ``summary``.
    max_iter, tol : IRLS settings (tol on the largest coefficient change).

    Attributes (after ``fit``)
    --------------------------
    params_ : Series
        Coefficients, indexed by name (``const`` first when ``add_intercept``).
    cov_params_ : DataFrame
        Their covariance (``cov_type``).
    summary : DataFrame
        One row per coefficient: coef, se, z, p, ci_low, ci_high.
    scale_ : float
        Dispersion (1 for binomial and poisson; weighted residual variance for gaussian).
    converged_ : bool
    """

    def __init__(
        self, family: str = "gaussian", cov_type: str = "HC0", alpha: float = 0.05, max_iter: int = 100, tol: float = 1e-10
    ):
        self.family = family
        self.cov_type = cov_type
        self.alpha = alpha
        self.max_iter = max_iter
        self.tol = tol

    def fit(self, X, y, sample_weight=None, names=None, add_intercept: bool = True) -> WeightedGLM:
        """Fit ``y`` on ``X`` (n x p) with row weights ``sample_weight``; returns self."""
        if self.family not in FAMILIES:
            raise IpmError(f"unknown family {self.family!r}; use one of {', '.join(FAMILIES)}")
        check_cov_type(self.cov_type)
        alpha = check_alpha(self.alpha)
        if isinstance(X, pd.DataFrame):
            names = list(X.columns) if names is None else names
        X = np.asarray(X, dtype=float)
        if X.ndim == 1:
            X = X[:, None]
        y = np.asarray(y, dtype=float)
        n = X.shape[0]
        names = list(names) if names is not None else [f"x{j + 1}" for j in range(X.shape[1])]
        if add_intercept:
            X = np.hstack([np.ones((n, 1)), X])
            names = ["const", *names]
        p = X.shape[1]
        if y.shape[0] != n or len(names) != p:
            raise IpmError("GLM: X, y and names have different lengths")
        w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        if w.shape[0] != n or np.any(~np.isfinite(w)) or np.any(w < 0):
            raise IpmError("GLM: weights must be finite, >= 0 and one per row")
        if np.any(~np.isfinite(X)) or np.any(~np.isfinite(y)):
            row = int(np.flatnonzero(~np.isfinite(X).all(axis=1) | ~np.isfinite(y))[0])
            raise IpmError(f"GLM: row {row} has a missing or infinite value; drop or impute it first")
        if self.family == "binomial" and np.any((y < 0) | (y > 1)):
            raise IpmError("GLM: a binomial outcome must lie in [0, 1]")
        if self.family == "poisson" and np.any(y < 0):
            raise IpmError("GLM: a poisson outcome must be >= 0")
        if n <= p:
            raise IpmError(f"GLM: {n} rows cannot identify {p} coefficients")

        # IRLS from the usual start (mu = y shrunk towards its mean), so the first step is defined
        ybar = np.sum(w * y) / np.sum(w)
        mu = (y + ybar) / 2
        if self.family != "gaussian":
            mu = np.clip(mu, 1e-6, None if self.family == "poisson" else 1 - 1e-6)
        if self.family == "gaussian":
            eta = mu
        elif self.family == "binomial":
            eta = np.log(mu / (1 - mu))
        else:
            eta = np.log(mu)
        beta = np.zeros(p)
        self.converged_ = False
        for it in range(self.max_iter):
            var = _variance(self.family, mu)
            z = eta + (y - mu) / var  # canonical link: d eta / d mu = 1 / V(mu)
            wv = w * var
            Xs = X * np.sqrt(wv)[:, None]
            new, *_ = np.linalg.lstsq(Xs, z * np.sqrt(wv), rcond=None)
            change = np.max(np.abs(new - beta))
            beta = new
            eta = X @ beta
            mu = _mean(self.family, eta)
            self.n_iter_ = it + 1
            if self.family == "gaussian" or change < self.tol:
                self.converged_ = True
                break
        var = _variance(self.family, mu)
        bread = np.linalg.inv((X * (w * var)[:, None]).T @ X)
        resid = y - mu
        if self.family == "gaussian":
            self.scale_ = float(np.sum(w * resid**2) / (n - p))
        else:
            self.scale_ = 1.0
        if self.cov_type == "nonrobust":
            cov = self.scale_ * bread
        else:
            cov = sandwich(X, X * (w * resid)[:, None], bread, self.cov_type)
        se = np.sqrt(np.diag(cov))
        q = stats.norm.ppf(1 - alpha / 2)
        self.params_ = pd.Series(beta, index=names)
        self.cov_params_ = pd.DataFrame(cov, index=names, columns=names)
        self.bse_ = pd.Series(se, index=names)
        with np.errstate(divide="ignore", invalid="ignore"):
            zval = beta / se
        self.summary = pd.DataFrame(
            {
                "coef": beta,
                "se": se,
                "z": zval,
                "p": 2 * stats.norm.sf(np.abs(zval)),
                "ci_low": beta - q * se,
                "ci_high": beta + q * se,
            },
            index=pd.Index(names, name="covariate"),
        )
        self.nobs_ = n
        return self

    def predict(self, X, add_intercept: bool = True) -> np.ndarray:
        """Fitted means for the rows of ``X``."""
        X = np.asarray(X, dtype=float)
        if X.ndim == 1:
            X = X[:, None]
        if add_intercept:
            X = np.hstack([np.ones((X.shape[0], 1)), X])
        return _mean(self.family, X @ self.params_.to_numpy())
