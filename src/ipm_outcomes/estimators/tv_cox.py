"""Time-varying exposure Cox model: referral as a time-varying covariate (a sensitivity analysis).

Each person is followed from index; before the referral the person counts as unreferred, from the
day after it as referred (the day's outcome comes before that day's referral, as in the
clone-censor-weight analysis). Because exposure time is assigned correctly there is no immortal
time, but the hazard ratio compares referred with not-yet-referred person-time (any referral,
early or late), adjusted for baseline covariates only, so it answers a different question from
the emulated trial. Cause-specific for return to work (competing events censored). The interval
is from the cluster-robust (sandwich) standard error of the single fit, clustered on person.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import IpmError
from ._common import build_design, event_codes, integer_days, require_columns, standardize
from .base import BaseEstimator
from .cox import CoxRegression

EXPOSURE = "referred"


def counting_process(time: np.ndarray, event: np.ndarray, referral: np.ndarray, cause: int = 1) -> pd.DataFrame:
    """Start-stop rows with the referral as a time-varying covariate.

    Returns
    -------
    DataFrame
        Grain: one row per person per exposure period (one or two rows per person): person
        (row number of the input), start, stop (the row is at risk on days start+1..stop), referred
        (0/1), event (1 when the period ends in the outcome of ``cause``).
    """
    n = time.shape[0]
    person = np.arange(n)
    split = referral < time  # referred while still at risk (outcome on day r comes first)
    first_stop = np.where(split, referral, time)
    rows = [
        pd.DataFrame(
            {
                "person": person,
                "start": -1,
                "stop": first_stop,
                EXPOSURE: 0,
                "event": np.where(split, 0, (event == cause).astype(int)),
            }
        ),
        pd.DataFrame(
            {
                "person": person[split],
                "start": referral[split],
                "stop": time[split],
                EXPOSURE: 1,
                "event": (event[split] == cause).astype(int),
            }
        ),
    ]
    return pd.concat(rows, ignore_index=True)


class TimeVaryingCox(BaseEstimator):
    """Cause-specific Cox model of RTW with referral as a time-varying covariate.

    Attributes (after ``fit``)
    --------------------------
    model_ : CoxRegression
    summary : DataFrame
        One row: measure ``hazard_ratio``, estimate, ci_low, ci_high, n (persons), events.
    """

    def __init__(self, alpha: float = 0.05, event_of_interest: int = 1):
        self.alpha = alpha
        self.event_of_interest = event_of_interest

    def fit(
        self,
        df: pd.DataFrame,
        covariates: list[str],
        duration_col: str = "time_days",
        event_col: str = "event",
        referral_col: str = "referral_day",
    ) -> TimeVaryingCox:
        """Fit on an analysis table (one row per person); returns self."""
        require_columns(df, [duration_col, event_col, referral_col], "time-varying Cox model")
        if len(df) == 0:
            raise IpmError("time-varying Cox model: the analysis table is empty")
        time = integer_days(df[duration_col], duration_col)
        event = event_codes(df[event_col], event_col)
        referral = integer_days(df[referral_col], referral_col, nullable=True)
        rows = counting_process(time, event, referral, self.event_of_interest)
        design = build_design(df, covariates)
        X = np.hstack([rows[[EXPOSURE]].to_numpy(float), standardize(design.matrix)[rows["person"].to_numpy()]])
        names = [EXPOSURE, *design.names]
        self.model_ = CoxRegression(alpha=self.alpha).fit(
            X,
            rows["stop"].to_numpy(float),
            rows["event"].to_numpy(bool),
            start=rows["start"].to_numpy(float),
            cluster=rows["person"].to_numpy(),
            robust=True,
            names=names,
        )
        row = self.model_.summary.loc[EXPOSURE]
        self.summary = pd.DataFrame(
            [
                dict(
                    measure="hazard_ratio",
                    arm=None,
                    contrast="referred vs not yet referred",
                    horizon_days=int(time.max()),
                    estimate=float(row["exp(coef)"]),
                    ci_low=float(row["exp(coef) lower"]),
                    ci_high=float(row["exp(coef) upper"]),
                    n=len(df),
                    events=int(rows["event"].sum()),
                )
            ]
        )
        return self
