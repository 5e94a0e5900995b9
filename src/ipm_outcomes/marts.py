"""The marts: the tables the cohort build hands to the models, with their keys and columns.

Declared here, below both the spec and the cohort build, because both read them: the spec checks that
its covariates are columns of ``marts.cohort``, the cohort build writes and exports the marts. The SQL
that builds them is ``sql/marts/<mart>.sql``; ``tests/sql/test_marts_contract.py`` holds the SQL to
these declarations.
"""

from __future__ import annotations

from .contract import PRO_RANGES

#: Charlson components (Quan 2005 categories); each is a value set and a ``cci_<component>`` cohort column.
CHARLSON_COMPONENTS: tuple[str, ...] = (
    "cci_mi",
    "cci_chf",
    "cci_pvd",
    "cci_cevd",
    "cci_dementia",
    "cci_copd",
    "cci_rheumatic",
    "cci_pud",
    "cci_mild_liver",
    "cci_diabetes",
    "cci_diabetes_complicated",
    "cci_hemiplegia",
    "cci_renal",
    "cci_cancer",
    "cci_severe_liver",
    "cci_metastatic",
    "cci_hiv",
)

#: PRO instruments with a ``baseline_<instrument>`` column in ``marts.cohort``.
PRO_INSTRUMENTS: tuple[str, ...] = tuple(PRO_RANGES)

#: The marts and their keys (each key is unique and not null).
MART_KEYS: dict[str, tuple[str, ...]] = {
    "cohort": ("person_id",),
    "rtw_outcome": ("person_id",),
    "qol_outcome": ("person_id", "instrument", "horizon_days"),
    "attrition": ("population", "step_order"),
    "outcome_availability": ("outcome",),
    "secondary_outcome": ("person_id", "outcome"),
    "negative_control_outcome": ("person_id", "outcome"),
    "cost_outcome": ("person_id", "outcome"),
    "cost_daily": ("person_id", "outcome", "day"),
}

#: Columns of ``marts.cohort``, in order (the analysis spec's covariates are chosen from these).
COHORT_COLUMNS: tuple[str, ...] = (
    "person_id",
    "index_date",
    "age",
    "sex",
    "payer_type",
    "index_year",
    "charlson_index",
    *CHARLSON_COMPONENTS,
    "depression",
    "anxiety",
    "sleep_disorder",
    "prior_pt",
    "prior_imaging",
    "radiculopathy",
    "opioid_use",
    "mean_daily_mme",
    *(f"baseline_{name}" for name in PRO_INSTRUMENTS),
    "prior_year_allowed",
    "referral_date",
    "days_to_referral",
    "days_to_referral_procedure_only",
    "referral_source",
    "exposure",
    "delay_category",
    "in_rtw_population",
    "followup_end_day",
    "censor_day",
    "censor_reason",
    "enrollment_end_day",
    "data_end_day",
    "death_day",
)

