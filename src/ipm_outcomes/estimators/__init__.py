"""Estimators of the causal analysis, one per module, lifelines-style.

Settings go in the constructor (stored as given; ``get_params()`` returns them), ``fit(df, ...)``
returns ``self``, and results are attributes ending in ``_`` plus a tidy ``summary`` DataFrame.
Each takes a plain analysis table (one row per person: ``time_days``, ``event`` 0/1/2, a
``referral_day`` (nullable) or a 0/1 treatment column, and covariate columns), so it works on any
table of that shape, not only the study marts. Defaults are the textbook estimators: models
unpenalised, weights untruncated. docs/estimators.md has a worked example.
"""

from .ancova import WeightedANCOVA
from ._summary import TwoArmSurvivalEstimator
from .base import BaseEstimator
from .ccw import CloneCensorWeight, clone, grace_period_strategies
from .ccw_outcomes import MultiOutcomeCloneCensorWeight
from .costs import CloneCensorCost, IPCWMeanCost, MultiOutcomeCloneCensorCost, NaiveCostComparison
from .cox import CoxRegression
from .design import Design, build_design, standardize
from .dose_response import DoseResponse, band_strategies, dose_response_table
from .glm import WeightedGLM
from .landmark import LandmarkIPTW
from .msm import IPWMeanDifference
from .naive import MultiOutcomeNaive, NaiveComparison
from .propensity import LogisticRegression, PooledLogisticHazard, PropensityScore
from .survival import WeightedAalenJohansenFitter, WeightedKaplanMeierFitter
from .tv_cox import TimeVaryingCox

__all__ = [
    "BaseEstimator",
    "CloneCensorCost",
    "CloneCensorWeight",
    "MultiOutcomeCloneCensorWeight",
    "CoxRegression",
    "Design",
    "DoseResponse",
    "IPCWMeanCost",
    "IPWMeanDifference",
    "LandmarkIPTW",
    "LogisticRegression",
    "MultiOutcomeNaive",
    "MultiOutcomeCloneCensorCost",
    "NaiveCostComparison",
    "NaiveComparison",
    "PooledLogisticHazard",
    "PropensityScore",
    "TimeVaryingCox",
    "TwoArmSurvivalEstimator",
    "WeightedANCOVA",
    "WeightedGLM",
    "WeightedAalenJohansenFitter",
    "WeightedKaplanMeierFitter",
    "band_strategies",
    "build_design",
    "clone",
    "dose_response_table",
    "grace_period_strategies",
    "standardize",
]
