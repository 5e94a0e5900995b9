"""The study as Prefect flows: ingest -> build_cohort -> analyze -> report, and a parent ``study`` flow.

Each task body is one call into the package. Caching is keyed on content (extract bytes, spec,
package version, templates) computed by :mod:`ipm_outcomes.study`; a stage whose outputs were
deleted, or whose upstream stage re-ran, runs again. Retries only on the tasks that read or write
files that another process may hold (ingest, report).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from ipm_outcomes import __version__, analysis, cohort, ingest, report, synth
from ipm_outcomes.spec import StudySpec, load_spec
from ipm_outcomes.study import StudyPaths, outputs_present, stage_keys


def _by_key(context, parameters) -> str:
    return parameters["cache_key"]


@task(name="synthesize", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def synthesize_task(out_dir: Path, persons: int, seed: int):
    return synth.generate(out_dir, persons=persons, seed=seed, file_format="parquet")


@task(name="ingest", cache_key_fn=_by_key, persist_result=True, retries=2, retry_delay_seconds=2)
def ingest_task(extract_dir: Path, db_path: Path, cache_key: str):
    return ingest.load_extract(extract_dir, db_path)


@task(name="build_cohort", cache_key_fn=_by_key, persist_result=True)
def build_cohort_task(spec: StudySpec, db_path: Path, export_dir: Path, cache_key: str):
    return cohort.build(spec, db_path, export_dir=export_dir)


@task(name="analyze", cache_key_fn=_by_key, persist_result=True)
def analyze_task(spec: StudySpec, db_path: Path, results_dir: Path, cache_key: str):
    return analysis.run(spec, db_path, results_dir)


@task(name="report", cache_key_fn=_by_key, persist_result=True, retries=2, retry_delay_seconds=2)
def report_task(results_dir: Path, report_dir: Path, cache_key: str):
    return report.render(results_dir, report_dir)


@dataclass
class StudyRun:
    """What a study run produced and which stages ran (the rest came from the cache)."""

    paths: StudyPaths
    stages_run: list[str] = field(default_factory=list)
    stages_cached: list[str] = field(default_factory=list)
    report_html: Path | None = None

    def describe(self) -> str:
        lines = [
            f"study outputs under {self.paths.root.resolve()}",
            f"  database: {self.paths.db_path}",
            f"  results:  {self.paths.results_dir}",
            f"  report:   {self.report_html or self.paths.report_dir}",
            f"  stages run: {', '.join(self.stages_run) or 'none'}",
            f"  from cache: {', '.join(self.stages_cached) or 'none'}",
        ]
        return "\n".join(lines)


def _run_stage(stage: str, task_fn, refresh: bool, run: StudyRun, **kwargs):
    state = task_fn.with_options(refresh_cache=refresh)(**kwargs, return_state=True)
    result = state.result()  # raises the stage's own error, so the flow fails with its message
    (run.stages_cached if state.name == "Cached" else run.stages_run).append(stage)
    return result


@flow(name="study", log_prints=True)
def study_flow(
    spec: StudySpec | None = None,
    spec_file: Path | None = None,
    extract_dir: Path | None = None,
    out_dir: Path = Path("."),
    synthetic_persons: int = 20_000,
    refresh: bool = False,
) -> StudyRun:
    """Run the whole study; with no extract, on a synthetic one generated from the spec's seed.

    The spec is given either as a validated model (``spec``) or as a TOML file (``spec_file``, for
    deployments triggered with JSON parameters); with neither, the shipped default study runs.
    """
    if spec is None:
        spec = load_spec(spec_file)
    paths = StudyPaths(root=Path(out_dir), study=spec.study.name)
    paths.make_dirs()
    run = StudyRun(paths=paths)
    if extract_dir is None:
        extract_dir = paths.synthetic_extract_dir
        if refresh or not (extract_dir / "eligibility.parquet").exists():
            synthesize_task(extract_dir, synthetic_persons, spec.study.seed)
    keys = stage_keys(spec.model_dump(mode="json"), Path(extract_dir), __version__)
    present = outputs_present(paths)

    # A stage re-runs when asked to, when its outputs are gone, or when the stage before it re-ran.
    upstream_ran = refresh
    _run_stage("ingest", ingest_task, upstream_ran or not present["ingest"], run,
               extract_dir=Path(extract_dir), db_path=paths.db_path, cache_key=keys.ingest)
    upstream_ran = upstream_ran or "ingest" in run.stages_run
    _run_stage("build_cohort", build_cohort_task, upstream_ran or not present["cohort"], run,
               spec=spec, db_path=paths.db_path, export_dir=paths.marts_dir, cache_key=keys.cohort)
    upstream_ran = upstream_ran or "build_cohort" in run.stages_run
    _run_stage("analyze", analyze_task, upstream_ran or not present["analyze"], run,
               spec=spec, db_path=paths.db_path, results_dir=paths.results_dir, cache_key=keys.analyze)
    upstream_ran = upstream_ran or "analyze" in run.stages_run
    summary = _run_stage("report", report_task, upstream_ran or not present["report"], run,
                         results_dir=paths.results_dir, report_dir=paths.report_dir, cache_key=keys.report)
    run.report_html = getattr(summary, "html_path", None)
    return run
