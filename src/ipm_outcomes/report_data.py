"""Read an analysis results directory into the typed view the report renders from.

This module is the only place that knows the layout of ``ipm-outcomes analyze --out DIR``:
``DIR/results.json`` plus tidy Parquet tables named in its ``tables`` map. Everything downstream
(:mod:`ipm_outcomes.report`, :mod:`ipm_outcomes.plots`) sees :class:`ReportData` only, so a change of
the results layout is absorbed here.

Nothing here suppresses small counts: :class:`ReportData` holds the true numbers, and the report step
passes every displayed number through :mod:`ipm_outcomes.disclosure`.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import IpmError
from .plan import AnalysisItem

#: The version of the results layout (``results.json`` and its tables) that this package writes and
#: reads. Raise it whenever a key, a table or a meaning changes: a report must never be rendered from
#: results it would read differently. Results with no version are from before versions were kept (1).
#: 3: estimates keyed by analysis id (the analysis plan travels in results.json), delay categories with
#: their first and last day, curves with their analysis id.
#: 4: the cohort outcome analyses (roles secondary_outcome, negative_control, cost, calibration; tables
#: secondary_estimates, secondary_curves, negative_controls, cost_estimates, calibrated_estimates); the checks
#: and the balance and diagnostics rows keyed by the plan's analysis id instead of the weighting model.
#: Schema 3 results are read as results without the new tables, their weighting-model names translated to
#: plan ids.
RESULTS_SCHEMA_VERSION = 4
#: Results schemas this package reads.
READABLE_SCHEMA_VERSIONS = (3, 4)
#: Schema 3 named the weighting analyses' checks and balance rows by their weighting model; schema 4 by the
#: plan's analysis id. Read back under the ids, so the disclosure gate knows the cohort's checks.
_SCHEMA_3_ANALYSIS_IDS = {"ccw": "primary", "cohort_iptw": "cohort_description"}


# ----------------------------------------------------------------------------------------------
# the results data model: every table, its grain, columns and types, key and person counts


@dataclass(frozen=True)
class Column:
    """A column of a results table.

    ``type`` is one of ``str``, ``int``, ``float``, ``bool``; ``nullable`` allows missing values;
    ``person_count`` marks a count of persons (the disclosure gate's input: a number a reader must not
    see when it is 1 to min_cell_size - 1); ``required`` columns must be present, the others may be
    absent (a reader sees them as missing).
    """

    name: str
    type: str
    nullable: bool = False
    person_count: bool = False
    required: bool = True


def _c(name: str, type: str, *flags: str) -> Column:
    return Column(name, type, "null" in flags, "count" in flags, "optional" not in flags)


@dataclass(frozen=True)
class TableSpec:
    """One results table: its grain, columns (in written order) and key (unique, empty for per-person rows)."""

    name: str
    grain: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def person_counts(self) -> tuple[str, ...]:
        """The columns that count persons."""
        return tuple(c.name for c in self.columns if c.person_count)

    def conform(self, frame: pd.DataFrame, where: str) -> pd.DataFrame:
        """``frame`` checked against the declaration, in the declared column order (absent optional
        columns added as missing); a one-line :class:`IpmError` naming ``where``, the column and the row
        when it does not conform."""
        missing = [c.name for c in self.columns if c.required and c.name not in frame.columns]
        if missing:
            raise IpmError(f"{where}: table {self.name!r} lacks column(s) {', '.join(missing)}")
        extra = [c for c in frame.columns if c not in self.column_names]
        if extra:
            raise IpmError(
                f"{where}: table {self.name!r} has column(s) {', '.join(map(str, extra))} that results schema "
                f"{RESULTS_SCHEMA_VERSION} does not declare"
            )
        out = frame.copy()
        for column in self.columns:
            if column.name not in out.columns:
                out[column.name] = None
                continue
            values = out[column.name]
            bad = _type_violations(values, column)
            if len(bad):
                row = int(bad[0])
                value = values.iloc[row]
                what = "no value (required)" if pd.isna(value) else f"{value!r} is not {column.type}"
                raise IpmError(f"{where}: table {self.name!r} column {column.name!r} row {row}: {what}")
        if self.key and len(out) and out.duplicated(subset=list(self.key)).any():
            row = int(out.duplicated(subset=list(self.key)).to_numpy().nonzero()[0][0])
            raise IpmError(f"{where}: table {self.name!r} row {row}: a second row with the key {self.key} of an earlier one")
        return out[self.column_names].reset_index(drop=True)


def _type_violations(values: pd.Series, column: Column) -> list[int]:
    """Positions of values that are not of the column's type (or missing where not nullable)."""
    missing = values.isna().to_numpy()
    bad = missing.copy() if not column.nullable else np.zeros(len(values), bool)
    present = ~missing
    t = column.type
    if pd.api.types.is_bool_dtype(values.dtype):
        if t != "bool":
            bad |= present
    elif pd.api.types.is_numeric_dtype(values.dtype):
        if t == "str" or t == "bool":
            bad |= present
        elif t == "int":
            x = values.to_numpy(dtype=float, na_value=np.nan)
            bad |= present & ~(np.isfinite(x) & (np.floor(x) == x))
    else:  # object: look at each value
        for i, v in enumerate(values.tolist()):
            if not present[i]:
                continue
            if t == "str":
                ok = isinstance(v, str)
            elif t == "bool":
                ok = isinstance(v, (bool, np.bool_))
            elif t == "int":
                ok = isinstance(v, (int, np.integer, float, np.floating)) and not isinstance(v, (bool, np.bool_)) \
                    and float(v).is_integer()
            else:
                ok = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
            bad[i] |= not ok
    return list(np.flatnonzero(bad))


_ESTIMATE = (_c("estimate", "float", "null"), _c("ci_low", "float", "null"), _c("ci_high", "float", "null"))

#: Every results table: name -> declaration. The analysis writes through it, the report reads through it.
TABLES: dict[str, TableSpec] = {
    t.name: t
    for t in (
        TableSpec(
            "estimates",
            "one row per analysis (plan id) per outcome per measure per arm (null for contrasts) per horizon "
            "(null for hazard ratios, which span the follow-up)",
            (_c("analysis", "str"), _c("outcome", "str"), _c("method", "str"), _c("measure", "str"),
             _c("arm", "str", "null"), _c("horizon_days", "int", "null"), *_ESTIMATE, _c("n", "int", "null", "count")),
            ("analysis", "outcome", "measure", "arm", "horizon_days"),
        ),
        TableSpec(
            "rtw_curves",
            "one row per analysis per arm per day 0..followup: cumulative incidence of RTW with 95% band, "
            "competing-event incidence, 1-KM (competing events censored) and numbers at risk",
            (_c("analysis", "str"), _c("method", "str"), _c("arm", "str"), _c("day", "int"), *_ESTIMATE,
             _c("n_at_risk", "int", "count"), _c("weighted_at_risk", "float", "null", "optional"),
             _c("cumulative_incidence_competing", "float", "null", "optional"),
             _c("one_minus_km", "float", "null", "optional")),
            ("analysis", "arm", "day"),
        ),
        TableSpec(
            "table1",
            "one row per baseline characteristic (per level) per exposure group",
            (_c("variable", "str"), _c("level", "str", "null"), _c("statistic", "str"), _c("arm", "str"),
             _c("n", "int", "count"), _c("denominator", "int", "null", "count", "optional"),
             _c("mean", "float", "null", "optional"), _c("sd", "float", "null", "optional")),
            ("variable", "level", "arm"),
        ),
        TableSpec(
            "smd",
            "one row per covariate (level): standardized mean difference, cohort early vs delayed, before and "
            "after IPTW",
            (_c("covariate", "str"), _c("smd_before", "float", "null"), _c("smd_after", "float", "null")),
            ("covariate",),
        ),
        TableSpec(
            "balance",
            "one row per weighting analysis (plan id) per covariate (level): SMD before and after its weights",
            (_c("analysis", "str"), _c("covariate", "str"),
             *(_c(x, "float", "null") for x in ("mean_treated", "mean_control", "smd_before", "weighted_mean_treated",
                                                "weighted_mean_control", "smd_after"))),
            ("analysis", "covariate"),
        ),
        TableSpec(
            "referral_timing",
            "one row per day after index with at least one first IPM contact: persons",
            (_c("day", "int"), _c("n", "int", "count")),
            ("day",),
        ),
        TableSpec(
            "delay_categories",
            "one row per referral-delay category (first and last day after index; open end or never: null): persons",
            (_c("delay_category", "str"), _c("first_day", "int", "null"), _c("last_day", "int", "null"),
             _c("n", "int", "count")),
            ("delay_category",),
        ),
        TableSpec(
            "dose_response",
            "one row per referral-delay band per horizon at or after the band's last day: CCW cumulative incidence "
            "of RTW under 'referral within the band' (first and last day; null: open end, or never referred); n = "
            "persons referred in the band, n_cloned = persons cloned into it",
            (_c("delay_category", "str"), _c("first_day", "int", "null"), _c("last_day", "int", "null"), _c("horizon_days", "int"),
             *_ESTIMATE, _c("n", "int", "null", "count"), _c("n_cloned", "int", "null", "count", "optional")),
            ("delay_category", "horizon_days"),
        ),
        TableSpec(
            "subgroups",
            "one row per subgroup level: CCW risk difference of RTW at the primary horizon, interaction p",
            (_c("subgroup", "str"), _c("level", "str"), _c("horizon_days", "int", "optional"), *_ESTIMATE,
             _c("n", "int", "null", "count"), _c("n_early", "int", "null", "count", "optional"),
             _c("n_delayed", "int", "null", "count", "optional"), _c("p_interaction", "float", "null", "optional")),
            ("subgroup", "level"),
        ),
        TableSpec(
            "subgroup_arms",
            "one row per subgroup level per measure per arm (null for contrasts) per horizon: CCW estimates",
            (_c("subgroup", "str"), _c("level", "str"), _c("measure", "str"), _c("arm", "str", "null"),
             _c("horizon_days", "int"), *_ESTIMATE, _c("n", "int", "null", "count"),
             _c("p_interaction", "float", "null")),
            ("subgroup", "level", "measure", "arm", "horizon_days"),
        ),
        TableSpec(
            "sensitivity",
            "one row per analysis of the plan that is the primary or one of its sensitivity analyses: risk "
            "difference at the primary horizon; n_early, n_delayed = persons who followed each strategy",
            (_c("analysis", "str"), _c("label", "str", "optional"), _c("measure", "str", "optional"),
             _c("horizon_days", "int", "null", "optional"), *_ESTIMATE, _c("n", "int", "null", "count"),
             _c("n_early", "int", "null", "count", "optional"), _c("n_delayed", "int", "null", "count", "optional")),
            ("analysis",),
        ),
        TableSpec(
            "landmark_weightings",
            "one row per weighting (ate, att, overlap) per measure per arm (or contrast) per horizon",
            (_c("measure", "str"), _c("arm", "str", "null"), _c("contrast", "str", "null"),
             _c("horizon_days", "int", "null"), *_ESTIMATE, _c("n", "int", "null", "count"), _c("weighting", "str")),
            ("weighting", "measure", "arm", "contrast", "horizon_days"),
        ),
        TableSpec(
            "qol_summary",
            "one row per instrument per horizon per exposure group: observed follow-up scores",
            (_c("instrument", "str"), _c("horizon_days", "int"), _c("arm", "str"), _c("n", "int", "count"),
             _c("n_missing", "int", "null", "count", "optional"), _c("mean", "float", "null"),
             _c("sd", "float", "null"), _c("baseline_mean", "float", "null", "optional"),
             _c("responder_proportion", "float", "null", "optional")),
            ("instrument", "horizon_days", "arm"),
        ),
        TableSpec(
            "qol_estimates",
            "one row per instrument per horizon per variant (ipow, complete_case) per measure per arm",
            (_c("variant", "str"), _c("measure", "str"), _c("arm", "str", "null"), *_ESTIMATE,
             _c("n", "int", "null", "count"), _c("instrument", "str"), _c("horizon_days", "int")),
            ("instrument", "horizon_days", "variant", "measure", "arm"),
        ),
        TableSpec(
            "overlap",
            "one row per cohort person: exposure group, propensity and preference score (cohort propensity model)",
            (_c("arm", "str"), _c("preference_score", "float"), _c("propensity_score", "float", "optional")),
            (),
        ),
        TableSpec(
            "weights",
            "one row per clone weighted in the primary analysis (at risk when the grace period closes): arm and "
            "final weight, normalised to mean 1 per arm",
            (_c("arm", "str"), _c("weight", "float"), _c("method", "str", "optional")),
            (),
        ),
        TableSpec(
            "secondary_estimates",
            "one row per cohort outcome analysis (plan id: a secondary outcome's clone-censor-weight or naive "
            "comparison) per measure (cumulative_incidence, risk_difference, risk_ratio, log_risk_ratio) per arm "
            "(null for contrasts) per horizon; se = bootstrap standard error; n = persons who followed the arm's "
            "strategy in the outcome's population (contrasts: the population); n_events = persons whose event "
            "counts in the arm's curve by the horizon (contrasts: the smaller arm's); n_at_risk = clones at risk "
            "on the horizon day",
            (_c("analysis", "str"), _c("outcome", "str"), _c("method", "str"), _c("measure", "str"),
             _c("arm", "str", "null"), _c("horizon_days", "int"), *_ESTIMATE, _c("se", "float", "null"),
             _c("n", "int", "null", "count"), _c("n_events", "int", "null", "count"),
             _c("n_at_risk", "int", "null", "count")),
            ("analysis", "outcome", "measure", "arm", "horizon_days"),
        ),
        TableSpec(
            "secondary_curves",
            "one row per secondary-outcome analysis per arm per day 0..last horizon: cumulative incidence with "
            "95% band, death (competing) incidence, clones at risk and persons with the event so far",
            (_c("analysis", "str"), _c("outcome", "str"), _c("method", "str"), _c("arm", "str"), _c("day", "int"),
             *_ESTIMATE, _c("cumulative_incidence_competing", "float", "null"), _c("n_at_risk", "int", "count"),
             _c("n_events", "int", "count")),
            ("analysis", "arm", "day"),
        ),
        TableSpec(
            "negative_controls",
            "one row per negative-control outcome: clone-censor-weight log risk ratio (early vs delayed) at the "
            "last horizon with its bootstrap standard error and percentile interval, persons in its population, "
            "persons with the event in each arm's curve, and whether empirical calibration can use it (reason: why "
            "not)",
            (_c("analysis", "str"), _c("outcome", "str"), _c("horizon_days", "int"), _c("log_rr", "float", "null"),
             _c("se", "float", "null"), _c("ci_low", "float", "null"), _c("ci_high", "float", "null"),
             _c("n", "int", "count"), _c("events_early", "int", "count"), _c("events_delayed", "int", "count"),
             _c("usable", "bool"), _c("reason", "str", "null")),
            ("outcome",),
        ),
        TableSpec(
            "calibrated_estimates",
            "one row per calibrated analysis (plan id) per measure per horizon: the risk ratio (early vs delayed) "
            "with its log and bootstrap standard error, the Wald interval and p-value from them, and beside them "
            "the empirically calibrated ratio, interval and p-value (empty when too few negative controls had "
            "events: calibrated false); note: how the calibration applies to that analysis",
            (_c("analysis", "str"), _c("outcome", "str"), _c("measure", "str"), _c("horizon_days", "int"),
             _c("log_rr", "float", "null"), _c("se", "float", "null"), _c("estimate", "float", "null"),
             _c("ci_low", "float", "null"), _c("ci_high", "float", "null"), _c("p", "float", "null"),
             _c("calibrated_estimate", "float", "null"), _c("calibrated_ci_low", "float", "null"),
             _c("calibrated_ci_high", "float", "null"), _c("calibrated_p", "float", "null"),
             _c("calibrated", "bool"), _c("note", "str", "null")),
            ("analysis", "measure", "horizon_days"),
        ),
        TableSpec(
            "cost_estimates",
            "one row per cost analysis (plan id: a cost outcome's clone-censor-weight or naive comparison) per "
            "measure (mean_cost per arm, mean_cost_difference early - delayed with arm null) at the cost window's "
            "last day (horizon_days); estimate and percentile bootstrap interval in units (the extract's allowed "
            "amounts, USD, per person); se = bootstrap standard error; n = persons who followed the arm's strategy "
            "(naive: persons in the eventual-referral group; the difference: the cohort)",
            (_c("analysis", "str"), _c("outcome", "str"), _c("method", "str"), _c("measure", "str"),
             _c("arm", "str", "null"), _c("horizon_days", "int"), *_ESTIMATE, _c("se", "float", "null"),
             _c("units", "str"), _c("n", "int", "null", "count")),
            ("analysis", "outcome", "measure", "arm", "horizon_days"),
        ),
        TableSpec(
            "diagnostics",
            "one row per weighting analysis (plan id) per diagnostic: value, threshold, pass/fail",
            (_c("analysis", "str"), _c("diagnostic", "str"), _c("value", "float", "null"), _c("threshold", "str"),
             _c("passed", "bool", "null"), _c("note", "str", "null")),
            ("analysis", "diagnostic"),
        ),
    )
}
def conform_table(name: str, frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """``frame`` as the results table ``name`` (see :meth:`TableSpec.conform`); a table the model does not
    declare is refused: a new results table is declared in :data:`TABLES` before anything writes it."""
    if name not in TABLES:
        raise IpmError(f"{where}: table {name!r} is not part of results schema {RESULTS_SCHEMA_VERSION}; declare it in "
                       "ipm_outcomes.report_data.TABLES")
    return TABLES[name].conform(frame, where)


#: The key of an estimate: (analysis id, outcome, measure, arm, horizon).
ESTIMATE_KEY = TABLES["estimates"].key
ESTIMATE_COLUMNS = TABLES["estimates"].column_names


@dataclass(frozen=True)
class AttritionStep:
    """One step of a CONSORT flow: persons remaining after the step and excluded by it."""

    population: str
    order: int
    step: str
    remaining: int
    excluded: int | None


@dataclass(frozen=True)
class CohortCounts:
    """Sizes of the study cohort and its exposure groups."""

    n: int
    n_early: int
    n_delayed: int
    n_rtw_population: int


@dataclass(frozen=True)
class Estimate:
    """One row of ``results.json`` ``estimates`` (``arm`` None for contrasts)."""

    outcome: str
    method: str
    measure: str
    arm: str | None
    horizon_days: int | None
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    n: int | None
    analysis: str = ""  # the analysis plan's id: with outcome, measure, arm and horizon, the estimate's key


@dataclass(frozen=True)
class DiagnosticCheck:
    """One pass/fail study diagnostic."""

    name: str
    label: str
    value: float | None
    threshold: str
    passed: bool | None


@dataclass
class ReportData:
    """Everything the report shows, with true (unsuppressed) numbers.

    ``tables`` maps a table name (see :data:`TABLES`) to its DataFrame, conformed to its declaration; a table the
    analysis did not write is absent, and ``unavailable`` may say why.
    """

    results_dir: Path
    study: str
    title: str
    description: str
    spec: dict[str, Any]
    spec_sha256: str
    data_sha256: str
    package_version: str
    generated_at: str
    seed: int | None
    min_cell_size: int
    grace_period_days: int
    horizons: list[int]
    primary_horizon: int
    mcid: dict[str, float]
    attrition: dict[str, list[AttritionStep]]
    cohort: CohortCounts
    plan: list[AnalysisItem]
    estimates: pd.DataFrame
    checks: list[DiagnosticCheck]
    diagnostics: dict[str, Any]
    tables: dict[str, pd.DataFrame]
    table_grains: dict[str, str]
    unavailable: dict[str, str]
    provenance: dict[str, Any]
    intervals: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        """True when no person met the cohort criteria."""
        return self.cohort.n == 0

    @property
    def primary_analysis(self) -> AnalysisItem | None:
        """The plan's primary analysis."""
        return next((item for item in self.plan if item.primary), None)

    def analyses(self, outcome: str, roles: tuple[str, ...] | None = None) -> list[AnalysisItem]:
        """The plan's analyses of ``outcome`` (with one of ``roles``), in plan order."""
        return [i for i in self.plan if i.outcome == outcome and (roles is None or i.role in roles)]

    def estimate(
        self,
        analysis: str | None,
        outcome: str,
        measure: str,
        horizon_days: int | None = None,
        arm: str | None = None,
    ) -> Estimate | None:
        """The estimate with this key (analysis id, outcome, measure, arm, horizon; ``horizon_days`` None
        matches a missing horizon), else None."""
        df = self.estimates
        if df.empty or analysis is None:
            return None
        mask = (df["analysis"] == analysis) & (df["outcome"] == outcome) & (df["measure"] == measure)
        mask &= df["arm"].isna() if arm is None else (df["arm"] == arm)
        if horizon_days is None:
            mask &= df["horizon_days"].isna()
        else:
            mask &= df["horizon_days"] == horizon_days
        rows = df[mask]
        if rows.empty:
            return None
        return estimate_from_row(rows.iloc[0].to_dict())

    def table(self, name: str) -> pd.DataFrame | None:
        """A result table by name, or None when the analysis did not write it."""
        return self.tables.get(name)

    def spec_get(self, *path: str, default: Any = None) -> Any:
        """A value from the study spec as run, e.g. ``spec_get("exposure", "grace_period_days")``."""
        node: Any = self.spec
        for key in path:
            if not isinstance(node, dict) or key not in node:
                return default
            node = node[key]
        return node


def _num(value: Any) -> float | None:
    if value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(out) else out


def _int(value: Any) -> int | None:
    out = _num(value)
    return None if out is None else int(round(out))


def estimate_from_row(row: dict) -> Estimate:
    """An :class:`Estimate` from a row of the estimates table (missing values as None)."""
    arm = row.get("arm")
    if isinstance(arm, float) and math.isnan(arm):
        arm = None
    return Estimate(
        analysis=str(row.get("analysis") or ""),
        outcome=str(row["outcome"]),
        method=str(row["method"]),
        measure=str(row["measure"]),
        arm=arm,
        horizon_days=_int(row.get("horizon_days")),
        estimate=_num(row.get("estimate")),
        ci_low=_num(row.get("ci_low")),
        ci_high=_num(row.get("ci_high")),
        n=_int(row.get("n")),
    )


def _fail(path: Path, what: str) -> IpmError:
    return IpmError(f"{path}: {what}; re-run `ipm-outcomes analyze --out {path.parent}` to write a complete results directory")


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise IpmError(
            f"{path}: no results.json here; give --results the folder written by `ipm-outcomes analyze --out DIR`"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise _fail(path, f"not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(data, dict):
        raise _fail(path, "top level is not a JSON object")
    return data


def _check_schema_version(data: dict[str, Any], path: Path) -> None:
    version = data.get("schema_version", 1)
    if version in READABLE_SCHEMA_VERSIONS:
        return
    written_by = data.get("package_version") or "an older version"
    raise IpmError(
        f"{path}: results written by ipm-outcomes {written_by} in results schema {version}; this version "
        f"reads schema {' or '.join(map(str, READABLE_SCHEMA_VERSIONS))}: re-run `ipm-outcomes analyze --db DB --out {path.parent}`"
    )


def _load_spec(data: dict[str, Any], results_dir: Path) -> dict[str, Any]:
    spec = data.get("spec")
    if isinstance(spec, dict):
        return spec
    ref = spec if isinstance(spec, str) else data.get("spec_path")
    if isinstance(ref, str):
        path = Path(ref)
        if not path.is_absolute():
            path = results_dir / path
        if path.is_file():
            with open(path, "rb") as handle:
                if path.suffix == ".json":
                    return json.load(handle)
                return tomllib.load(handle)
    return {}


def _attrition(raw: Any, path: Path) -> dict[str, list[AttritionStep]]:
    out: dict[str, list[AttritionStep]] = {}
    if raw is None:
        return out
    if isinstance(raw, dict):  # {"cohort": [...], "rtw": [...]}
        rows = [dict(r, population=pop) for pop, items in raw.items() for r in items]
    else:
        rows = list(raw)
    for i, row in enumerate(rows):
        try:
            step = AttritionStep(
                population=str(row.get("population") or "cohort"),
                order=int(row.get("step_order", i)),
                step=str(row["step"]),
                remaining=int(row["remaining"]),
                excluded=_int(row.get("excluded")),
            )
        except (KeyError, TypeError, ValueError):
            raise _fail(path, f"attrition entry {i} lacks step/remaining") from None
        out.setdefault(step.population, []).append(step)
    for steps in out.values():
        steps.sort(key=lambda s: s.order)
    return out


def _schema_3_id(name: str) -> str:
    analysis, sep, rest = name.partition(":")
    return _SCHEMA_3_ANALYSIS_IDS.get(analysis, analysis) + sep + rest


def _checks(diagnostics: dict[str, Any], version: int) -> list[DiagnosticCheck]:
    raw = diagnostics.get("checks")
    if isinstance(raw, dict):  # {"balance": {...}, ...}
        raw = [dict(v, name=k) for k, v in raw.items()]
    out = []
    for item in raw or []:
        passed = item.get("passed", item.get("pass"))
        name = str(item.get("name", ""))
        out.append(
            DiagnosticCheck(
                name=_schema_3_id(name) if version == 3 else name,
                label=str(item.get("label") or item.get("description") or item.get("name", "")),
                value=_num(item.get("value")),
                threshold=str(item.get("threshold", "")),
                passed=None if passed is None else bool(passed),
            )
        )
    return out


def _tables(data: dict[str, Any], results_dir: Path) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    listed = data.get("tables") or {}
    tables: dict[str, pd.DataFrame] = {}
    grains: dict[str, str] = {}
    for name in sorted(listed):
        if name not in TABLES:
            raise _fail(results_dir / "results.json", f"table {name!r} is not part of results schema {RESULTS_SCHEMA_VERSION}")
        if name == "estimates":
            continue  # read from results.json itself
        entry = listed[name]
        file = (entry or {}).get("file") or f"{name}.parquet"
        path = results_dir / file
        if not path.exists():
            raise _fail(path, f"table {name!r} is listed in results.json but its file is missing")
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise _fail(path, f"cannot read table {name!r} ({type(exc).__name__}: {exc})") from None
        try:
            tables[name] = TABLES[name].conform(frame, str(path))
        except IpmError as exc:
            raise _fail(path, str(exc).split(": ", 1)[1]) from None
        grains[name] = TABLES[name].grain
    return tables, grains


def _plan(data: dict[str, Any], path: Path) -> list[AnalysisItem]:
    plan = []
    for i, raw in enumerate(data.get("plan") or []):
        try:
            plan.append(AnalysisItem.from_dict(raw))
        except (KeyError, TypeError, ValueError, IndexError):
            raise _fail(path, f"plan entry {i} is not an analysis item (id, method, outcome, population, role, label)") from None
    ids = [item.id for item in plan]
    if len(set(ids)) != len(ids):
        raise _fail(path, "the plan lists an analysis id twice")
    return plan


def validate_results(data: dict[str, Any], path: Path) -> None:
    """Check a results.json document against the results data model (used when it is written and when it
    is read); raises a one-line :class:`IpmError` naming the file and the first problem."""
    _check_schema_version(data, path)
    required = ("study", "cohort", "estimates", "plan", "tables", "primary_horizon_days")
    for key, kind in (("study", str), ("cohort", dict), ("estimates", list), ("plan", list), ("tables", dict),
                      ("primary_horizon_days", int), ("grace_period_days", int), ("min_cell_size", int)):
        if key not in data:
            if key in required:
                raise _fail(path, f"missing key {key!r}")
            continue  # read from the spec the results carry
        if not isinstance(data[key], kind) or isinstance(data[key], bool):
            raise _fail(path, f"{key!r} is not a {kind.__name__}")
    plan = _plan(data, path)
    rows = data["estimates"]
    if rows and not all(isinstance(r, dict) for r in rows):
        raise _fail(path, "an estimate is not an object")
    frame = pd.DataFrame(rows, columns=ESTIMATE_COLUMNS) if not rows else pd.DataFrame(rows)
    try:
        TABLES["estimates"].conform(frame, str(path))
    except IpmError as exc:
        raise _fail(path, str(exc).split(": ", 1)[1].replace("table 'estimates'", "estimates")) from None
    unknown = sorted(set(frame["analysis"]) - {item.id for item in plan}) if len(frame) else []
    if unknown:
        raise _fail(path, f"estimates of analysis {unknown[0]!r}, which the plan does not list")


def load_results(results_dir: str | Path) -> ReportData:
    """Read ``results_dir/results.json`` and the result tables it names.

    Parameters
    ----------
    results_dir
        The folder written by ``ipm-outcomes analyze --out DIR``.

    Returns
    -------
    ReportData
        The typed view; ``estimates`` has one row per estimate (columns :data:`ESTIMATE_COLUMNS`).

    Raises
    ------
    IpmError
        One line naming the file and what is missing when the directory is not a complete results folder.
    """
    results_dir = Path(results_dir)
    if results_dir.name == "results.json" and results_dir.is_file():
        results_dir = results_dir.parent  # `--results DIR/results.json` names the folder's file: read the folder
    path = results_dir / "results.json"
    data = _read_json(path)
    validate_results(data, path)
    spec = _load_spec(data, results_dir)
    cohort_raw = data["cohort"] or {}
    try:
        n = int(cohort_raw.get("n", 0))
        n_early = int(cohort_raw.get("n_early", 0))
        n_delayed = int(cohort_raw.get("n_delayed", n - n_early))
        n_rtw = int(cohort_raw.get("n_rtw_population", 0))
    except (TypeError, ValueError):
        raise _fail(path, "cohort counts are not whole numbers") from None
    cohort = CohortCounts(n=n, n_early=n_early, n_delayed=n_delayed, n_rtw_population=n_rtw)

    estimates = TABLES["estimates"].conform(pd.DataFrame(data["estimates"], columns=ESTIMATE_COLUMNS), str(path))
    estimates["arm"] = estimates["arm"].where(estimates["arm"].notna(), None)
    for column in ("horizon_days", "estimate", "ci_low", "ci_high", "n"):
        estimates[column] = pd.to_numeric(estimates[column], errors="coerce")

    diagnostics = data.get("diagnostics") or {}
    version = data.get("schema_version", 1)
    tables, grains = _tables(data, results_dir)
    if version == 3:
        for name in ("balance", "diagnostics"):
            if name in tables and "analysis" in tables[name].columns:
                tables[name]["analysis"] = tables[name]["analysis"].replace(_SCHEMA_3_ANALYSIS_IDS)
    report_spec = spec.get("report", {}) if isinstance(spec.get("report"), dict) else {}
    min_cell = data.get("min_cell_size", report_spec.get("min_cell_size", 11))
    analysis = spec.get("analysis", {}) if isinstance(spec.get("analysis"), dict) else {}
    horizons = [int(h) for h in analysis.get("horizons_days", [90, 180, 365])]
    primary_horizon = int(data["primary_horizon_days"])
    grace = int((spec.get("exposure") or {}).get("grace_period_days", data.get("grace_period_days", 42)))
    provenance = data.get("provenance") or {}
    study_section = spec.get("study", {}) if isinstance(spec.get("study"), dict) else {}
    return ReportData(
        results_dir=results_dir,
        study=str(data["study"]),
        title=str(data.get("title") or study_section.get("title") or data["study"]),
        description=str(study_section.get("description", "")),
        spec=spec,
        spec_sha256=str(data.get("spec_sha256", "")),
        data_sha256=str(data.get("data_sha256", "")),
        package_version=str(data.get("package_version", "")),
        generated_at=str(data.get("generated_at") or provenance.get("generated_at") or ""),
        seed=_int(data.get("seed", provenance.get("seed", study_section.get("seed")))),
        min_cell_size=int(min_cell),
        grace_period_days=grace,
        horizons=horizons,
        primary_horizon=primary_horizon,
        mcid={k: float(v) for k, v in (analysis.get("mcid") or {}).items()},
        attrition=_attrition(data.get("attrition"), path),
        cohort=cohort,
        plan=_plan(data, path),
        estimates=estimates,
        checks=_checks(diagnostics, version),
        diagnostics=diagnostics,
        tables=tables,
        table_grains=grains,
        unavailable={str(k): str(v) for k, v in (data.get("unavailable") or {}).items()},
        provenance=provenance,
        intervals={str(k): str(v) for k, v in (data.get("intervals") or {}).items()},
    )


def spec_as_toml(spec: dict[str, Any]) -> str:
    """The study spec as TOML text (for the methods appendix); tables after plain keys, nested by dots."""
    lines: list[str] = []

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(str(v))

    def emit(prefix: str, node: dict[str, Any]) -> None:
        plain = {k: v for k, v in node.items() if not isinstance(v, dict)}
        nested = {k: v for k, v in node.items() if isinstance(v, dict)}
        if prefix and plain:
            lines.append(f"[{prefix}]")
        for k, v in plain.items():
            lines.append(f"{k} = {value(v)}")
        if prefix and plain:
            lines.append("")
        for k, v in nested.items():
            emit(f"{prefix}.{k}" if prefix else k, v)

    emit("", spec)
    return "\n".join(lines).strip() + "\n"
