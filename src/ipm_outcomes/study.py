"""Where a study run puts its outputs, and the content keys that decide which stages must re-run.

The Prefect flows in ``pipelines/`` call these; keeping them here means the caching rules are
plain functions, tested without Prefect.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__
from .fingerprint import combine, sha256_file, sha256_json, sha256_tree

if TYPE_CHECKING:
    from .spec import StudySpec

#: The pipeline's stages in order; each reads the outputs of the one before it.
STAGES = ("ingest", "build_cohort", "analyze", "report")

#: The spec sections each stage reads itself. A stage's outputs depend on its own sections and on
#: every section an earlier stage read, so changing a report setting re-renders the report only and
#: changing a cohort rule rebuilds the cohort and everything after it. This one declaration gives
#: both ``run``'s cache keys and the checks a stage makes before it trusts an earlier stage's outputs
#: (:mod:`ipm_outcomes.lineage`); every section of the spec is listed under exactly one stage.
STAGE_SECTIONS: dict[str, tuple[str, ...]] = {
    "ingest": (),
    "build_cohort": ("valuesets", "cohort", "exposure", "covariates", "outcomes"),
    "analyze": ("study", "analysis"),
    "report": ("report",),
}


def sections_through(stage: str) -> tuple[str, ...]:
    """The spec sections that ``stage`` and every stage before it read."""
    if stage not in STAGE_SECTIONS:
        raise ValueError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")
    upto = STAGES[: STAGES.index(stage) + 1]
    return tuple(section for name in upto for section in STAGE_SECTIONS[name])


def stage_spec(spec: StudySpec, stage: str) -> dict:
    """The part of the spec whose change must rebuild ``stage``'s outputs, as plain data.

    The sections read by the stage and by every stage before it, with each value set entered by
    the sha256 of its file's bytes instead of its path: the same study gives the same data on any
    machine, and an edited code list counts as a change.
    """
    data = spec.to_toml_dict()
    selected = {name: data[name] for name in sections_through(stage)}
    if "valuesets" in selected:
        selected["valuesets"] = {name: sha256_file(path) for name, path in sorted(spec.valueset_paths().items())}
    return selected


@dataclass(frozen=True)
class StudyPaths:
    """The folders and files of one study run under an output root (the DAG's layers)."""

    root: Path
    study: str

    @property
    def synthetic_extract_dir(self) -> Path:
        return self.root / "data" / "raw" / "synthetic"

    @property
    def db_path(self) -> Path:
        return self.root / "data" / "interim" / f"{self.study}.duckdb"

    @property
    def marts_dir(self) -> Path:
        return self.root / "data" / "processed" / self.study / "marts"

    @property
    def results_dir(self) -> Path:
        return self.root / "data" / "processed" / self.study / "results"

    @property
    def report_dir(self) -> Path:
        return self.root / "reports" / self.study

    @property
    def stage_record(self) -> Path:
        """Which content key produced each stage's outputs now on disk."""
        return self.root / "data" / "interim" / f"{self.study}.stages.json"

    def make_dirs(self) -> None:
        for folder in (self.db_path.parent, self.marts_dir, self.results_dir, self.report_dir):
            folder.mkdir(parents=True, exist_ok=True)


@dataclass(frozen=True)
class StageKeys:
    """One content key per stage; a stage's key covers everything upstream of it."""

    ingest: str
    build_cohort: str
    analyze: str
    report: str


def templates_fingerprint() -> str:
    """sha256 over the packaged report templates (so a template edit re-renders the report only)."""
    folder = resources.files("ipm_outcomes") / "templates"
    return sha256_tree(Path(str(folder)))


def stage_keys(
    spec: StudySpec, extract_dir: Path | None, package_version: str = __version__, ingest_key: str | None = None
) -> StageKeys:
    """Content keys for each stage of a study run.

    Parameters
    ----------
    spec
        The validated study spec; each stage's key covers the sections it reads
        (:data:`STAGE_SECTIONS`), value sets by content.
    extract_dir
        The extract folder; every file's bytes enter the ingest key.
    package_version
        The installed package version; a new version re-runs everything.
    ingest_key
        The key of raw tables that were not loaded from ``extract_dir`` (a Spark source).
    """
    source = ingest_key if ingest_key is not None else sha256_tree(extract_dir)
    ingest = combine("ingest", package_version, source)
    cohort = combine("cohort", ingest, sha256_json(stage_spec(spec, "build_cohort")))
    analyze = combine("analyze", cohort, sha256_json(stage_spec(spec, "analyze")))
    report = combine("report", analyze, sha256_json(stage_spec(spec, "report")), templates_fingerprint())
    return StageKeys(ingest=ingest, build_cohort=cohort, analyze=analyze, report=report)


def outputs_present(paths: StudyPaths) -> dict[str, bool]:
    """Whether each stage's outputs are on disk: a cached stage whose outputs were deleted must re-run."""
    return {
        "ingest": paths.db_path.exists(),
        # a DuckDB build writes <mart>.parquet files, a Spark build <mart>/ folders of parts
        "build_cohort": paths.marts_dir.is_dir() and any(paths.marts_dir.glob("**/*.parquet")),
        "analyze": (paths.results_dir / "results.json").exists(),
        "report": any(paths.report_dir.glob("*.html")),
    }


def _recorded_keys(paths: StudyPaths) -> dict[str, str]:
    return json.loads(paths.stage_record.read_text()) if paths.stage_record.exists() else {}


def record_stage(paths: StudyPaths, stage: str, key: str) -> None:
    """Note that the outputs of ``stage`` on disk were produced under ``key``."""
    recorded = _recorded_keys(paths)
    recorded[stage] = key
    paths.stage_record.parent.mkdir(parents=True, exist_ok=True)
    paths.stage_record.write_text(json.dumps(recorded, indent=1, sort_keys=True))


def current_stages(paths: StudyPaths, keys: StageKeys) -> dict[str, bool]:
    """Whether each stage's outputs are on disk AND were produced under today's key.

    A cache hit only returns the stage's summary; the files must also be the ones that key made
    (after running spec A, then B, then A again, the report on disk is B's and must be re-rendered).
    """
    recorded = _recorded_keys(paths)
    present = outputs_present(paths)
    return {stage: present[stage] and recorded.get(stage) == key for stage, key in asdict(keys).items()}
