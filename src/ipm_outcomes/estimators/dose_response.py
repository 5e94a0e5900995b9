"""How early matters: return to work across referral-delay bands, by clone-censor-weight.

Each band (0-14, 15-42, 43-90, 91-180 days) is one strategy of the emulated trial, "referral on a
day within the band, timing inside it as it naturally occurs"; every person is cloned into every
band and censored when referred before the band opens or not referred by its end (see
:mod:`ipm_outcomes.estimators.ccw`). Comparing persons by the band they happened to be referred in
would repeat the immortal-time error of the naive analysis (to be referred on day 150 one has to
be still off work on day 150).
"""

from __future__ import annotations

import pandas as pd

from .base import BaseEstimator
from .ccw import CUMULATIVE_INCIDENCE, CloneCensorWeight


def band_strategies(bands) -> dict[str, tuple[int, int | None]]:
    """Strategies from delay bands given as (label, first day, last day); open or 'never' bands are skipped."""
    return {label: (int(lo), int(hi)) for label, lo, hi in bands if hi is not None and lo >= 0}


def dose_response_table(model: CloneCensorWeight, bands, horizons, *, arm_prefix: str = "") -> pd.DataFrame:
    """Band cumulative incidences from a fitted CCW model that includes the band strategies.

    A band is reported only at horizons on or after its last day: before then its window is still
    open, and the cumulative incidence is that of persons some of whom may yet be referred in it.

    Parameters
    ----------
    model : fitted CloneCensorWeight whose strategies include the bands' (named ``arm_prefix + label``).
    bands : (label, first day, last day) per band.
    horizons : days to report.
    arm_prefix : prefix of the bands' strategy names in ``model`` (when it fits other strategies too).

    Returns
    -------
    DataFrame
        Grain: one row per band per horizon: band, first_day, last_day, horizon_days, estimate,
        ci_low, ci_high, n (persons cloned).
    """
    strategies = band_strategies(bands)
    rows = []
    s = model.summary
    for label, (lo, hi) in strategies.items():
        for h in horizons:
            if h < hi:
                continue  # the band's window is not closed yet at this horizon
            r = s[(s.measure == CUMULATIVE_INCIDENCE) & (s.arm == arm_prefix + label) & (s.horizon_days == h)]
            if r.empty:
                continue
            r = r.iloc[0]
            rows.append(
                dict(
                    band=label,
                    first_day=lo,
                    last_day=hi,
                    horizon_days=int(h),
                    estimate=r.estimate,
                    ci_low=r.ci_low,
                    ci_high=r.ci_high,
                    n=int(r.n),
                )
            )
    return pd.DataFrame(
        rows, columns=["band", "first_day", "last_day", "horizon_days", "estimate", "ci_low", "ci_high", "n"]
    )


class DoseResponse(BaseEstimator):
    """Clone-censor-weight over referral-delay bands (a thin wrapper of :class:`CloneCensorWeight`).

    Parameters
    ----------
    bands : list of (label, first day, last day)
    horizons : days at which the band cumulative incidences are reported.
    **kwargs : passed to :class:`CloneCensorWeight`.

    Attributes (after ``fit``)
    --------------------------
    table_ : DataFrame
        One row per band per horizon (see :func:`dose_response_table`).
    model_ : CloneCensorWeight
    """

    def __init__(self, bands, horizons=(180, 365), **kwargs):
        self.bands = bands
        self.horizons = horizons
        self.kwargs = kwargs

    def get_params(self) -> dict:
        """Bands, horizons and the settings passed on to :class:`CloneCensorWeight`."""
        return {"bands": self.bands, "horizons": self.horizons, **self.kwargs}

    def set_params(self, **params) -> DoseResponse:
        """Change settings by name (bands, horizons, or a :class:`CloneCensorWeight` setting); returns self."""
        for name in ("bands", "horizons"):
            if name in params:
                setattr(self, name, params.pop(name))
        CloneCensorWeight().set_params(**params)  # unknown names are an error
        self.kwargs = {**self.kwargs, **params}
        return self

    def fit(self, df: pd.DataFrame, covariates: list[str], **fit_kwargs) -> DoseResponse:
        """Fit on an analysis table (one row per person); returns self."""
        self.model_ = CloneCensorWeight(
            strategies=band_strategies(self.bands), contrasts=[], horizons=tuple(self.horizons), **self.kwargs
        ).fit(df, covariates, **fit_kwargs)
        self.table_ = dose_response_table(self.model_, list(self.bands), tuple(self.horizons))
        return self
