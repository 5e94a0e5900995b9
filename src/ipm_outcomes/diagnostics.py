"""Study diagnostics: covariate balance, equipoise, weights (and their concentration), and the E-value.

Thresholds follow the OHDSI CohortMethod study diagnostics (Schuemie et al. 2020, "Principles of
Large-scale Evidence Generation and Evaluation across a Network of Databases (LEGEND)"): balance
passes when every absolute standardized mean difference after weighting is below 0.1; equipoise
passes when at least 20% of persons have a preference score between 0.3 and 0.7. Both thresholds
come from the study spec ([analysis.diagnostics]).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd


def _weighted_mean_var(x: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    tot = w.sum()
    if tot <= 0:
        return float("nan"), float("nan")
    m = float(w @ x / tot)
    v = float(w @ (x - m) ** 2 / tot)
    return m, v


def standardized_mean_difference(x_treated, x_control, w_treated=None, w_control=None) -> float:
    """(mean treated - mean control) / sqrt((var treated + var control) / 2).

    Weighted means and variances when weights are given (CohortMethod computes the SD of the
    weighted groups after weighting); binary covariates need no special case, since the variance
    of a 0/1 variable is p(1-p). Variances are the (weighted) population variances. Returns 0 when
    both groups are constant and equal, NaN when a group is empty.
    """
    xt = np.asarray(x_treated, dtype=float)
    xc = np.asarray(x_control, dtype=float)
    wt = np.ones(xt.size) if w_treated is None else np.asarray(w_treated, dtype=float)
    wc = np.ones(xc.size) if w_control is None else np.asarray(w_control, dtype=float)
    if xt.size == 0 or xc.size == 0:
        return float("nan")
    mt, vt = _weighted_mean_var(xt, wt)
    mc, vc = _weighted_mean_var(xc, wc)
    sd = math.sqrt((vt + vc) / 2)
    if sd == 0:
        return 0.0 if mt == mc else float("inf")
    return (mt - mc) / sd


#: Columns of :func:`smd_table`, in order.
SMD_COLUMNS: tuple[str, ...] = (
    "covariate",
    "mean_treated",
    "mean_control",
    "smd_before",
    "weighted_mean_treated",
    "weighted_mean_control",
    "smd_after",
)


def smd_table(matrix, names: Sequence[str], treated, weights=None) -> pd.DataFrame:
    """Balance of every covariate column before and after weighting.

    Parameters
    ----------
    matrix : array (n, p)
        Covariates (a design matrix: one column per numeric covariate or category level).
    names : list of str
        Column names.
    treated : array of bool (n,)
    weights : array (n,), optional
        Weights of the weighted comparison.

    Returns
    -------
    DataFrame
        Grain: one row per covariate column: covariate, mean_treated, mean_control, smd_before,
        weighted_mean_treated, weighted_mean_control, smd_after (NaN without weights).
    """
    X = np.asarray(matrix, dtype=float)
    t = np.asarray(treated).astype(bool)
    w = None if weights is None else np.asarray(weights, dtype=float)
    rows = []
    for j, name in enumerate(names):
        x = X[:, j]
        row = dict(
            covariate=name,
            mean_treated=float(x[t].mean()) if t.any() else np.nan,
            mean_control=float(x[~t].mean()) if (~t).any() else np.nan,
            smd_before=standardized_mean_difference(x[t], x[~t]),
            weighted_mean_treated=np.nan,
            weighted_mean_control=np.nan,
            smd_after=np.nan,
        )
        if w is not None:
            row["weighted_mean_treated"] = _weighted_mean_var(x[t], w[t])[0]
            row["weighted_mean_control"] = _weighted_mean_var(x[~t], w[~t])[0]
            row["smd_after"] = standardized_mean_difference(x[t], x[~t], w[t], w[~t])
        rows.append(row)
    return pd.DataFrame(rows)


def preference_score(ps, treated=None, prevalence: float | None = None) -> np.ndarray:
    """Walker et al. (2013) preference score: the propensity score with the treatment prevalence removed.

    ``logit(F) = logit(ps) - logit(P)``, P the proportion treated (from ``treated`` or given).
    """
    ps = np.clip(np.asarray(ps, dtype=float), 1e-12, 1 - 1e-12)
    if prevalence is None:
        prevalence = float(np.mean(np.asarray(treated).astype(bool)))
    p = min(max(prevalence, 1e-12), 1 - 1e-12)
    logit = np.log(ps / (1 - ps)) - math.log(p / (1 - p))
    return 1 / (1 + np.exp(-logit))


def equipoise(ps, treated=None, bounds: tuple[float, float] = (0.3, 0.7), prevalence: float | None = None) -> float:
    """Fraction of persons whose preference score lies within ``bounds`` (inclusive)."""
    f = preference_score(ps, treated, prevalence)
    if f.size == 0:
        return float("nan")
    return float(np.mean((f >= bounds[0]) & (f <= bounds[1])))


def effective_sample_size(weights) -> float:
    """Kish's effective sample size (sum w)^2 / sum w^2."""
    w = np.asarray(weights, dtype=float)
    s2 = float(np.sum(w**2))
    return float(np.sum(w) ** 2 / s2) if s2 > 0 else float("nan")


def effective_sample_checks(
    weights: Mapping[str, np.ndarray], *, min_share: float, analysis: str = "ccw"
) -> pd.DataFrame:
    """One pass/fail row per strategy: do its final weights use at least ``min_share`` of its weighted clones?

    The value is Kish's effective sample size as a share of the strategy's weighted clones. A small
    share means a few heavily weighted persons carry the strategy's estimate: persons who followed a
    strategy they were almost certain not to follow (a near-violation of positivity). Their estimate
    then moves with whether those few persons happen to be in the data, and a bootstrap of the same
    data cannot show that spread (benchmarks/README.md, issue 19). A strategy without weights fails
    with a note.
    """
    rows = []
    for arm, w in weights.items():
        w = np.asarray(w, dtype=float)
        share = effective_sample_size(w) / w.size if w.size else float("nan")
        passed = math.isfinite(share) and share >= min_share
        if passed:
            note = ""
        elif math.isfinite(share):
            note = "a few heavily weighted persons carry this strategy's estimate"
        else:
            note = "not computable: no weighted clones"
        rows.append(
            dict(
                analysis=analysis,
                diagnostic=f"{arm} strategy effective sample share",
                value=share,
                threshold=f"Kish effective sample size >= {min_share:.0%} of the strategy's weighted clones",
                passed=bool(passed),
                note=note,
            )
        )
    return pd.DataFrame(rows)


def weight_summary(weights) -> dict[str, float]:
    """Distribution of weights: n, min, p01, p05, median, p95, p99, max, mean and ESS."""
    w = np.asarray(weights, dtype=float)
    w = w[np.isfinite(w)]
    if w.size == 0:
        return {k: float("nan") for k in ("min", "p01", "p05", "median", "p95", "p99", "max", "mean", "ess")} | {"n": 0}
    q = np.percentile(w, [1, 5, 50, 95, 99])
    return {
        "n": int(w.size),
        "min": float(w.min()),
        "p01": float(q[0]),
        "p05": float(q[1]),
        "median": float(q[2]),
        "p95": float(q[3]),
        "p99": float(q[4]),
        "max": float(w.max()),
        "mean": float(w.mean()),
        "ess": effective_sample_size(w),
    }


def e_value(rr: float, ci_low: float | None = None, ci_high: float | None = None) -> dict[str, float]:
    """E-value of a risk ratio and of its confidence limit closest to the null (VanderWeele & Ding 2017).

    The E-value is the minimum strength of association, on the risk-ratio scale, that an unmeasured
    confounder would need with both the exposure and the outcome to explain away the estimate:
    ``RR + sqrt(RR (RR - 1))`` for RR >= 1 (use 1/RR below 1). For the interval, the limit closer to
    1 is used; 1 when the interval includes 1.

    Returns
    -------
    dict
        ``estimate`` and ``ci`` (NaN when not computable).
    """

    def ev(r: float) -> float:
        if r is None or not np.isfinite(r) or r <= 0:
            return float("nan")
        r = r if r >= 1 else 1 / r
        return float(r + math.sqrt(r * (r - 1)))

    point = ev(rr)
    ci = float("nan")
    if ci_low is not None and ci_high is not None and np.isfinite(ci_low) and np.isfinite(ci_high):
        if ci_low <= 1 <= ci_high:
            ci = 1.0
        elif rr is not None and np.isfinite(rr) and rr > 1:
            ci = ev(ci_low)
        else:
            ci = ev(ci_high)
    return {"estimate": point, "ci": ci}


def histogram(values, groups, bins) -> pd.DataFrame:
    """Counts per group per bin; grain: one row per group per bin (bin_low, bin_high, count)."""
    v = np.asarray(values, dtype=float)
    g = np.asarray(groups)
    edges = np.asarray(bins, dtype=float)
    rows = []
    for level in pd.unique(g):
        counts, _ = np.histogram(v[g == level], bins=edges)
        rows.append(pd.DataFrame({"group": level, "bin_low": edges[:-1], "bin_high": edges[1:], "count": counts}))
    if not rows:
        return pd.DataFrame(columns=["group", "bin_low", "bin_high", "count"])
    return pd.concat(rows, ignore_index=True)


def diagnostics_table(
    max_abs_smd: float,
    equipoise_fraction: float,
    *,
    smd_threshold: float = 0.1,
    equipoise_threshold: float = 0.2,
    equipoise_bounds: tuple[float, float] = (0.3, 0.7),
    analysis: str = "ccw",
) -> pd.DataFrame:
    """The pass/fail table; grain: one row per diagnostic.

    A diagnostic that cannot be computed (NaN) is reported as not passed, with the reason.
    """
    rows = []
    ok = np.isfinite(max_abs_smd)
    rows.append(
        dict(
            analysis=analysis,
            diagnostic="covariate balance",
            value=float(max_abs_smd),
            threshold=f"max |SMD| after weighting < {smd_threshold:g}",
            passed=bool(ok and max_abs_smd < smd_threshold),
            note="" if ok else "not computable",
        )
    )
    ok = np.isfinite(equipoise_fraction)
    rows.append(
        dict(
            analysis=analysis,
            diagnostic="equipoise",
            value=float(equipoise_fraction),
            threshold=(
                f">= {equipoise_threshold:.0%} of persons with preference score in "
                f"[{equipoise_bounds[0]:g}, {equipoise_bounds[1]:g}]"
            ),
            passed=bool(ok and equipoise_fraction >= equipoise_threshold),
            note="" if ok else "not computable",
        )
    )
    return pd.DataFrame(rows)
