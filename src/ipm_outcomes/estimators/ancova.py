"""Quality of life: IPTW-weighted ANCOVA of a follow-up score, with missing follow-up weighted for.

For one instrument at one horizon: ``follow-up ~ early + baseline score + covariates``, weighted
by stabilised inverse-probability-of-treatment weights (ATE, from a propensity model of early
referral on baseline covariates) times inverse-probability-of-observation weights (from a model of
having a follow-up score given exposure, baseline score, covariates and whether the person had
been referred before the assessment window: missing at random given those). The mean difference
is the exposure coefficient; adjusted means per arm are the model's predictions with everyone set
to early (or delayed), averaged over all persons (g-computation); intervals use the
heteroscedasticity-robust covariance (HC1 by default, HC0 on request). A complete-case fit (no observation weights) is
reported beside it.

The responder analysis counts an improvement from baseline of at least the instrument's minimal
clinically important difference (MCID; direction-aware: lower is better for pain and disability
scores) and estimates the risk difference with a weighted linear probability model, among persons
with a baseline score.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import IpmError
from ._common import binary_column
from .base import BaseEstimator
from .design import build_design, require_columns, standardize
from .glm import check_cov_type
from .iptw import treatment_weights, truncate
from .propensity import LogisticRegression

def _independent(X: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Columns of X linearly independent of the columns before them (greedy, in order).

    A covariate can be constant among the persons with a follow-up score (say, a missing-baseline
    indicator) and so duplicate the intercept; dropping it changes nothing else in the fit. Works
    on the weighted Gram matrix: the part of column j not explained by the kept columns.
    """
    G = (X * w[:, None]).T @ X
    keep = np.zeros(X.shape[1], dtype=bool)
    for j in range(X.shape[1]):
        k = np.flatnonzero(keep)
        resid = G[j, j] - (G[j, k] @ np.linalg.solve(G[np.ix_(k, k)], G[k, j]) if k.size else 0.0)
        keep[j] = resid > 1e-9 * max(G[j, j], 1e-300)
    return keep


def _wls(y, X, w, cov_type="HC1"):
    """WLS with robust covariance on the independent columns; dropped columns get coefficient 0."""
    import statsmodels.api as sm  # imported here: bootstrap workers never need it, and it is slow to import

    keep = _independent(X, w)
    fit = sm.WLS(y, X[:, keep], weights=w).fit(method="qr", cov_type=cov_type)
    beta = np.zeros(X.shape[1])
    V = np.zeros((X.shape[1], X.shape[1]))
    beta[keep] = np.asarray(fit.params)
    V[np.ix_(keep, keep)] = np.asarray(fit.cov_params())
    return beta, V


class WeightedANCOVA(BaseEstimator):
    """IPTW x IPOW weighted ANCOVA with responder analysis (see module docstring).

    Parameters
    ----------
    mcid : float, optional
        Minimal clinically important difference; no responder analysis when None.
    higher_is_better : bool
        Direction of improvement (for responders).
    truncation_percentiles : (low, high) or None
        Percentiles at which the treatment and observation weights are clipped (default: none).
    l2 : float
        Ridge penalty of the propensity and observation models (0 = maximum likelihood; see
        :class:`~ipm_outcomes.estimators.propensity.LogisticRegression`).
    cov_type : {"HC1", "HC0"}
        Robust covariance of the weighted outcome models: HC1 (default; HC0 x n/(n-p), the
        small-sample correction that matters with many covariates) or HC0 (as R's sandwich).
    alpha : float
        1 - confidence level.

    Attributes (after ``fit``)
    --------------------------
    summary : DataFrame
        One row per measure per arm (or contrast) per variant: variant ('ipow' or 'complete_case'),
        measure (adjusted_mean, mean_difference, responder_proportion, responder_risk_difference),
        arm, estimate, ci_low, ci_high, n.
    descriptive_ : DataFrame
        One row per arm: persons, with follow-up, crude mean (sd) at baseline and follow-up.
    ps_, iptw_, ipow_ : arrays over the input rows.
    """

    def __init__(
        self,
        mcid: float | None = None,
        higher_is_better: bool = True,
        truncation_percentiles: tuple[float, float] | None = None,
        l2: float = 0.0,
        cov_type: str = "HC1",
        alpha: float = 0.05,
    ):
        self.mcid = mcid
        self.higher_is_better = higher_is_better
        self.truncation_percentiles = truncation_percentiles
        self.l2 = l2
        self.cov_type = cov_type
        self.alpha = alpha

    def fit(
        self,
        df: pd.DataFrame,
        treatment_col: str,
        covariates: list[str],
        outcome_col: str = "followup_score",
        baseline_col: str = "baseline_score",
        observation_covariates: list[str] = (),
        ps=None,
        design=None,
        categorical: list[str] | tuple[str, ...] = (),
    ) -> WeightedANCOVA:
        """Fit on one row per person (one instrument, one horizon).

        Parameters
        ----------
        treatment_col : str
            1/true = early referral.
        covariates : list of str
            Baseline covariates of the propensity, observation and outcome models.
        observation_covariates : list of str
            Extra predictors of having a follow-up score (e.g. referred before the window).
        ps : array, optional
            Propensity scores to use instead of fitting them (e.g. one cohort-wide model).
        design : array (n, p), optional
            The covariates already as a numeric matrix (one row per row of ``df``), to save
            rebuilding it when fitting many instruments and horizons on the same persons.
        categorical : list of str
            Covariates to dummy-code although numeric (see :func:`~ipm_outcomes.estimators.design.build_design`).
        """
        require_columns(df, [treatment_col, outcome_col, baseline_col, *observation_covariates], "ANCOVA")
        cov_type = check_cov_type(self.cov_type)
        if cov_type == "nonrobust":
            raise IpmError("ANCOVA: weights are not counts of persons; use cov_type HC0 or HC1")
        n = len(df)
        treat = binary_column(df, treatment_col).astype(float)
        if n == 0 or treat.min() == treat.max():
            raise IpmError("ANCOVA: both exposure groups are needed")
        y = pd.to_numeric(df[outcome_col], errors="coerce").to_numpy(float)
        base = pd.to_numeric(df[baseline_col], errors="coerce").to_numpy(float)
        observed = np.isfinite(y)
        if observed.sum() < 10 or np.unique(treat[observed]).size < 2:
            raise IpmError("ANCOVA: too few follow-up scores in one exposure group to compare")
        if design is None:
            design = build_design(df, covariates, categorical=categorical).matrix
        Xc = standardize(np.asarray(design, dtype=float))
        if ps is None:
            ps = LogisticRegression(l2=self.l2, standardize=False).fit(Xc, treat).predict_proba(Xc)
        iptw = treatment_weights(ps, treat, "ate", stabilized=True)
        iptw, *_ = truncate(iptw, self.truncation_percentiles)
        base_missing = ~np.isfinite(base)
        base_filled = np.where(base_missing, np.nanmean(base) if (~base_missing).any() else 0.0, base)
        extra = build_design(df, list(observation_covariates)).matrix if observation_covariates else np.zeros((n, 0))
        cols = [treat[:, None], standardize(base_filled[:, None])]
        if base_missing.any() and not base_missing.all():
            cols.append(base_missing[:, None].astype(float))
        obs_X = np.hstack(cols + [Xc, standardize(extra)])
        if observed.all():
            p_obs = np.ones(n)
        else:
            p_obs = LogisticRegression(l2=self.l2, standardize=False).fit(obs_X, observed).predict_proba(obs_X)
        ipow = np.where(observed, observed.mean() / np.clip(p_obs, 1e-6, None), 0.0)
        if self.truncation_percentiles is not None:
            clipped, *_ = truncate(ipow[observed], self.truncation_percentiles)
            ipow[observed] = clipped
        self.ps_, self.iptw_, self.ipow_ = ps, iptw, ipow
        outcome_X = np.hstack([np.ones((n, 1))] + cols + [Xc])
        rows = []
        q = stats.norm.ppf(1 - self.alpha / 2)

        def add(variant, measure, arm, est, se, n_used):
            rows.append(
                dict(
                    variant=variant,
                    measure=measure,
                    arm=arm,
                    estimate=float(est),
                    ci_low=float(est - q * se),
                    ci_high=float(est + q * se),
                    n=int(n_used),
                )
            )

        for variant, w in (("ipow", iptw * ipow), ("complete_case", iptw)):
            beta, V = _wls(y[observed], outcome_X[observed], w[observed], cov_type)
            for arm, value in (("early", 1.0), ("delayed", 0.0)):
                a = outcome_X.copy()
                a[:, 1] = value
                a = a.mean(axis=0)
                add(variant, "adjusted_mean", arm, a @ beta, np.sqrt(a @ V @ a), np.sum(observed & (treat == value)))
            add(variant, "mean_difference", None, beta[1], np.sqrt(V[1, 1]), observed.sum())

        if self.mcid is not None:
            has_base = ~base_missing
            both = has_base & observed
            if both.sum() >= 10 and np.unique(treat[both]).size == 2:
                change = (y - base) * (1 if self.higher_is_better else -1)
                responder = (change >= self.mcid).astype(float)
                rX = np.hstack([np.ones((n, 1)), treat[:, None], standardize(base_filled[:, None]), Xc])
                if both.sum() < has_base.sum():
                    p_resp = (
                        LogisticRegression(l2=self.l2, standardize=False)
                        .fit(obs_X[has_base], observed[has_base])
                        .predict_proba(obs_X)
                    )
                else:
                    p_resp = np.ones(n)
                w_resp = iptw * np.where(both, both.sum() / max(has_base.sum(), 1) / np.clip(p_resp, 1e-6, None), 0.0)
                beta, V = _wls(responder[both], rX[both], w_resp[both], cov_type)
                for arm, value in (("early", 1.0), ("delayed", 0.0)):
                    a = rX[has_base].copy()
                    a[:, 1] = value
                    a = a.mean(axis=0)
                    add(
                        "ipow",
                        "responder_proportion",
                        arm,
                        a @ beta,
                        np.sqrt(a @ V @ a),
                        np.sum(both & (treat == value)),
                    )
                add("ipow", "responder_risk_difference", None, beta[1], np.sqrt(V[1, 1]), both.sum())
        self.summary = pd.DataFrame(rows, columns=["variant", "measure", "arm", "estimate", "ci_low", "ci_high", "n"])
        desc = []
        for arm, value in (("early", 1.0), ("delayed", 0.0)):
            g = treat == value
            desc.append(
                dict(
                    arm=arm,
                    n=int(g.sum()),
                    n_followup=int((g & observed).sum()),
                    n_baseline=int((g & ~base_missing).sum()),
                    baseline_mean=float(np.nanmean(base[g])) if (g & ~base_missing).any() else np.nan,
                    baseline_sd=float(np.nanstd(base[g], ddof=1)) if (g & ~base_missing).sum() > 1 else np.nan,
                    followup_mean=float(np.nanmean(y[g])) if (g & observed).any() else np.nan,
                    followup_sd=float(np.nanstd(y[g], ddof=1)) if (g & observed).sum() > 1 else np.nan,
                )
            )
        self.descriptive_ = pd.DataFrame(desc)
        return self
