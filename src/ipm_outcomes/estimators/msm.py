"""Inverse-probability-weighted mean difference: a marginal structural model with robust SE.

For a point treatment A (0/1, measured at baseline), an outcome Y and baseline confounders X:
a logistic propensity model P(A = 1 | X) gives each person a weight (ATE, ATT or overlap; see
:func:`~ipm_outcomes.estimators.iptw.treatment_weights`), and the marginal structural model
``E[Y^a] = b0 + b1 a`` is fitted by weighted least squares. ``b1`` is the mean difference (a risk
difference for a 0/1 outcome) in the weighted population; ``b0`` and ``b0 + b1`` the mean outcome
under control and under treatment (Hernan & Robins, *Causal Inference: What If*, ch. 12).

Intervals: the robust (sandwich) standard error of the weighted fit, as R's
``geeglm(y ~ a, weights = w, id = id)`` or ``survey::svyglm`` report (``HC0``; ``HC1`` on
request). It treats the weights as known, which is conservative for the ATE (Lunceford &
Davidian 2004). With ``n_bootstrap > 0`` the intervals are person-level bootstrap percentiles
instead, the propensity model refitted in every replicate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import IpmError
from . import bootstrap as boot
from ._common import binary_column, numeric_column
from .base import BaseEstimator, check_alpha
from .design import build_design, require_columns, standardize
from .glm import WeightedGLM, check_cov_type
from .iptw import ESTIMANDS, treatment_weights, truncate
from .propensity import LogisticRegression

SUMMARY_COLUMNS = ["measure", "arm", "estimate", "se", "ci_low", "ci_high", "n"]


class _Fit:
    """The whole estimate from person-level arrays (picklable: the bootstrap statistic)."""

    def __init__(self, estimator: IPWMeanDifference):
        self.params = estimator.get_params()

    def weights(self, X, treated, init=None):
        p = self.params
        model = LogisticRegression(l2=p["l2"], standardize=False).fit(X, treated, init=init)
        ps = model.predict_proba(X)
        w = treatment_weights(ps, treated, p["estimand"], stabilized=p["stabilized"])
        trunc = None if p["estimand"] == "overlap" else p["truncation_percentiles"]
        w, lo, hi, n_out = truncate(w, trunc)
        return model, ps, w, {"lower": lo, "upper": hi, "n_truncated": n_out}

    def __call__(self, data) -> dict[str, np.ndarray]:
        X, treated, y = data["X"], data["treated"], data["y"]
        if treated.all() or not treated.any():
            raise IpmError("IPW mean difference: every person is in the same treatment group")
        _, _, w, _ = self.weights(X, treated)
        b0 = np.average(y[~treated], weights=w[~treated])
        b1 = np.average(y[treated], weights=w[treated])
        return {"mean/control": np.array(b0), "mean/treated": np.array(b1), "difference": np.array(b1 - b0)}


class IPWMeanDifference(BaseEstimator):
    """Mean difference of a point treatment by inverse-probability weighting (see module docstring).

    Parameters
    ----------
    estimand : {"ate", "att", "overlap"}
        Population the difference refers to: everyone, the treated, or persons in equipoise.
    stabilized : bool
        Stabilised weights (they do not change the estimate of this saturated model; they make the
        weights average about 1 per group, which is easier to read).
    l2 : float
        Ridge penalty of the propensity model (0 = maximum likelihood; see
        :class:`~ipm_outcomes.estimators.propensity.LogisticRegression`).
    truncation_percentiles : (low, high) or None
        Clip ATE/ATT weights at these percentiles; ``None`` (default) leaves them as they are.
    cov_type : {"HC0", "HC1"}
        Robust standard-error type (HC0 as R's sandwich/geepack/survey; HC1 = HC0 x n/(n-2)).
    n_bootstrap, seed, workers : int
        Person-level bootstrap (0 = robust sandwich intervals only).
    alpha : float
        1 - confidence level.

    Attributes (after ``fit``)
    --------------------------
    summary : DataFrame
        One row per measure per arm: ``mean`` for arm ``treated`` and ``control``, then
        ``mean_difference`` (arm None); estimate, se, ci_low, ci_high, n (persons in the arm, or
        in all for the difference).
    msm_ : WeightedGLM
        The weighted outcome model ``y ~ 1 + treated``.
    propensity_ : LogisticRegression
    ps_, weights_ : arrays, one per input row.
    design_ : Design
        How the covariates entered the propensity model.
    truncation_ : dict
        Caps and the number of weights outside them.
    bootstrap_ : BootstrapResult or None
    """

    def __init__(
        self,
        estimand: str = "ate",
        stabilized: bool = True,
        l2: float = 0.0,
        truncation_percentiles: tuple[float, float] | None = None,
        cov_type: str = "HC0",
        n_bootstrap: int = 0,
        seed: int = 0,
        workers: int | None = None,
        alpha: float = 0.05,
    ):
        self.estimand = estimand
        self.stabilized = stabilized
        self.l2 = l2
        self.truncation_percentiles = truncation_percentiles
        self.cov_type = cov_type
        self.n_bootstrap = n_bootstrap
        self.seed = seed
        self.workers = workers
        self.alpha = alpha

    def fit(
        self,
        df: pd.DataFrame,
        outcome_col: str,
        treatment_col: str,
        covariates: list[str],
        categorical: list[str] | tuple[str, ...] = (),
    ) -> IPWMeanDifference:
        """Fit on one row per person.

        Parameters
        ----------
        df : DataFrame
        outcome_col : str
            Numeric outcome (0/1 for a risk difference), present in every row.
        treatment_col : str
            0/1 or boolean treatment indicator.
        covariates : list of str
            Baseline confounders of the propensity model.
        categorical : list of str
            Covariates to dummy-code although numeric (see :func:`~ipm_outcomes.estimators.design.build_design`).
        """
        if self.estimand not in ESTIMANDS:
            raise IpmError(f"unknown estimand {self.estimand!r}; use one of {', '.join(ESTIMANDS)}")
        cov_type = check_cov_type(self.cov_type)
        if cov_type == "nonrobust":
            raise IpmError("IPW mean difference: weights are not counts of persons; use cov_type HC0 or HC1")
        alpha = check_alpha(self.alpha)
        require_columns(df, [outcome_col, treatment_col], "IPW mean difference")
        treated = binary_column(df, treatment_col)
        y = numeric_column(df, outcome_col)
        design = build_design(df, covariates, categorical=categorical)
        data = {"X": standardize(design.matrix), "treated": treated, "y": y}
        fit = _Fit(self)
        values = fit(data)  # checks both groups are present
        model, ps, w, trunc = fit.weights(data["X"], treated)
        msm = WeightedGLM(family="gaussian", cov_type=cov_type, alpha=alpha).fit(
            treated.astype(float)[:, None], y, sample_weight=w, names=[treatment_col]
        )
        self.design_, self.propensity_, self.ps_, self.weights_, self.truncation_ = design, model, ps, w, trunc
        self.msm_ = msm
        V = msm.cov_params_.to_numpy()
        # contrasts of (b0, b1): control mean, treated mean, difference
        L = {"mean/control": np.array([1.0, 0.0]), "mean/treated": np.array([1.0, 1.0]), "difference": np.array([0.0, 1.0])}
        se = {k: float(np.sqrt(c @ V @ c)) for k, c in L.items()}
        q = stats.norm.ppf(1 - alpha / 2)
        ci = {k: (float(values[k]) - q * se[k], float(values[k]) + q * se[k]) for k in L}
        self.bootstrap_ = None
        if self.n_bootstrap > 0:
            self.bootstrap_ = boot.run(
                fit, data, values, n_replicates=self.n_bootstrap, seed=self.seed, workers=self.workers
            )
            for k in L:
                lo, hi = self.bootstrap_.interval(k, 1 - alpha)
                ci[k] = (float(lo), float(hi))
                se[k] = float(self.bootstrap_.standard_error(k))
        n_t, n_c = int(treated.sum()), int((~treated).sum())
        rows = [
            ("mean", "treated", "mean/treated", n_t),
            ("mean", "control", "mean/control", n_c),
            ("mean_difference", None, "difference", n_t + n_c),
        ]
        self.summary = pd.DataFrame(
            [
                dict(measure=m, arm=arm, estimate=float(values[k]), se=se[k], ci_low=ci[k][0], ci_high=ci[k][1], n=n)
                for m, arm, k, n in rows
            ],
            columns=SUMMARY_COLUMNS,
        )
        self.values_ = values
        return self
