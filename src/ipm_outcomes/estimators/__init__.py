"""Estimators of the causal analysis, one per module, lifelines-style.

Settings go in the constructor, ``fit(df, ...)`` returns ``self``, and results are attributes
ending in ``_`` plus a tidy ``summary`` DataFrame. Each takes a plain analysis table (one row per
person: ``time_days``, ``event`` 0/1/2, ``referral_day`` (nullable) and covariate columns), so it
works on any table of that shape, not only the study marts.
"""

from .ancova import WeightedANCOVA
from .ccw import CloneCensorWeight, clone, grace_period_strategies
from .cox import CoxRegression
from .dose_response import DoseResponse, band_strategies, dose_response_table
from .landmark import LandmarkIPTW
from .naive import NaiveComparison
from .propensity import LogisticRegression, PooledLogisticHazard, PropensityScore
from .survival import WeightedAalenJohansenFitter, WeightedKaplanMeierFitter
from .tv_cox import TimeVaryingCox

__all__ = [
    "CloneCensorWeight",
    "CoxRegression",
    "DoseResponse",
    "LandmarkIPTW",
    "LogisticRegression",
    "NaiveComparison",
    "PooledLogisticHazard",
    "PropensityScore",
    "TimeVaryingCox",
    "WeightedANCOVA",
    "WeightedAalenJohansenFitter",
    "WeightedKaplanMeierFitter",
    "band_strategies",
    "clone",
    "dose_response_table",
    "grace_period_strategies",
]
