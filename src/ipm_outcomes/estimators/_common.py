"""Shared helpers of the estimators: input checks and the covariate design matrix.

Every estimator takes a plain analysis table (one row per person) and names its columns; the
checks here turn a wrong table into one :class:`~ipm_outcomes.errors.IpmError` line that says
which column is wrong and what to do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import IpmError

#: Marker for "no referral" in integer day arrays (referral_day is nullable in the marts).
NEVER = np.iinfo(np.int64).max // 4


def require_columns(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    """Raise one readable error if ``df`` lacks any of ``columns``."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise IpmError(
            f"{what}: analysis table has no column(s) {', '.join(missing)}; pass the column names used by your table"
        )


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
        raise IpmError(f"column {column}: row {row} holds {s.iloc[row]!r}; expected a whole number of days >= 0")
    out = np.where(null, NEVER, np.nan_to_num(x, nan=0)).astype(np.int64)
    return out


def event_codes(values, column: str) -> np.ndarray:
    """Event codes 0 (censored), 1 (event of interest), 2 (competing) as int64."""
    s = pd.Series(values)
    x = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = ~np.isin(x, (0.0, 1.0, 2.0))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise IpmError(f"column {column}: row {row} holds {s.iloc[row]!r}; expected 0 (censored), 1 or 2")
    return x.astype(np.int64)


@dataclass
class Design:
    """A numeric covariate matrix built from named analysis-table columns.

    ``matrix`` has one row per person and one column per entry of ``names``: numeric and boolean
    columns as they are, categorical (text) columns one-hot with the most frequent level as
    reference, and a missing-value indicator (``<column>__missing``) beside any numeric column with
    nulls, whose nulls are filled with the column mean. Mean-filling with an indicator keeps every
    person in the models (baseline PROs are often missing) without pretending the value is known.
    Columns that are constant (or entirely null), and columns identical to an earlier column, are
    dropped and listed in ``dropped``.
    """

    matrix: np.ndarray
    names: list[str]
    source: list[str]
    dropped: list[str]


def build_design(df: pd.DataFrame, covariates: Sequence[str]) -> Design:
    """Covariate matrix for ``covariates`` (see :class:`Design`); grain: one row per row of ``df``."""
    require_columns(df, covariates, "covariates")
    blocks: list[np.ndarray] = []
    names: list[str] = []
    source: list[str] = []
    dropped: list[str] = []
    for col in covariates:
        s = df[col]
        if (
            pd.api.types.is_bool_dtype(s)
            or pd.api.types.is_numeric_dtype(s)
            and not isinstance(s.dtype, pd.CategoricalDtype)
        ):
            x = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            miss = np.isnan(x)
            if miss.all():
                dropped.append(col)
                continue
            if miss.any():
                x = np.where(miss, np.nanmean(x), x)
            if np.ptp(x) > 0:
                blocks.append(x[:, None])
                names.append(col)
                source.append(col)
            if miss.any() and not miss.all():
                blocks.append(miss.astype(float)[:, None])
                names.append(f"{col}__missing")
                source.append(col)
            if np.ptp(x) == 0 and not miss.any():
                dropped.append(col)
        else:
            text = s.astype("string").fillna("(missing)")
            counts = text.value_counts(sort=False)
            if len(counts) < 2:
                dropped.append(col)
                continue
            # most frequent level as reference, ties broken by name so the design is deterministic
            levels = sorted(counts.index, key=lambda v: (-counts[v], str(v)))
            arr = text.to_numpy(dtype=object)
            for level in levels[1:]:
                blocks.append((arr == level).astype(float)[:, None])
                names.append(f"{col}={level}")
                source.append(col)
    matrix = np.hstack(blocks) if blocks else np.zeros((len(df), 0))
    # a column identical to an earlier one (e.g. the missing-score indicators of instruments always
    # collected at the same visit) carries no information and makes the models singular
    keep = []
    seen: dict[bytes, int] = {}
    for j in range(matrix.shape[1]):
        key = np.ascontiguousarray(matrix[:, j]).tobytes()
        if key in seen:
            dropped.append(names[j])
        else:
            seen[key] = j
            keep.append(j)
    if len(keep) < matrix.shape[1]:
        matrix = matrix[:, keep]
        names = [names[j] for j in keep]
        source = [source[j] for j in keep]
    return Design(matrix=matrix, names=names, source=source, dropped=dropped)


def standardize(matrix: np.ndarray) -> np.ndarray:
    """Columns centred and scaled to unit variance (constant columns only centred)."""
    if matrix.shape[1] == 0:
        return matrix.astype(float)
    mean = matrix.mean(axis=0)
    sd = matrix.std(axis=0)
    return (matrix - mean) / np.where(sd > 0, sd, 1.0)
