"""Shared helpers of the estimators: input checks (the covariate design matrix is in :mod:`.design`).

Every estimator takes a plain analysis table (one row per person) and names its columns; the
checks here turn a wrong table into one :class:`~ipm_outcomes.errors.IpmError` line that says
which column is wrong and what to do.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import IpmError
# the design builder is public (ipm_outcomes.estimators.design); these names stay importable from here
from .design import Design, build_design, require_columns, standardize  # noqa: F401

#: Marker for "no referral" in integer day arrays (referral_day is nullable in the marts).
NEVER = np.iinfo(np.int64).max // 4


def _shown(value):
    """A cell as the reader wrote it (``2``, not ``np.int64(2)``) for error messages."""
    return value.item() if isinstance(value, np.generic) else value


def integer_days(values, column: str, *, nullable: bool = False) -> np.ndarray:
    """A day-count column as int64; null becomes :data:`NEVER` when ``nullable``.

    Days must be whole numbers >= 0: the marts count days since index, and every estimator works
    on that daily grid.
    """
    s = pd.Series(values)
    null = s.isna().to_numpy()
    if null.any() and not nullable:
        row = int(np.flatnonzero(null)[0])
        raise IpmError(f"column {column}: missing value in row {row}; every person needs a value")
    x = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = ~null & (~np.isfinite(x) | (x < 0) | (x != np.round(x)))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise IpmError(f"column {column}: row {row} holds {_shown(s.iloc[row])!r}; expected a whole number of days >= 0")
    out = np.where(null, NEVER, np.nan_to_num(x, nan=0)).astype(np.int64)
    return out


def event_codes(values, column: str) -> np.ndarray:
    """Event codes 0 (censored), 1 (event of interest), 2 (competing) as int64."""
    s = pd.Series(values)
    x = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = ~np.isin(x, (0.0, 1.0, 2.0))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise IpmError(f"column {column}: row {row} holds {_shown(s.iloc[row])!r}; expected 0 (censored), 1 or 2")
    return x.astype(np.int64)


def binary_column(df: pd.DataFrame, column: str) -> np.ndarray:
    """A 0/1 (or boolean) column as bool; one readable error naming the first other value's row."""
    s = df[column]
    x = pd.to_numeric(s.astype("Float64") if pd.api.types.is_bool_dtype(s) else s, errors="coerce")
    x = x.to_numpy(dtype=float, na_value=np.nan)
    bad = ~np.isin(x, (0.0, 1.0))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise IpmError(f"column {column}: row {row} holds {_shown(s.iloc[row])!r}; expected 0/1 or true/false")
    return x == 1.0


def numeric_column(df: pd.DataFrame, column: str) -> np.ndarray:
    """A numeric column with a value in every row; one readable error naming the first bad row."""
    s = df[column]
    x = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = ~np.isfinite(x)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise IpmError(
            f"column {column}: row {row} holds {_shown(s.iloc[row])!r}; expected a number (drop or impute missing outcomes first)"
        )
    return x
