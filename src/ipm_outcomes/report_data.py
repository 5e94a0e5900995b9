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

import pandas as pd

from .errors import IpmError

#: The version of the results layout (``results.json`` and its tables) that this package writes and
#: reads. Raise it whenever a key, a table or a meaning changes: a report must never be rendered from
#: results it would read differently. Results with no version are from before versions were kept (1).
RESULTS_SCHEMA_VERSION = 2

ESTIMATE_COLUMNS = ["outcome", "method", "measure", "arm", "horizon_days", "estimate", "ci_low", "ci_high", "n"]
#: Tables the report reads, if present (name -> columns it needs).
KNOWN_TABLES: dict[str, list[str]] = {
    "rtw_curves": ["method", "arm", "day", "estimate", "ci_low", "ci_high", "n_at_risk"],
    "table1": ["variable", "level", "statistic", "arm", "n", "denominator", "mean", "sd"],
    "smd": ["covariate", "smd_before", "smd_after"],
    "referral_timing": ["day", "n"],
    "delay_categories": ["delay_category", "n"],
    "dose_response": ["delay_category", "horizon_days", "estimate", "ci_low", "ci_high", "n"],
    "subgroups": ["subgroup", "level", "estimate", "ci_low", "ci_high", "n"],
    "sensitivity": ["analysis", "estimate", "ci_low", "ci_high", "n"],
    "qol_summary": ["instrument", "horizon_days", "arm", "n", "mean", "sd"],
    "overlap": ["arm", "preference_score"],
    "weights": ["arm", "weight"],
}


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

    ``tables`` maps a known table name (see :data:`KNOWN_TABLES`) to its DataFrame; a table the
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

    def estimate(
        self,
        outcome: str,
        method: str,
        measure: str,
        horizon_days: int | None = None,
        arm: str | None = None,
    ) -> Estimate | None:
        """The one estimate matching all keys (``horizon_days`` None matches a missing horizon), else None."""
        df = self.estimates
        if df.empty:
            return None
        mask = (df["outcome"] == outcome) & (df["method"] == method) & (df["measure"] == measure)
        mask &= df["arm"].isna() if arm is None else (df["arm"] == arm)
        if horizon_days is None:
            mask &= df["horizon_days"].isna()
        else:
            mask &= df["horizon_days"] == horizon_days
        rows = df[mask]
        if rows.empty:
            return None
        return _estimate_from_row(rows.iloc[0].to_dict())

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


def _estimate_from_row(row: dict) -> Estimate:
    arm = row.get("arm")
    if isinstance(arm, float) and math.isnan(arm):
        arm = None
    return Estimate(
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
    if version == RESULTS_SCHEMA_VERSION:
        return
    written_by = data.get("package_version") or "an older version"
    raise IpmError(
        f"{path}: results written by ipm-outcomes {written_by} in results schema {version}; this version "
        f"reads schema {RESULTS_SCHEMA_VERSION}: re-run `ipm-outcomes analyze --db DB --out {path.parent}`"
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


def _checks(diagnostics: dict[str, Any]) -> list[DiagnosticCheck]:
    raw = diagnostics.get("checks")
    if isinstance(raw, dict):  # {"balance": {...}, ...}
        raw = [dict(v, name=k) for k, v in raw.items()]
    out = []
    for item in raw or []:
        passed = item.get("passed", item.get("pass"))
        out.append(
            DiagnosticCheck(
                name=str(item.get("name", "")),
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
    names = set(KNOWN_TABLES) | set(listed)
    for name in sorted(names):
        entry = listed.get(name)
        if isinstance(entry, str):
            entry = {"file": entry}
        file = (entry or {}).get("file") or f"{name}.parquet"
        path = results_dir / file
        if not path.exists():
            if entry is not None:
                raise _fail(path, f"table {name!r} is listed in results.json but its file is missing")
            continue
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise _fail(path, f"cannot read table {name!r} ({type(exc).__name__}: {exc})") from None
        needed = KNOWN_TABLES.get(name, [])
        missing = [c for c in needed if c not in frame.columns]
        optional = {"level", "statistic", "denominator", "mean", "sd", "ci_low", "ci_high"}
        hard = [c for c in missing if c not in optional]
        if hard:
            raise _fail(path, f"table {name!r} lacks column(s) {', '.join(hard)}")
        for column in missing:
            frame[column] = None
        tables[name] = frame
        grains[name] = str((entry or {}).get("grain", ""))
    return tables, grains


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
    _check_schema_version(data, path)
    for key in ("study", "cohort", "estimates"):
        if key not in data:
            raise _fail(path, f"missing key {key!r}")
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

    estimates = pd.DataFrame(data.get("estimates") or [], columns=None)
    for column in ESTIMATE_COLUMNS:
        if column not in estimates.columns:
            estimates[column] = None
    estimates = estimates[ESTIMATE_COLUMNS].copy()
    estimates["arm"] = estimates["arm"].where(estimates["arm"].notna(), None)
    for column in ("horizon_days", "estimate", "ci_low", "ci_high", "n"):
        estimates[column] = pd.to_numeric(estimates[column], errors="coerce")

    diagnostics = data.get("diagnostics") or {}
    tables, grains = _tables(data, results_dir)
    report_spec = spec.get("report", {}) if isinstance(spec.get("report"), dict) else {}
    min_cell = data.get("min_cell_size", report_spec.get("min_cell_size", 11))
    analysis = spec.get("analysis", {}) if isinstance(spec.get("analysis"), dict) else {}
    horizons = [int(h) for h in analysis.get("horizons_days", [90, 180, 365])]
    primary_horizon = int(data.get("primary_horizon_days", 180 if 180 in horizons else horizons[len(horizons) // 2]))
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
        estimates=estimates,
        checks=_checks(diagnostics),
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
