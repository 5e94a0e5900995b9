"""The study specification: one TOML file per study, validated by a pydantic model.

The spec holds the whole study design (value sets, cohort rules, exposure, covariates, outcomes,
analysis and report settings); nothing in the package carries a default of its own. The packaged
``studies/default.toml`` is the study the demo runs. A user's spec may start with
``extends = "default"`` (or a path to another spec) and override only what it changes.

Errors are one line naming the file, the key and the problem (:class:`~ipm_outcomes.errors.IpmError`).
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from .contract import CODE_SHAPES, ENCOUNTER_TYPES, WORK_STATUSES
from .errors import IpmError
from .marts import CHARLSON_COMPONENTS, COHORT_COLUMNS, PRO_INSTRUMENTS
from .vocabulary import REFERRAL_DEFINITIONS

#: The packaged study specs (``src/ipm_outcomes/studies/<name>.toml``).
DEFAULT_SPEC = "default"

#: Subgroups the analysis knows how to form from cohort columns.
SUBGROUPS = ("age_band", "sex", "payer_type", "radiculopathy", "baseline_severity")

WorkStatus = Literal[WORK_STATUSES]  # type: ignore[valid-type]
Instrument = Literal[PRO_INSTRUMENTS]  # type: ignore[valid-type]

_MAX_EXTENDS_DEPTH = 8


class _Section(BaseModel):
    """Base of every spec section: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


def _window(value: tuple[int, int], name: str) -> tuple[int, int]:
    if value[0] > value[1]:
        raise ValueError(f"{name} [{value[0]}, {value[1]}] starts after it ends; give [start, end] with start <= end")
    return value


def _increasing(values: list, name: str) -> list:
    if any(b <= a for a, b in zip(values, values[1:], strict=False)):
        raise ValueError(f"{name} must be strictly increasing, got {list(values)}")
    return values


class Study(_Section):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", description="Short name, used in output paths")
    title: str
    description: str
    seed: int = Field(ge=0, description="Seed of every random draw in the study")


class ValueSets(_Section):
    """Value-set name -> packaged value set name or path to a user CSV (relative to the spec file)."""

    lbp: str
    radiculopathy: str
    red_flags: str
    ipm_procedures: str
    ipm_taxonomies: str
    physical_therapy: str
    lumbar_imaging: str
    depression: str
    anxiety: str
    sleep_disorder: str
    lumbar_surgery: str
    negative_controls: str
    cci_mi: str
    cci_chf: str
    cci_pvd: str
    cci_cevd: str
    cci_dementia: str
    cci_copd: str
    cci_rheumatic: str
    cci_pud: str
    cci_mild_liver: str
    cci_diabetes: str
    cci_diabetes_complicated: str
    cci_hemiplegia: str
    cci_renal: str
    cci_cancer: str
    cci_severe_liver: str
    cci_metastatic: str
    cci_hiv: str


class Cohort(_Section):
    washout_days: int = Field(ge=1)
    baseline_enrollment_days: int = Field(ge=0)
    enrollment_gap_days: int = Field(ge=0)
    age_min: int = Field(ge=0, le=130)
    age_max: int = Field(ge=0, le=130)
    red_flag_lookback_days: int = Field(ge=0)
    ipm_washout_days: int = Field(ge=0)
    followup_days: int = Field(ge=1)
    data_end_date: dt.date | Literal["auto"]

    @model_validator(mode="after")
    def _ages(self) -> Cohort:
        if self.age_min > self.age_max:
            raise ValueError(
                f"age_min ({self.age_min}) is greater than age_max ({self.age_max}); no one could be eligible"
            )
        return self


class Exposure(_Section):
    grace_period_days: int
    delay_categories: list[int] = Field(min_length=1)

    @field_validator("grace_period_days")
    @classmethod
    def _grace(cls, value: int) -> int:
        if value <= 0:
            raise ValueError(f"must be at least 1 day, got {value}")
        return value

    @field_validator("delay_categories")
    @classmethod
    def _cuts(cls, value: list[int]) -> list[int]:
        if value[0] < 0:
            raise ValueError(f"delay category bounds must be >= 0, got {value}")
        return _increasing(value, "delay_categories")


class CharlsonWeights(_Section):
    cci_mi: int = Field(ge=0)
    cci_chf: int = Field(ge=0)
    cci_pvd: int = Field(ge=0)
    cci_cevd: int = Field(ge=0)
    cci_dementia: int = Field(ge=0)
    cci_copd: int = Field(ge=0)
    cci_rheumatic: int = Field(ge=0)
    cci_pud: int = Field(ge=0)
    cci_mild_liver: int = Field(ge=0)
    cci_diabetes: int = Field(ge=0)
    cci_diabetes_complicated: int = Field(ge=0)
    cci_hemiplegia: int = Field(ge=0)
    cci_renal: int = Field(ge=0)
    cci_cancer: int = Field(ge=0)
    cci_severe_liver: int = Field(ge=0)
    cci_metastatic: int = Field(ge=0)
    cci_hiv: int = Field(ge=0)


class Covariates(_Section):
    baseline_days: int = Field(ge=0)
    opioid_lookback_days: int = Field(ge=1)
    charlson_weights: CharlsonWeights
    charlson_hierarchy: dict[str, str]

    @field_validator("charlson_hierarchy")
    @classmethod
    def _hierarchy(cls, value: dict[str, str]) -> dict[str, str]:
        for lower, upper in value.items():
            for name in (lower, upper):
                if name not in CHARLSON_COMPONENTS:
                    raise ValueError(
                        f"{name!r} is not a Charlson component; use one of {', '.join(CHARLSON_COMPONENTS)}"
                    )
            if lower == upper:
                raise ValueError(f"{lower!r} cannot be superseded by itself")
        return value


class RtwOutcome(_Section):
    population_window_days: tuple[int, int]
    population_statuses: list[WorkStatus] = Field(min_length=1)
    event_statuses: list[WorkStatus] = Field(min_length=1)
    competing_statuses: list[WorkStatus]
    death_is_competing: bool

    @field_validator("population_window_days")
    @classmethod
    def _window(cls, value: tuple[int, int]) -> tuple[int, int]:
        return _window(value, "population_window_days")

    @model_validator(mode="after")
    def _disjoint(self) -> RtwOutcome:
        groups = {
            "population_statuses": self.population_statuses,
            "event_statuses": self.event_statuses,
            "competing_statuses": self.competing_statuses,
        }
        seen: dict[str, str] = {}
        for group, statuses in groups.items():
            for status in statuses:
                if status in seen and seen[status] != group:
                    raise ValueError(
                        f"work status {status!r} is in both {seen[status]} and {group}; a status has one role"
                    )
                seen[status] = group
        return self


class QolOutcome(_Section):
    instruments: list[Instrument] = Field(min_length=1)
    baseline_window_days: tuple[int, int]
    horizons_days: list[int] = Field(min_length=1)
    horizon_window_days: int = Field(ge=0)

    @field_validator("baseline_window_days")
    @classmethod
    def _baseline(cls, value: tuple[int, int]) -> tuple[int, int]:
        # The baseline scores are confounders of the referral in every weighting model; a score from
        # after time zero can be the referral's own intake questionnaire (recorded for referred persons
        # only, and after the decision it should explain), which biases the weights (issue 19).
        if value[1] > 0:
            raise ValueError(
                f"baseline_window_days {list(value)} ends after index: a baseline score must be measured on or "
                "before the index day (time zero), or an early referral's own intake scores replace the ones "
                "the referral was decided on; end the window at 0 or earlier"
            )
        return _window(value, "baseline_window_days")

    @field_validator("horizons_days")
    @classmethod
    def _horizons(cls, value: list[int]) -> list[int]:
        if value[0] <= 0:
            raise ValueError(f"horizons must be after index (> 0 days), got {value}")
        return _increasing(value, "horizons_days")

    @model_validator(mode="after")
    def _windows(self) -> QolOutcome:
        w = self.horizon_window_days
        first = self.horizons_days[0]
        if first - w <= self.baseline_window_days[1]:
            raise ValueError(
                f"the first follow-up window ({first} +- {w} days) overlaps the baseline window "
                f"{list(self.baseline_window_days)}; one assessment would count as both baseline and follow-up"
            )
        for a, b in zip(self.horizons_days, self.horizons_days[1:], strict=False):
            if a + w >= b - w:
                raise ValueError(
                    f"follow-up windows {a} +- {w} and {b} +- {w} days overlap; narrow horizon_window_days"
                )
        return self


def _valueset_list(value: list[str], name: str) -> list[str]:
    if len(set(value)) != len(value):
        raise ValueError(f"{name} lists a value set twice: {value}")
    return value


class NewDiagnosisOutcome(_Section):
    """A first diagnosis after index among persons without one in the baseline window ("new")."""

    diagnosis_valuesets: list[str] = Field(min_length=1)
    new_lookback_days: int = Field(ge=0)

    @field_validator("diagnosis_valuesets")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return _valueset_list(value, "diagnosis_valuesets")


class LongTermOpioidOutcome(_Section):
    """Long-term opioid therapy: days_supply or more days supplied within window_days."""

    days_supply: int = Field(ge=1)
    window_days: int = Field(ge=1)
    naive_lookback_days: int = Field(ge=1)


class ProcedureOutcome(_Section):
    procedure_valuesets: list[str] = Field(min_length=1)

    @field_validator("procedure_valuesets")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return _valueset_list(value, "procedure_valuesets")


class EdVisitOutcome(_Section):
    diagnosis_valuesets: list[str] = Field(min_length=1)
    places_of_service: list[str] = Field(min_length=1)
    encounter_types: list[Literal[ENCOUNTER_TYPES]]  # type: ignore[valid-type]

    @field_validator("places_of_service")
    @classmethod
    def _pos(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not re.fullmatch(CODE_SHAPES["pos"], v)]
        if bad:
            raise ValueError(f"{bad} are not CMS place-of-service codes (two digits, e.g. \"23\")")
        return value


class CostOutcome(_Section):
    """Allowed amounts on days 0..cohort.followup_days: every claim, or the related ones only."""

    related_only: bool
    diagnosis_valuesets: list[str] = Field(default_factory=list)
    procedure_valuesets: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _related(self) -> CostOutcome:
        listed = self.diagnosis_valuesets or self.procedure_valuesets
        if self.related_only and not listed:
            raise ValueError("related_only = true needs diagnosis_valuesets or procedure_valuesets")
        if not self.related_only and listed:
            raise ValueError("value sets are given but related_only = false would count every claim")
        return self


class NegativeControlOutcomes(_Section):
    """Negative-control outcomes: one per ``group`` of the value set, each a "new" diagnosis."""

    valueset: str
    new_lookback_days: int = Field(ge=0)


#: Secondary time-to-event outcomes (the ``[outcomes.<name>]`` keys) and their kind in ``ref.event_outcome``.
EVENT_OUTCOMES: dict[str, str] = {
    "new_depression_anxiety": "diagnosis",
    "new_sleep_disorder": "diagnosis",
    "long_term_opioid": "opioid",
    "lumbar_surgery": "procedure",
    "ed_visit_lbp": "ed_visit",
}
#: Secondary cost outcomes (``[outcomes.<name>]`` keys).
COST_OUTCOMES: tuple[str, ...] = ("cost_total_365", "cost_lbp_365")


class Outcomes(_Section):
    rtw: RtwOutcome
    qol: QolOutcome
    new_depression_anxiety: NewDiagnosisOutcome
    new_sleep_disorder: NewDiagnosisOutcome
    long_term_opioid: LongTermOpioidOutcome
    lumbar_surgery: ProcedureOutcome
    ed_visit_lbp: EdVisitOutcome
    cost_total_365: CostOutcome
    cost_lbp_365: CostOutcome
    negative_controls: NegativeControlOutcomes

    def valueset_references(self) -> list[tuple[str, str]]:
        """(key, value-set name) for every value set an outcome names, for checking against [valuesets]."""
        refs: list[tuple[str, str]] = []
        for name in (*EVENT_OUTCOMES, *COST_OUTCOMES):
            section = getattr(self, name)
            for field_name in ("diagnosis_valuesets", "procedure_valuesets"):
                refs += [(f"outcomes.{name}.{field_name}", v) for v in getattr(section, field_name, [])]
        refs.append(("outcomes.negative_controls.valueset", self.negative_controls.valueset))
        return refs


class Mcid(_Section):
    odi: float = Field(gt=0)
    nrs_pain: float = Field(gt=0)
    promis_pi: float = Field(gt=0)
    promis_pf: float = Field(gt=0)
    eq5d_index: float = Field(gt=0)


class Diagnostics(_Section):
    max_abs_smd: float = Field(gt=0)
    equipoise_bounds: tuple[float, float]
    min_equipoise_fraction: float = Field(ge=0, le=1)
    min_effective_sample_share: float = Field(gt=0, le=1)

    @field_validator("equipoise_bounds")
    @classmethod
    def _bounds(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0 <= value[0] < value[1] <= 1:
            raise ValueError(f"need 0 <= low < high <= 1, got {list(value)}")
        return value


class Analysis(_Section):
    bootstrap_replicates: int = Field(ge=0)
    ci_level: float = Field(gt=0, lt=1)
    weight_truncation_percentiles: tuple[float, float]
    model_l2_penalty: float = Field(ge=0)
    sensitivity_grace_periods: list[int] = Field(min_length=1)
    sensitivity_referral_definitions: list[Literal[tuple(REFERRAL_DEFINITIONS)]]  # type: ignore[valid-type]
    landmark_day: int | Literal["grace_period"]
    horizons_days: list[int] = Field(min_length=1)
    primary_horizon_days: int
    subgroups: list[Literal[SUBGROUPS]]  # type: ignore[valid-type]
    age_band_edges: list[int] = Field(min_length=2)
    severity_instrument: Instrument
    severity_threshold: float
    covariates: list[str] = Field(min_length=1)
    mcid: Mcid
    diagnostics: Diagnostics

    @field_validator("weight_truncation_percentiles")
    @classmethod
    def _truncation(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0 <= value[0] < value[1] <= 100:
            raise ValueError(f"need 0 <= low < high <= 100, got {list(value)}")
        return value

    @field_validator("sensitivity_grace_periods", "horizons_days")
    @classmethod
    def _positive_increasing(cls, value: list[int], info) -> list[int]:
        if value[0] <= 0:
            raise ValueError(f"must be > 0 days, got {value}")
        return _increasing(value, info.field_name)

    @model_validator(mode="after")
    def _primary_horizon(self) -> Analysis:
        if self.primary_horizon_days not in self.horizons_days:
            raise ValueError(
                f"primary_horizon_days ({self.primary_horizon_days}) is not one of horizons_days {self.horizons_days}"
            )
        if len(set(self.sensitivity_referral_definitions)) != len(self.sensitivity_referral_definitions):
            raise ValueError("sensitivity_referral_definitions lists a definition twice")
        return self

    @field_validator("age_band_edges")
    @classmethod
    def _edges(cls, value: list[int]) -> list[int]:
        return _increasing(value, "age_band_edges")

    @field_validator("landmark_day")
    @classmethod
    def _landmark(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value <= 0:
            raise ValueError(f'must be > 0 days (or "grace_period"), got {value}')
        return value

    @field_validator("covariates")
    @classmethod
    def _covariates(cls, value: list[str]) -> list[str]:
        unknown = [c for c in value if c not in COHORT_COLUMNS]
        if unknown:
            raise ValueError(
                f"{', '.join(map(repr, unknown))} not columns of marts.cohort; choose from {', '.join(COHORT_COLUMNS)}"
            )
        if len(set(value)) != len(value):
            raise ValueError("lists a column twice")
        return value


class Report(_Section):
    min_cell_size: int = Field(ge=1)


class StudySpec(_Section):
    """A validated study specification (see ``studies/default.toml`` for the meaning of each key)."""

    study: Study
    valuesets: ValueSets
    cohort: Cohort
    exposure: Exposure
    covariates: Covariates
    outcomes: Outcomes
    analysis: Analysis
    report: Report

    _source: Path | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _cross_section(self) -> StudySpec:
        follow = self.cohort.followup_days
        grace = self.exposure.grace_period_days
        if grace >= follow:
            raise ValueError(
                f"exposure.grace_period_days ({grace}) must be shorter than cohort.followup_days ({follow})"
            )
        checks = [
            ("outcomes.qol.horizons_days", self.outcomes.qol.horizons_days),
            ("analysis.horizons_days", self.analysis.horizons_days),
            ("analysis.sensitivity_grace_periods", self.analysis.sensitivity_grace_periods),
        ]
        for name, values in checks:
            beyond = [v for v in values if v > follow]
            if beyond:
                raise ValueError(
                    f"{name} {beyond} lie beyond cohort.followup_days ({follow}); follow-up ends before them"
                )
        if self.landmark_day >= follow:
            raise ValueError(
                f"analysis.landmark_day ({self.landmark_day}) must be before cohort.followup_days ({follow})"
            )
        known = list(type(self.valuesets).model_fields)
        for key, name in self.outcomes.valueset_references():
            if name not in known:
                raise ValueError(f"{key}: {name!r} is not a value set of [valuesets]; choose from {', '.join(known)}")
        if max(self.exposure.delay_categories) >= follow:
            raise ValueError(
                f"exposure.delay_categories {self.exposure.delay_categories} reach cohort.followup_days ({follow}); "
                "the last band would be empty"
            )
        return self

    # -- derived values -------------------------------------------------------------------------

    @property
    def source_path(self) -> Path | None:
        """The TOML file this spec was loaded from (None when built in code)."""
        return self._source

    @property
    def landmark_day(self) -> int:
        """Landmark day of the landmark analysis: ``analysis.landmark_day``, or the grace period."""
        value = self.analysis.landmark_day
        return self.exposure.grace_period_days if value == "grace_period" else int(value)

    def delay_categories(self) -> list[tuple[str, int, int | None]]:
        """Referral-delay bands as (label, first day, last day or None) in order, then ('never', -1, None).

        With bounds [14, 42, 90, 180]: 0-14, 15-42, 43-90, 91-180, >180, never.
        """
        cuts = self.exposure.delay_categories
        bands: list[tuple[str, int, int | None]] = []
        lower = 0
        for cut in cuts:
            bands.append((f"{lower}-{cut}", lower, cut))
            lower = cut + 1
        bands.append((f">{cuts[-1]}", lower, None))
        bands.append(("never", -1, None))
        return bands

    def sql_params(self) -> dict[str, object]:
        """The bound parameters (``$name``) of the cohort SQL, from this spec.

        Lists (value sets, horizons, delay bands, work-status roles, Charlson weights) are loaded as
        reference tables instead, so the SQL stays plain and portable.
        """
        c, cov, rtw, qol = self.cohort, self.covariates, self.outcomes.rtw, self.outcomes.qol
        return {
            "washout_days": c.washout_days,
            "baseline_enrollment_days": c.baseline_enrollment_days,
            "enrollment_gap_days": c.enrollment_gap_days,
            "age_min": c.age_min,
            "age_max": c.age_max,
            "red_flag_lookback_days": c.red_flag_lookback_days,
            "ipm_washout_days": c.ipm_washout_days,
            "followup_days": c.followup_days,
            "data_end_date": None if c.data_end_date == "auto" else c.data_end_date,
            "grace_period_days": self.exposure.grace_period_days,
            "baseline_days": cov.baseline_days,
            "opioid_lookback_days": cov.opioid_lookback_days,
            "pro_baseline_start": qol.baseline_window_days[0],
            "pro_baseline_end": qol.baseline_window_days[1],
            "qol_window_days": qol.horizon_window_days,
            "rtw_window_start": rtw.population_window_days[0],
            "rtw_window_end": rtw.population_window_days[1],
            "death_is_competing": rtw.death_is_competing,
            "ltot_days_supply": self.outcomes.long_term_opioid.days_supply,
            "ltot_window_days": self.outcomes.long_term_opioid.window_days,
            "opioid_naive_lookback_days": self.outcomes.long_term_opioid.naive_lookback_days,
        }

    def valueset_paths(self) -> dict[str, Path]:
        """Value-set name -> CSV file: packaged files by name, user files relative to the spec's folder."""
        from .valuesets import resolve_valueset

        base = self._source.parent if self._source is not None else Path.cwd()
        return {name: resolve_valueset(name, ref, base, spec_file=self._source) for name, ref in self.valuesets}

    def to_toml_dict(self) -> dict[str, Any]:
        """The spec as plain data (dates as ISO strings), for provenance and results.json."""
        return self.model_dump(mode="json")


# -- loading ------------------------------------------------------------------------------------


def packaged_spec_path(name: str = DEFAULT_SPEC) -> Path:
    """Path of a packaged study spec (``studies/<name>.toml``)."""
    folder = resources.files("ipm_outcomes") / "studies"
    candidate = folder / f"{name}.toml"
    if not candidate.is_file():
        known = sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))
        raise IpmError(f"no packaged study spec named {name!r}; packaged specs: {', '.join(known)}")
    return Path(str(candidate))


def load_spec(path: str | Path | None = None) -> StudySpec:
    """Read and validate a study spec; ``None`` loads the packaged default.

    Raises :class:`IpmError` with one line naming the file, the key and the problem.
    """
    spec_path = packaged_spec_path() if path is None else Path(path)
    data = _read_with_extends(spec_path, depth=0)
    return spec_from_dict(data, source=spec_path)


def spec_from_dict(data: dict[str, Any], source: str | Path | None = None) -> StudySpec:
    """Validate plain data (as parsed from TOML) into a :class:`StudySpec`.

    ``source`` is the file the data came from: it is named in errors and relative value-set paths are
    read from its folder.
    """
    where = str(source) if source is not None else "study spec"
    try:
        spec = StudySpec.model_validate(data)
    except ValidationError as exc:
        raise IpmError(f"{where}: {_describe_errors(exc)}") from None
    spec._source = Path(source).resolve() if source is not None else None
    return spec


def spec_sha256(spec: StudySpec) -> str:
    """Content fingerprint of a study: the validated spec plus the bytes of every value set it names.

    Value sets enter by content, not by path, so the same study gives the same hash on any machine.
    """
    from .fingerprint import sha256_file, sha256_json

    data = spec.to_toml_dict()
    data["valuesets"] = {name: sha256_file(path) for name, path in sorted(spec.valueset_paths().items())}
    return sha256_json(data)


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise IpmError(f"{path}: no such study spec file; give an existing .toml file (or omit --spec for the default)")
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise IpmError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise IpmError(f"{path}: not UTF-8 text: {exc}") from None


def _read_with_extends(path: Path, depth: int) -> dict[str, Any]:
    if depth > _MAX_EXTENDS_DEPTH:
        raise IpmError(f"{path}: 'extends' chain is deeper than {_MAX_EXTENDS_DEPTH} files (a cycle?)")
    data = _read_toml(path)
    _absolutise_valuesets(data, path)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise IpmError(f"{path}: extends: expected the name of a packaged spec or a path, got {parent!r}")
    parent_path = packaged_spec_path(parent) if _is_name(parent) else (path.parent / parent)
    base = _read_with_extends(parent_path, depth + 1)
    return _merge(base, data)


def _is_name(ref: str) -> bool:
    return "/" not in ref and "\\" not in ref and not ref.lower().endswith((".toml", ".csv"))


def _absolutise_valuesets(data: dict[str, Any], path: Path) -> None:
    """Relative value-set paths are relative to the file that names them, also through ``extends``."""
    section = data.get("valuesets")
    if not isinstance(section, dict):
        return
    for name, ref in section.items():
        if isinstance(ref, str) and not _is_name(ref) and not Path(ref).is_absolute():
            section[name] = str((path.parent / ref).resolve())


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _model_at(loc: tuple) -> type[BaseModel] | None:
    """The section model a validation-error location points into (for 'did you mean')."""
    model: Any = StudySpec
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            return None
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        else:
            return None
    return model


def _clean_loc(loc: tuple) -> tuple:
    """Drop the union-member tags pydantic adds to a location (``date``, ``literal['auto']``, ``int``)."""
    cleaned: list = []
    model: Any = StudySpec
    for part in loc:
        if isinstance(part, int):
            cleaned.append(part)
            continue
        fields = getattr(model, "model_fields", None)
        if fields is None or part not in fields:
            if fields is None and cleaned and not isinstance(cleaned[-1], int):
                continue  # a union tag under a plain field
            if fields is not None:
                cleaned.append(part)  # an unknown key: keep it so the message can name it
            continue
        cleaned.append(part)
        annotation = fields[part].annotation
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return tuple(cleaned)


def _key(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _describe_errors(exc: ValidationError) -> str:
    problems: list[str] = []
    unions: dict[str, list[str]] = {}
    for error in exc.errors(include_url=False):
        loc = _clean_loc(tuple(error["loc"]))
        key = _key(loc)
        kind = error["type"]
        if kind == "extra_forbidden":
            parent = _model_at(loc[:-1])
            hint = ""
            if parent is not None:
                close = difflib.get_close_matches(str(loc[-1]), list(parent.model_fields), n=1)
                if close:
                    hint = f" (did you mean {_key(loc[:-1] + (close[0],))}?)"
                else:
                    hint = f"; allowed keys here: {', '.join(parent.model_fields)}"
            problems.append(f"unknown key {key}{hint}")
        elif kind == "missing":
            problems.append(f"missing key {key}")
        elif kind in ("value_error", "assertion_error"):
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{key}: {message}" if loc else message)
        else:
            text = f"{error['msg'].lower()}"
            if key in unions:
                unions[key].append(text)
                continue
            unions[key] = [text]
            problems.append((key, error.get("input")))  # type: ignore[arg-type]
    lines = []
    for problem in problems:
        if isinstance(problem, tuple):
            key, value = problem
            lines.append(f"{key}: {' or '.join(unions[key])} (got {value!r})")
        else:
            lines.append(problem)
    return "; ".join(lines)
