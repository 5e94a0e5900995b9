"""The covariate design matrix: named analysis-table columns to the numbers the models see.

Public, so a researcher can see (and reuse) exactly how each covariate entered the propensity,
censoring and outcome models:

>>> d = build_design(df, ["age", "region", "prior_jobs"], categorical=["region"])  # doctest: +SKIP
>>> d.summary()  # one row per design column: name, source column, kind, reference level

Rules, one per kind of column:

* **categorical** - text, boolean-like text, pandas ``category`` columns, and any column named in
  ``categorical`` (integer codes such as region 1..5 are categories, not amounts, and must be
  declared so): one 0/1 column per level except the reference (the most frequent level unless
  ``reference`` names one); a missing value is its own level ``(missing)``.
* **continuous** - numeric and boolean columns not declared categorical: as they are, nulls filled
  with the column mean and flagged by a ``<column>__missing`` indicator. Mean-filling with an
  indicator keeps every person in the models (baseline scores are often missing) without
  pretending the value is known.
* Columns that are constant (or entirely null), and design columns identical to an earlier one,
  are dropped and listed in ``dropped``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import IpmError

MISSING_LEVEL = "(missing)"


def require_columns(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    """Raise one readable error if ``df`` lacks any of ``columns``."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise IpmError(
            f"{what}: analysis table has no column(s) {', '.join(missing)}; pass the column names used by your table"
        )


@dataclass
class Design:
    """A numeric covariate matrix built from named analysis-table columns (see the module docstring).

    ``matrix`` has one row per person and one column per entry of ``names``; ``source`` gives the
    analysis-table column of each design column and ``kinds`` the kind each source column was
    treated as (``continuous``, ``categorical`` or ``dropped``); ``references`` the reference level
    of each categorical column.
    """

    matrix: np.ndarray
    names: list[str]
    source: list[str]
    dropped: list[str]
    kinds: dict[str, str] = field(default_factory=dict)
    references: dict[str, str] = field(default_factory=dict)

    def summary(self) -> pd.DataFrame:
        """How each covariate entered the design; grain: one row per design column, then one per
        dropped column (name, source, kind, reference)."""
        rows = []
        for name, src in zip(self.names, self.source, strict=True):
            kind = self.kinds.get(src, "continuous")
            if name.endswith("__missing"):
                kind = "missing indicator"
            rows.append(dict(name=name, source=src, kind=kind, reference=self.references.get(src)))
        for name in self.dropped:
            src = name if name in self.kinds else name.split("=")[0].removesuffix("__missing")
            rows.append(dict(name=name, source=src, kind="dropped", reference=None))
        return pd.DataFrame(rows, columns=["name", "source", "kind", "reference"])


def _level_text(s: pd.Series) -> pd.Series:
    """Category labels as text; whole-number codes without a trailing '.0' (1, not 1.0)."""
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        x = pd.to_numeric(s, errors="coerce")
        whole = x.dropna()
        if len(whole) and np.all(whole == np.round(whole)):
            return x.astype("Int64").astype("string")
    return s.astype("string")


def build_design(
    df: pd.DataFrame,
    covariates: Sequence[str],
    categorical: Sequence[str] = (),
    reference: Mapping[str, object] | None = None,
) -> Design:
    """Covariate matrix for ``covariates``; grain: one row per row of ``df``.

    Parameters
    ----------
    df : DataFrame
        The analysis table.
    covariates : list of str
        Columns to model.
    categorical : list of str
        Columns to dummy-code whatever their type (numeric codes of categories). Text and pandas
        ``category`` columns are categorical without being named here.
    reference : dict, optional
        ``{column: level}`` reference levels of categorical columns (default: the most frequent
        level, ties broken by name).

    Returns
    -------
    Design
    """
    require_columns(df, covariates, "covariates")
    undeclared = [c for c in categorical if c not in covariates]
    if undeclared:
        raise IpmError(f"categorical column(s) {', '.join(undeclared)} are not among the covariates; add them there")
    reference = dict(reference or {})
    blocks: list[np.ndarray] = []
    names: list[str] = []
    source: list[str] = []
    dropped: list[str] = []
    kinds: dict[str, str] = {}
    references: dict[str, str] = {}
    for col in covariates:
        s = df[col]
        numeric = (
            pd.api.types.is_bool_dtype(s)
            or pd.api.types.is_numeric_dtype(s)
            and not isinstance(s.dtype, pd.CategoricalDtype)
        )
        if numeric and col not in categorical:
            if col in reference:
                raise IpmError(f"reference level given for {col}, a numeric column; declare it categorical")
            kinds[col] = "continuous"
            x = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            miss = np.isnan(x)
            if miss.all():
                dropped.append(col)
                kinds[col] = "dropped"
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
                kinds[col] = "dropped"
        else:
            text = _level_text(s).fillna(MISSING_LEVEL)
            counts = text.value_counts(sort=False)
            if len(counts) < 2:
                dropped.append(col)
                kinds[col] = "dropped"
                continue
            kinds[col] = "categorical"
            # most frequent level as reference, ties broken by name so the design is deterministic
            levels = sorted(counts.index, key=lambda v: (-counts[v], str(v)))
            if col in reference:
                ref = str(reference[col])
                if ref not in levels:
                    raise IpmError(f"column {col}: reference level {ref!r} does not occur; levels: {', '.join(levels)}")
                levels = [ref] + [v for v in levels if v != ref]
            references[col] = levels[0]
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
    return Design(matrix=matrix, names=names, source=source, dropped=dropped, kinds=kinds, references=references)


def standardize(matrix: np.ndarray) -> np.ndarray:
    """Columns centred and scaled to unit variance (constant columns only centred)."""
    if matrix.shape[1] == 0:
        return matrix.astype(float)
    mean = matrix.mean(axis=0)
    sd = matrix.std(axis=0)
    return (matrix - mean) / np.where(sd > 0, sd, 1.0)
