"""Empirical calibration of effect estimates with negative controls (OHDSI EmpiricalCalibration, in Python).

An observational estimate carries systematic error (residual confounding, selection, measurement) that
its confidence interval ignores. Negative controls, outcomes that the exposure cannot cause, estimated
with exactly the study's design, show that error: their true effect is null, so the spread of their
estimates beyond random error is systematic error. This module

* fits the **empirical null** N(mu, sigma^2) to the negative controls' log estimates ``b_i`` with standard
  errors ``s_i`` by maximum likelihood, each ``b_i ~ N(mu, sigma^2 + s_i^2)`` (:func:`fit_null`;
  Schuemie et al. 2014, EmpiricalCalibration's ``fitNull``);
* computes **calibrated p-values** under that null (:func:`calibrate_p`, the package's ``calibrateP``);
* turns the null into the **systematic error model** of Schuemie et al. 2018 (:func:`null_to_error_model`,
  the package's ``convertNullToErrorModel``) and computes **calibrated confidence intervals**
  (:func:`calibrate_confidence_interval`, the package's ``calibrateConfidenceInterval``);
* summarises the null as the **expected absolute systematic error** (EASE, :func:`expected_absolute_systematic_error`,
  the package's ``computeExpectedAbsoluteSystematicError``), a study diagnostic that OHDSI passes below 0.25;
* wraps it all, with the exclusion of unusable controls and the too-few-controls rule, in
  :class:`EmpiricalCalibration` (fit on the negative controls, then ``calibrate`` the study's contrasts).

Sources (OHDSI/EmpiricalCalibration on GitHub, the R package): ``R/EmpiricalCalibrationUsingAsymptotics.R``
(``fitNull``, ``calibrateP``, ``computeTraditionalP``), ``src/RcppWrapper.cpp`` (``logLikelihoodNull``: the
likelihood above), ``R/ConfidenceIntervalCalibration.R`` (``calibrateConfidenceInterval``,
``convertNullToErrorModel``, ``computeTraditionalCi``), ``R/ExpectedSystematicError.R``
(``computeExpectedAbsoluteSystematicError``), ``R/Plots.R`` (``plotCalibrationEffect``, ``logRrtoSE``).
The tests (``tests/unit/test_calibration.py``) reproduce the package's own test values and vignette output.

What differs from the R package, and why:

* The null is the exact maximum of the likelihood: ``mu`` given ``sigma`` is the precision-weighted mean,
  so the likelihood is profiled over ``sigma`` alone (``0 <= sigma <= max(b) - min(b)``, the range in which
  its maximum lies) and maximised by a grid and Brent's method. R's ``fitNull`` runs Nelder-Mead on
  ``(mu, 1/sigma^2)`` from ``(0, 100)`` (relative tolerance 1e-8), which lands close to but not exactly on the
  maximum and never reaches ``sigma = 0`` (the precision stays finite); here ``sigma = 0`` is returned when it
  is the maximum (no spread beyond random error).
* ``calibrateConfidenceInterval`` finds each bound with ``uniroot`` at its default tolerance (about 1.2e-4);
  here the same root is found by bisection to machine precision, so bounds agree with R's to about 1e-4.
* Only the asymptotic (maximum-likelihood) null is implemented. EmpiricalCalibration's ``fitMcmcNull``
  (a Bayesian null by MCMC, which CohortMethod uses, and the credible intervals of calibrated p-values and
  of EASE that come from it) is **not** reproduced; the package's own profile-likelihood alternative
  (``R/EmpiricalCalibrationUsingPLikelihood.R``) is marked there as abandoned ("doesn't work in all cases")
  and is not reproduced either. :class:`EmpiricalNull` reports the expected-information standard errors of
  ``mu`` and ``sigma`` instead, as an indication of how well the controls pin the null down.
* The package drops unusable estimates with a warning; :class:`EmpiricalCalibration` drops them with a count
  per reason, and skips calibration with a stated reason when fewer than ``min_controls`` remain.

References
----------
Schuemie MJ, Ryan PB, DuMouchel W, Suchard MA, Madigan D. Interpreting observational studies: why empirical
calibration is needed to correct p-values. Stat Med 2014;33(2):209-18.

Schuemie MJ, Hripcsak G, Ryan PB, Madigan D, Suchard MA. Empirical confidence interval calibration for
population-level effect estimation studies in observational healthcare data. PNAS 2018;115(11):2571-7.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, stats

from .errors import IpmError
from .estimators.base import BaseEstimator
from .estimators.design import require_columns

#: OHDSI's study-diagnostic threshold for the expected absolute systematic error: a study passes when
#: EASE < 0.25 (CohortMethod ``createCmDiagnosticThresholds(easeThreshold = 0.25)``, the default that
#: Strategus' CohortMethod and SelfControlledCaseSeries modules apply to every estimate).
EASE_THRESHOLD = 0.25

#: Fewest usable negative controls to calibrate with. CohortMethod (``calibrateGroup`` in ``R/Export.R``) and
#: Strategus' EvidenceSynthesisModule (``calibrateEstimates``) fit the null only when
#: ``nrow(ncs) >= 5`` negative controls have a standard error; with fewer, ``sigma`` is barely identified.
MIN_NEGATIVE_CONTROLS = 5


# --------------------------------------------------------------------------------------------------
# The empirical null (Schuemie et al. 2014)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EmpiricalNull:
    """The fitted systematic-error distribution of log estimates under the null: N(``mean``, ``sd``^2).

    Attributes
    ----------
    mean, sd
        ``mu`` and ``sigma`` on the log scale (EmpiricalCalibration's ``null["mean"]``, ``null["sd"]``).
    n_controls
        How many negative-control estimates it was fitted to.
    mean_se, sd_se
        Expected-information standard errors of ``mean`` and ``sd`` (``1/sqrt(sum w_i)`` and
        ``1/sqrt(2 sd^2 sum w_i^2)``, ``w_i = 1/(sd^2 + s_i^2)``); ``sd_se`` is NaN when ``sd`` is 0, where the
        information about ``sd`` vanishes.
    log_likelihood
        The maximised log-likelihood.
    """

    mean: float
    sd: float
    n_controls: int
    mean_se: float = float("nan")
    sd_se: float = float("nan")
    log_likelihood: float = float("nan")


def _as_vector(values, name: str) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(values, dtype=float))
    if arr.ndim != 1:
        raise IpmError(f"{name} must be one number per estimate (a 1-D sequence), got shape {arr.shape}")
    return arr


def _pair(log_rr, se_log_rr) -> tuple[np.ndarray, np.ndarray]:
    b = _as_vector(log_rr, "log_rr")
    s = _as_vector(se_log_rr, "se_log_rr")
    if b.shape != s.shape:
        raise IpmError(f"log_rr and se_log_rr must be of equal length, got {b.size} and {s.size}")
    return b, s


def _profile_mean(sigma: float, b: np.ndarray, s2: np.ndarray) -> float:
    w = 1.0 / (sigma * sigma + s2)
    return float(w @ b / w.sum())


def _log_likelihood(mu: float, sigma: float, b: np.ndarray, s2: np.ndarray) -> float:
    v = sigma * sigma + s2
    return float(-0.5 * np.sum(np.log(2 * np.pi * v) + (b - mu) ** 2 / v))


def _profile_log_likelihood(sigma: float, b: np.ndarray, s2: np.ndarray) -> float:
    return _log_likelihood(_profile_mean(sigma, b, s2), sigma, b, s2)


def _score_at_zero(b: np.ndarray, s2: np.ndarray) -> float:
    """d log L / d sigma^2 at sigma = 0 (mu profiled): ``sum((b_i - mu)^2 / s_i^4 - 1 / s_i^2) / 2``."""
    w = 1.0 / s2
    mu = float(w @ b / w.sum())
    return float(0.5 * np.sum(w * w * (b - mu) ** 2 - w))


def fit_null(log_rr, se_log_rr) -> EmpiricalNull:
    """Fit the empirical null distribution to negative-control estimates by maximum likelihood.

    Each log estimate is modelled as ``b_i ~ N(mu, sigma^2 + s_i^2)``: its true value is 0, its systematic
    error is drawn from N(mu, sigma^2), its random error from N(0, s_i^2) (Schuemie et al. 2014;
    EmpiricalCalibration ``fitNull`` in ``R/EmpiricalCalibrationUsingAsymptotics.R``, likelihood
    ``logLikelihoodNull`` in ``src/RcppWrapper.cpp``). With equal standard errors ``s`` the maximum has the
    closed form ``mu = mean(b)``, ``sigma^2 = max(0, var(b) - s^2)`` (``var`` with divisor n).

    Parameters
    ----------
    log_rr
        Negative-control effect estimates on the log scale (log hazard, risk or rate ratios).
    se_log_rr
        Their standard errors (for a 95% interval: ``(log(upper) - log(lower)) / (2 * 1.96)``).

    Returns
    -------
    EmpiricalNull

    Raises
    ------
    IpmError
        When a value is missing or infinite or a standard error is negative (naming its position), or when
        there is no estimate. :class:`EmpiricalCalibration` excludes such controls with a count instead.
    """
    b, s = _pair(log_rr, se_log_rr)
    if b.size == 0:
        raise IpmError("fit_null: no negative-control estimates to fit the null to")
    for values, name in ((b, "log_rr"), (s, "se_log_rr")):
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise IpmError(f"fit_null: {name}[{bad[0]}] is {values[bad[0]]}: every estimate needs a finite value "
                           "(EmpiricalCalibration excludes unusable controls first)")
    if (s < 0).any():
        i = int(np.flatnonzero(s < 0)[0])
        raise IpmError(f"fit_null: se_log_rr[{i}] is {s[i]}: a standard error cannot be negative")
    s2 = s * s
    all_positive = bool((s2 > 0).all())
    spread = float(b.max() - b.min())
    if spread == 0:
        sigma = 0.0
    else:
        # The maximum lies in 0 <= sigma <= range(b): at the maximum, sigma^2 is a weighted average of
        # (b_i - mu)^2 - s_i^2 (the score equation), which is at most range(b)^2. A zero standard error
        # makes sigma = 0 degenerate (an infinite density), so the search then starts just above it.
        lowest = 0.0 if all_positive else spread * 1e-9
        grid = lowest + (spread - lowest) * np.linspace(0.0, 1.0, 201) ** 2
        v = grid[:, None] ** 2 + s2[None, :]  # one row per grid point
        mus = (b / v).sum(axis=1) / (1.0 / v).sum(axis=1)
        values = -0.5 * (np.log(2 * np.pi * v) + (b[None, :] - mus[:, None]) ** 2 / v).sum(axis=1)
        k = int(np.argmax(values))
        if k == 0 and all_positive and _score_at_zero(b, s2) <= 0:
            # the likelihood falls as sigma leaves 0 (its slope in sigma^2 is not positive there): the
            # maximum is exactly on the boundary, all spread is random error
            sigma = 0.0
        else:
            lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, grid.size - 1)]
            res = optimize.minimize_scalar(lambda g: -_profile_log_likelihood(g, b, s2), bounds=(lo, hi),
                                           method="bounded", options={"xatol": 1e-13 * spread})
            sigma = float(res.x) if -res.fun >= values[k] else float(grid[k])
    if sigma == 0 and not all_positive:  # identical estimates, one of them with no random error
        return EmpiricalNull(mean=float(b[0]), sd=0.0, n_controls=int(b.size), mean_se=0.0,
                             log_likelihood=float("inf"))
    mu = _profile_mean(sigma, b, s2)
    w = 1.0 / (sigma * sigma + s2)
    mean_se = float(1.0 / math.sqrt(w.sum()))
    sd_se = float(1.0 / math.sqrt(2 * sigma * sigma * (w * w).sum())) if sigma > 0 else float("nan")
    ll = _log_likelihood(mu, sigma, b, s2)
    return EmpiricalNull(mean=mu, sd=sigma, n_controls=int(b.size), mean_se=mean_se, sd_se=sd_se, log_likelihood=ll)


def traditional_p(log_rr, se_log_rr, *, two_sided: bool = True, upper: bool = True) -> np.ndarray:
    """The usual Wald p-value of ``log_rr`` against 0 (EmpiricalCalibration ``computeTraditionalP``).

    Parameters
    ----------
    two_sided
        Two-sided (default) or one-sided.
    upper
        One-sided only: the p-value against an effect above the null (True) or below it (False).
    """
    return calibrate_p(EmpiricalNull(0.0, 0.0, 0), log_rr, se_log_rr, two_sided=two_sided, upper=upper)


def calibrate_p(null: EmpiricalNull, log_rr, se_log_rr, *, two_sided: bool = True, upper: bool = True) -> np.ndarray:
    """Calibrated p-values: how surprising each estimate is under the empirical null.

    ``p_upper = Phi((mu - b) / sqrt(sigma^2 + s^2))``, ``p_lower = Phi((b - mu) / sqrt(sigma^2 + s^2))``, the
    two-sided p-value is ``2 * min(p_upper, p_lower)`` (Schuemie et al. 2014; EmpiricalCalibration
    ``calibrateP.null`` in ``R/EmpiricalCalibrationUsingAsymptotics.R``). With ``mu = sigma = 0`` it is the
    traditional p-value.

    Parameters
    ----------
    null
        From :func:`fit_null`.
    log_rr, se_log_rr
        The estimates to calibrate, on the log scale, and their standard errors.
    two_sided, upper
        As :func:`traditional_p`.

    Returns
    -------
    numpy.ndarray
        One p-value per estimate; NaN where the estimate or its standard error is missing or infinite.
    """
    b, s = _pair(log_rr, se_log_rr)
    usable = np.isfinite(b) & np.isfinite(s)
    scale = np.sqrt(null.sd ** 2 + np.where(usable, s, 0.0) ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (np.where(usable, b, 0.0) - null.mean) / scale
    p_upper = stats.norm.cdf(-z)
    p_lower = stats.norm.cdf(z)
    if two_sided:
        p = 2 * np.minimum(p_upper, p_lower)
    else:
        p = p_upper if upper else p_lower
    return np.where(usable, p, np.nan)


# --------------------------------------------------------------------------------------------------
# The systematic error model and calibrated confidence intervals (Schuemie et al. 2018)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SystematicErrorModel:
    """Systematic error as a function of the true log effect ``x``: N(mean(x), sd(x)^2).

    ``mean(x) = mean_intercept + mean_slope * x``; ``sd(x) = sd_intercept + sd_slope * |x|``, or with
    ``legacy=True`` ``sd(x) = exp(sd_intercept + sd_slope * x)`` (EmpiricalCalibration's ``systematicErrorModel``:
    ``sdIntercept``/``sdSlope``, or ``logSdIntercept``/``logSdSlope`` for a legacy model, in
    ``R/ConfidenceIntervalCalibration.R``). Fitting one needs positive controls (``fitSystematicErrorModel``),
    which this study does not have; :func:`null_to_error_model` builds one from the empirical null.
    """

    mean_intercept: float
    mean_slope: float
    sd_intercept: float
    sd_slope: float
    legacy: bool = False

    def sd(self, x):
        """The standard deviation of the systematic error at true log effect ``x``."""
        x = np.asarray(x, dtype=float)
        if self.legacy:
            return np.exp(self.sd_intercept + self.sd_slope * x)
        return self.sd_intercept + self.sd_slope * np.abs(x)


def null_to_error_model(null: EmpiricalNull, mean_slope: float = 1.0, sd_slope: float = 0.0) -> SystematicErrorModel:
    """The systematic error model implied by the empirical null (EmpiricalCalibration ``convertNullToErrorModel``).

    With negative controls only, how the error changes with the true effect size is an assumption: the
    default (``mean_slope = 1``, ``sd_slope = 0``) says the error distribution N(mu, sigma^2) is the same at every
    true effect size. The package warns that a method biased towards the null violates this, and the
    calibrated intervals then cover less than their nominal level.
    """
    return SystematicErrorModel(mean_intercept=null.mean, mean_slope=float(mean_slope), sd_intercept=null.sd,
                                sd_slope=float(sd_slope), legacy=False)


def _opt(x: np.ndarray, z: float, b: np.ndarray, s: np.ndarray, model: SystematicErrorModel) -> np.ndarray:
    """``z + (mean(x) - b) / sqrt(sd(x)^2 + s^2)``: ``opt`` of ``calibrateConfidenceInterval``; a bound is its root."""
    mean = model.mean_intercept + model.mean_slope * x
    numerator = mean - b
    with np.errstate(over="ignore", invalid="ignore"):
        denominator = np.sqrt(model.sd(x) ** 2 + s ** 2)
        value = z + numerator / denominator
    # R: an infinite denominator returns z nudged by 1e-10 towards the numerator's sign
    return np.where(np.isinf(denominator), np.where(numerator > 0, z + 1e-10, z - 1e-10), value)


_SEARCH = 100.0  # the package searches true log effects in [-100, 100]


def _log_bound(ci_width: float, lower_bound: bool, b: np.ndarray, s: np.ndarray, model: SystematicErrorModel) -> np.ndarray:
    """The root of :func:`_opt` per estimate, bracketed as ``logBound`` brackets it; NaN where R returns NA."""
    z = stats.norm.ppf((1 - ci_width) / 2)
    if lower_bound:
        z = -z
    if not model.legacy and model.sd_slope == 0 and model.mean_slope != 0:
        # sd(x) is constant, so opt is linear in x: its root in closed form, NA outside R's bracket
        # (tests/unit/test_calibration.py checks it against the bisection below)
        root = (b - model.mean_intercept - z * np.sqrt(model.sd_intercept ** 2 + s ** 2)) / model.mean_slope
        return np.where(np.abs(root) <= _SEARCH, root, np.nan)
    return _bisect_bound(z, b, s, model)


def _bisect_bound(z: float, b: np.ndarray, s: np.ndarray, model: SystematicErrorModel) -> np.ndarray:
    """The root of :func:`_opt` by bisection within the bracket ``logBound`` uses."""
    n = b.size
    lo = np.full(n, -_SEARCH)
    hi = np.full(n, _SEARCH)
    ok = np.ones(n, dtype=bool)
    if model.legacy:
        # R steps through whole numbers from one end until the sign changes; the root is in the last step
        steps = np.arange(-_SEARCH, _SEARCH + 1.0)
        values = _opt(steps[None, :], z, b[:, None], s[:, None], model)
        if model.sd_slope > 0:
            first = np.argmax(values >= 0, axis=1)  # first step from -100 upwards where opt >= 0
            found = (values >= 0).any(axis=1) & (first > 0) & (first < steps.size - 1)
            hi = steps[first]
            lo = hi - 1.0
        else:
            rev = values[:, ::-1]
            first = np.argmax(rev <= 0, axis=1)  # first step from 100 downwards where opt <= 0
            found = (rev <= 0).any(axis=1) & (first > 0) & (first < steps.size - 1)
            lo = steps[::-1][first]
            hi = lo + 1.0
        ok &= found
    else:
        f_lo = _opt(lo, z, b, s, model)
        f_hi = _opt(hi, z, b, s, model)
        ok &= ~(((f_lo < 0) & (f_hi < 0)) | ((f_lo > 0) & (f_hi > 0)))
    f_lo = _opt(lo, z, b, s, model)
    for _ in range(200):  # bisection to machine precision (the bracket halves; 200 halvings of 200 suffice)
        mid = 0.5 * (lo + hi)
        f_mid = _opt(mid, z, b, s, model)
        same = np.sign(f_mid) == np.sign(f_lo)
        lo = np.where(same, mid, lo)
        f_lo = np.where(same, f_mid, f_lo)
        hi = np.where(same, hi, mid)
        if np.all((hi - lo) <= 4 * np.finfo(float).eps * np.maximum(1.0, np.abs(lo))):
            break
    root = np.where(_opt(lo, z, b, s, model) == 0, lo, 0.5 * (lo + hi))
    return np.where(ok, root, np.nan)


#: Columns of :func:`calibrate_confidence_interval` and :func:`traditional_ci`, in order.
CI_COLUMNS: tuple[str, ...] = ("log_rr", "log_lb", "log_ub", "se_log_rr")


def calibrate_confidence_interval(log_rr, se_log_rr, model: SystematicErrorModel, ci_width: float = 0.95) -> pd.DataFrame:
    """Calibrated point estimates and confidence intervals (Schuemie et al. 2018).

    Each bound is the true log effect ``x`` at which the estimate sits exactly at the interval's edge of the
    distribution of estimates, N(mean(x), sd(x)^2 + s^2): the root in ``x`` of
    ``z + (mean(x) - b) / sqrt(sd(x)^2 + s^2)``, ``z = +-qnorm((1 - ci_width) / 2)``; the calibrated point
    estimate is the root at ``z = 0``, and the calibrated standard error is ``(ub - lb) / (2 qnorm((1 + ci_width) / 2))``
    (EmpiricalCalibration ``calibrateConfidenceInterval`` in ``R/ConfidenceIntervalCalibration.R``, with its
    brackets: ``[-100, 100]``, or for a legacy model a search by whole numbers). For the model of
    :func:`null_to_error_model` this is ``b - mu +- z sqrt(sigma^2 + s^2)``: the interval shifted by the null's
    mean and widened by its spread.

    Parameters
    ----------
    log_rr, se_log_rr
        The estimates on the log scale and their standard errors.
    model
        From :func:`null_to_error_model` (or a fitted :class:`SystematicErrorModel`).
    ci_width
        The interval's coverage, 0.95 for a 95% interval.

    Returns
    -------
    pandas.DataFrame
        One row per estimate, in input order: ``log_rr`` (calibrated), ``log_lb``, ``log_ub``, ``se_log_rr``;
        NaN where the estimate or its standard error is missing or infinite, or the bound has no root.
    """
    if not 0 < float(ci_width) < 1:
        raise IpmError(f"ci_width must be between 0 and 1 (0.95 for a 95% interval), got {ci_width!r}")
    b, s = _pair(log_rr, se_log_rr)
    usable = np.isfinite(b) & np.isfinite(s)
    bu, su = b[usable], s[usable]
    out = np.full((b.size, 3), np.nan)
    if bu.size and all(map(math.isfinite, (model.mean_intercept, model.mean_slope, model.sd_intercept, model.sd_slope))):
        out[usable, 0] = _log_bound(0.0, True, bu, su, model)
        out[usable, 1] = _log_bound(ci_width, True, bu, su, model)
        out[usable, 2] = _log_bound(ci_width, False, bu, su, model)
    result = pd.DataFrame(out, columns=list(CI_COLUMNS[:3]))
    result["se_log_rr"] = (result["log_lb"] - result["log_ub"]) / (2 * stats.norm.ppf((1 - ci_width) / 2))
    return result


def traditional_ci(log_rr, se_log_rr, ci_width: float = 0.95) -> pd.DataFrame:
    """The usual Wald interval ``b +- z s`` (EmpiricalCalibration ``computeTraditionalCi``), as :data:`CI_COLUMNS`."""
    b, s = _pair(log_rr, se_log_rr)
    z = stats.norm.ppf((1 + ci_width) / 2)
    return pd.DataFrame({"log_rr": b, "log_lb": b - z * s, "log_ub": b + z * s, "se_log_rr": s})


# --------------------------------------------------------------------------------------------------
# Expected absolute systematic error
# --------------------------------------------------------------------------------------------------


def expected_absolute_systematic_error(null: EmpiricalNull) -> float:
    """EASE: the expected absolute systematic error ``E|X|`` of X ~ N(mu, sigma^2), on the log scale.

    One number for both the bias (``mu``) and the spread (``sigma``) of the null: the mean of the folded normal,
    ``mu (1 - 2 Phi(-mu / sigma)) + 2 sigma phi(mu / sigma)``, and ``|mu|`` when ``sigma = 0``
    (EmpiricalCalibration ``computeExpectedAbsoluteSystematicError.null`` in ``R/ExpectedSystematicError.R``,
    which evaluates the same integral in closed form). OHDSI's study diagnostic passes a study when
    EASE < :data:`EASE_THRESHOLD` (0.25; CohortMethod ``createCmDiagnosticThresholds(easeThreshold = 0.25)``).
    """
    mu, sigma = float(null.mean), float(null.sd)
    if sigma == 0:
        return abs(mu)
    return float(mu * (1 - 2 * stats.norm.cdf(-mu / sigma)) + 2 * sigma * stats.norm.pdf(mu / sigma))


# --------------------------------------------------------------------------------------------------
# Negative controls in, calibrated contrasts out
# --------------------------------------------------------------------------------------------------

#: Why a negative control's estimate is not usable, in the order the checks apply; each phrase completes
#: "N negative controls ...".
EXCLUSION_REASONS: dict[str, str] = {
    "no_events": "had no events in an arm",
    "no_estimate": "had no estimate",
    "infinite_estimate": "had an infinite estimate",
    "no_se": "had no standard error",
    "infinite_se": "had an infinite standard error",
    "zero_se": "had a standard error of zero",
}


def _numeric_column(df: pd.DataFrame, column: str, what: str, labels: Sequence[str]) -> np.ndarray:
    """A column as floats, or one error naming the column and the first row that is not a number."""
    values = pd.to_numeric(df[column], errors="coerce")
    bad = values.isna() & df[column].notna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise IpmError(f"{what}: column {column}, row {i + 1}{labels[i]}: {df[column].iloc[i]!r} is not a number")
    return values.to_numpy(dtype=float)


class EmpiricalCalibration(BaseEstimator):
    """Fit the empirical null to negative controls, then calibrate the study's contrasts with it.

    Parameters
    ----------
    min_controls
        Fewest usable negative controls to calibrate with (default :data:`MIN_NEGATIVE_CONTROLS`, 5, as
        CohortMethod). With fewer, ``fit`` does not raise: ``calibrated_`` is False, ``reason_`` says why, and
        :meth:`calibrate` returns the uncalibrated columns with the calibrated ones empty.
    ci_width
        Coverage of the intervals, 0.95 for 95%.
    ease_threshold
        EASE at or above which the study diagnostic fails (default :data:`EASE_THRESHOLD`, OHDSI's 0.25).

    Attributes (after ``fit``)
    --------------------------
    controls_ : pandas.DataFrame
        One row per negative control, in input order: ``control`` (its name), ``log_rr``, ``se_log_rr``,
        ``used`` (bool), ``exclusion`` (a key of :data:`EXCLUSION_REASONS`, or None).
    exclusions_ : pandas.DataFrame
        One row per exclusion reason that occurred: ``exclusion``, ``reason`` (the phrase), ``n_controls``.
    n_controls_, n_usable_ : int
        Negative controls given, and usable.
    null_ : EmpiricalNull or None
        The fitted null (None when not calibrated).
    model_ : SystematicErrorModel or None
        ``null_to_error_model(null_)``.
    calibrated_ : bool
    reason_ : str
        One line: what calibration used, or why it was skipped ("not calibrated: only 3 of 24 negative
        controls had events in both arms (at least 5 are needed)").
    ease_ : float
        :func:`expected_absolute_systematic_error` of the null (NaN when not calibrated).
    ease_passes_ : bool or None
        ``ease_ < ease_threshold`` (None when not calibrated).

    Examples
    --------
    >>> cal = EmpiricalCalibration().fit(negative_controls, log_rr="log_hr", se="se_log_hr")  # doctest: +SKIP
    >>> cal.calibrate(contrasts, log_rr="log_hr", se="se_log_hr")                              # doctest: +SKIP
    """

    calibrated_: bool | None = None  # None until fit

    def __init__(self, min_controls: int = MIN_NEGATIVE_CONTROLS, ci_width: float = 0.95,
                 ease_threshold: float = EASE_THRESHOLD):
        self.min_controls = min_controls
        self.ci_width = ci_width
        self.ease_threshold = ease_threshold

    def _check_settings(self) -> None:
        if int(self.min_controls) != self.min_controls or self.min_controls < 1:
            raise IpmError(f"min_controls must be a whole number of at least 1, got {self.min_controls!r}")
        if not 0 < float(self.ci_width) < 1:
            raise IpmError(f"ci_width must be between 0 and 1 (0.95 for a 95% interval), got {self.ci_width!r}")
        if not float(self.ease_threshold) > 0:
            raise IpmError(f"ease_threshold must be positive (OHDSI: 0.25), got {self.ease_threshold!r}")

    def fit(self, controls: pd.DataFrame, *, log_rr: str = "log_rr", se: str = "se_log_rr",
            name: str | None = "outcome", events: Sequence[str] | None = None) -> EmpiricalCalibration:
        """Exclude unusable negative-control estimates, and fit the null when enough remain.

        Parameters
        ----------
        controls
            One row per negative-control outcome, estimated with the study's design.
        log_rr, se
            Columns of the log estimate and its standard error.
        name
            Column naming each control (used in ``controls_`` and error messages); None: the row number.
        events
            Optional columns of event counts per arm; a control with 0 in any of them is excluded as
            "no events in an arm". The counts are read for that test only and are not kept.

        Raises
        ------
        IpmError
            A column is missing, a value is not a number (naming column and row), or a standard error is
            negative. Too few usable controls is not an error (see ``reason_``).
        """
        self._check_settings()
        what = "negative controls"
        events = list(events or [])
        require_columns(controls, [log_rr, se, *events, *([name] if name else [])], what)
        names = (controls[name].astype(str).tolist() if name else [str(i + 1) for i in range(len(controls))])
        labels = [f" ({name} {n!r})" if name else "" for n in names]
        b = _numeric_column(controls, log_rr, what, labels)
        s = _numeric_column(controls, se, what, labels)
        negative = np.flatnonzero(s < 0)
        if negative.size:
            i = int(negative[0])
            raise IpmError(f"{what}: column {se}, row {i + 1}{labels[i]}: standard error {s[i]:g} is negative; "
                           "a standard error is 0 or more")
        reason = np.full(len(controls), None, dtype=object)

        def mark(mask: np.ndarray, key: str) -> None:
            reason[(reason == None) & mask] = key  # noqa: E711 - elementwise test on an object array

        for column in events:
            counts = _numeric_column(controls, column, what, labels)
            mark(counts == 0, "no_events")
        mark(np.isnan(b), "no_estimate")
        mark(np.isinf(b), "infinite_estimate")
        mark(np.isnan(s), "no_se")
        mark(np.isinf(s), "infinite_se")
        mark(s == 0, "zero_se")
        used = reason == None  # noqa: E711
        self.controls_ = pd.DataFrame({"control": names, "log_rr": b, "se_log_rr": s, "used": used.astype(bool),
                                       "exclusion": reason})
        counts = [(key, EXCLUSION_REASONS[key], int((reason == key).sum())) for key in EXCLUSION_REASONS]
        self.exclusions_ = pd.DataFrame([c for c in counts if c[2] > 0], columns=["exclusion", "reason", "n_controls"])
        self.n_controls_ = int(len(controls))
        self.n_usable_ = int(used.sum())
        excluded = "; ".join(f"{n} {phrase}" for _key, phrase, n in counts if n > 0)
        if self.n_usable_ < self.min_controls:
            self.null_ = self.model_ = None
            self.calibrated_ = False
            self.ease_ = float("nan")
            self.ease_passes_ = None
            if self.n_controls_ == 0:
                self.reason_ = "not calibrated: no negative-control estimates"
            elif set(self.exclusions_["exclusion"]) == {"no_events"}:
                self.reason_ = (f"not calibrated: only {self.n_usable_} of {self.n_controls_} negative controls had "
                                f"events in both arms (at least {self.min_controls} are needed)")
            else:
                self.reason_ = (f"not calibrated: only {self.n_usable_} of {self.n_controls_} negative controls had "
                                f"a usable estimate (at least {self.min_controls} are needed"
                                + (f"; {excluded})" if excluded else ")"))
            return self
        self.null_ = fit_null(b[used], s[used])
        self.model_ = null_to_error_model(self.null_)
        self.calibrated_ = True
        self.ease_ = expected_absolute_systematic_error(self.null_)
        self.ease_passes_ = bool(self.ease_ < float(self.ease_threshold))
        self.reason_ = (f"calibrated on {self.n_usable_} of {self.n_controls_} negative controls"
                        + (f" ({excluded})" if excluded else ""))
        return self

    def _require_fitted(self) -> None:
        if self.calibrated_ is None:
            raise IpmError("EmpiricalCalibration: call fit(negative_controls) before calibrate(...)")

    @property
    def summary(self) -> pd.DataFrame:
        """The null and the diagnostic; grain: one row per quantity (``quantity``, ``estimate``, ``se``).

        Quantities: ``null_mean`` and ``null_sd`` (log scale), ``ease``, ``n_controls``, ``n_usable``; the
        estimates are NaN when not calibrated.
        """
        self._require_fitted()
        nul = self.null_
        rows = [
            ("null_mean", nul.mean if nul else np.nan, nul.mean_se if nul else np.nan),
            ("null_sd", nul.sd if nul else np.nan, nul.sd_se if nul else np.nan),
            ("ease", self.ease_, np.nan),
            ("n_controls", float(self.n_controls_), np.nan),
            ("n_usable", float(self.n_usable_), np.nan),
        ]
        return pd.DataFrame(rows, columns=["quantity", "estimate", "se"])

    def calibrate(self, estimates: pd.DataFrame, *, log_rr: str = "log_rr", se: str = "se_log_rr") -> pd.DataFrame:
        """Uncalibrated and calibrated ratio, interval and p-value for each estimate.

        Parameters
        ----------
        estimates
            The study's contrasts on the log-ratio scale (any other columns are kept as they are).
        log_rr, se
            Columns of the log estimate and its standard error.

        Returns
        -------
        pandas.DataFrame
            Grain as ``estimates`` (one row per contrast, same order and index), with the columns added:
            ``rr``, ``ci_low``, ``ci_high``, ``p`` (uncalibrated), ``calibrated_rr``, ``calibrated_ci_low``,
            ``calibrated_ci_high``, ``calibrated_p``, ``calibrated_log_rr``, ``calibrated_se_log_rr`` (NaN when
            not calibrated), and ``calibration`` (:attr:`reason_`).
        """
        self._require_fitted()
        require_columns(estimates, [log_rr, se], "estimates to calibrate")
        labels = [""] * len(estimates)
        b = _numeric_column(estimates, log_rr, "estimates to calibrate", labels)
        s = _numeric_column(estimates, se, "estimates to calibrate", labels)
        out = estimates.copy()
        plain = traditional_ci(b, s, self.ci_width)
        out["rr"] = np.exp(plain["log_rr"].to_numpy())
        out["ci_low"] = np.exp(plain["log_lb"].to_numpy())
        out["ci_high"] = np.exp(plain["log_ub"].to_numpy())
        out["p"] = traditional_p(b, s)
        if self.calibrated_:
            cal = calibrate_confidence_interval(b, s, self.model_, self.ci_width)
            p = calibrate_p(self.null_, b, s)
        else:
            cal = pd.DataFrame(np.nan, index=range(len(b)), columns=list(CI_COLUMNS))
            p = np.full(len(b), np.nan)
        out["calibrated_rr"] = np.exp(cal["log_rr"].to_numpy())
        out["calibrated_ci_low"] = np.exp(cal["log_lb"].to_numpy())
        out["calibrated_ci_high"] = np.exp(cal["log_ub"].to_numpy())
        out["calibrated_p"] = p
        out["calibrated_log_rr"] = cal["log_rr"].to_numpy()
        out["calibrated_se_log_rr"] = cal["se_log_rr"].to_numpy()
        out["calibration"] = self.reason_
        return out
