"""Inverse-probability-of-treatment weights from a propensity score: ATE, ATT and overlap weights."""

from __future__ import annotations

import numpy as np

from ..errors import IpmError

ESTIMANDS = ("ate", "att", "overlap")


def treatment_weights(ps, treated, estimand: str = "ate", stabilized: bool = True) -> np.ndarray:
    """Weights that make the groups comparable on the covariates in the propensity model.

    Parameters
    ----------
    ps : array
        P(treated | X).
    treated : array of 0/1
    estimand : {"ate", "att", "overlap"}
        ``ate``: 1/ps for treated, 1/(1-ps) for untreated (whole population);
        ``att``: 1 for treated, ps/(1-ps) for untreated (population like the treated);
        ``overlap``: 1-ps for treated, ps for untreated (population in equipoise; Li, Morgan &
        Zaslavsky 2018), bounded, so never truncated.
    stabilized : bool
        ATE: multiply by the marginal probability of the group received (Hernan & Robins), so the
        weights average about 1 in each group; ATT: scale untreated weights by (1-P)/P.

    Returns
    -------
    array
        One weight per person.
    """
    ps = np.asarray(ps, dtype=float)
    t = np.asarray(treated).astype(bool)
    if estimand not in ESTIMANDS:
        raise IpmError(f"unknown weighting estimand {estimand!r}; use one of {', '.join(ESTIMANDS)}")
    ps = np.clip(ps, 1e-12, 1 - 1e-12)
    p = t.mean() if t.size else 0.5
    if estimand == "ate":
        w = np.where(t, 1 / ps, 1 / (1 - ps))
        if stabilized:
            w = w * np.where(t, p, 1 - p)
    elif estimand == "att":
        w = np.where(t, 1.0, ps / (1 - ps))
        if stabilized and 0 < p < 1:
            w = np.where(t, 1.0, w * (1 - p) / p)
    else:
        w = np.where(t, 1 - ps, ps)
    return w


def truncate(weights, percentiles: tuple[float, float] | None, reference=None) -> tuple[np.ndarray, float, float, int]:
    """Clip weights at percentiles of a reference distribution.

    Parameters
    ----------
    weights : array (any shape)
    percentiles : (low, high) or None
        E.g. (1, 99). ``None`` leaves the weights unchanged.
    reference : array, optional
        Values whose percentiles give the caps (default: ``weights`` itself).

    Returns
    -------
    (clipped weights, lower cap, upper cap, number of reference values outside the caps)
    """
    w = np.asarray(weights, dtype=float)
    ref = w.ravel() if reference is None else np.asarray(reference, dtype=float).ravel()
    if percentiles is None or ref.size == 0:
        return w, float("nan"), float("nan"), 0
    lo_p, hi_p = percentiles
    lo, hi = np.percentile(ref, [lo_p, hi_p])
    n_out = int(np.sum((ref < lo) | (ref > hi)))
    return np.clip(w, lo, hi), float(lo), float(hi), n_out
