"""The study as Prefect flows: ``ingest`` -> ``build_cohort`` -> ``analyze`` -> ``report``, run in
order by the parent ``study`` flow.

Each task body is one call into the package. Caching is keyed on content (extract bytes, spec,
package version, templates) computed by :mod:`ipm_outcomes.study`; a stage whose outputs were
deleted, or whose upstream stage re-ran, runs again. Retries only on the tasks that read or write
files another process may hold (synthesize, ingest, report).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner

from ipm_outcomes import __version__, analysis, cohort, ingest, report, synth
from ipm_outcomes.estimators import bootstrap
from ipm_outcomes.errors import IpmError
from ipm_outcomes.spark_engine import SparkSource
from ipm_outcomes.spec import StudySpec, load_spec
from ipm_outcomes.fingerprint import combine, sha256_tree
from ipm_outcomes.study import StudyPaths, current_stages, record_stage, stage_keys


def task_runner(kind: str, address: str | None = None):
    """The task runner for bootstrap replicates: local processes (default) or threads, or a Dask or Ray
    cluster at ``address`` (``pip install 'ipm-outcomes[dask]'`` or ``[ray]``)."""
    if kind == "process":
        return ProcessPoolTaskRunner(max_workers=os.cpu_count())
    if kind == "thread":
        return ThreadPoolTaskRunner(max_workers=os.cpu_count())
    if kind in ("dask", "ray"):
        try:
            if kind == "dask":
                from prefect_dask import DaskTaskRunner as Runner
            else:
                from prefect_ray import RayTaskRunner as Runner
        except ImportError:
            raise IpmError(f"the {kind} task runner needs prefect-{kind}: pip install 'ipm-outcomes[{kind}]'") from None
        return Runner(address=address) if address else Runner()
    raise IpmError(f"unknown task runner {kind!r}; use process, thread, dask or ray")


def _by_key(context, parameters) -> str:
    return parameters["cache_key"]


@task(name="synthesize", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def synthesize_task(out_dir: Path, persons: int, seed: int):
    return synth.generate(out_dir, persons=persons, seed=seed, file_format="parquet")


@task(name="load_extract", cache_key_fn=_by_key, persist_result=True, retries=2, retry_delay_seconds=2)
def ingest_task(extract_dir: Path, db_path: Path, cache_key: str):
    return ingest.load_extract(extract_dir, db_path)


@task(name="build_marts", cache_key_fn=_by_key, persist_result=True)
def build_cohort_task(spec: StudySpec, db_path: Path, export_dir: Path, cache_key: str):
    return cohort.build(spec, db_path, export_dir=export_dir)


@task(name="build_marts_on_spark", cache_key_fn=_by_key, persist_result=True)
def build_cohort_on_spark_task(
    spec: StudySpec, spark_master: str, source: SparkSource, db_path: Path, export_dir: Path, cache_key: str
):
    from ipm_outcomes.spark_engine import build_on_spark, spark_session

    return build_on_spark(spec, spark_session(spark_master), source, db_path, export_dir=export_dir)


@task(name="bootstrap_chunk", cache_policy=NO_CACHE)
def bootstrap_chunk_task(run_chunk, chunk):
    return run_chunk(chunk)


def submit_to_task_runner(run_chunk, chunks) -> list:
    """Run bootstrap chunks as tasks on the flow's task runner (local processes, Dask or Ray)."""
    futures = [bootstrap_chunk_task.submit(run_chunk, chunk) for chunk in chunks]
    return [future.result() for future in futures]


@task(name="fit_models", cache_key_fn=_by_key, persist_result=True)
def analyze_task(spec: StudySpec, db_path: Path, results_dir: Path, cache_key: str):
    with bootstrap.chunk_mapper(submit_to_task_runner):
        return analysis.run(spec, db_path, results_dir)


@task(name="render_report", cache_key_fn=_by_key, persist_result=True, retries=2, retry_delay_seconds=2)
def report_task(results_dir: Path, report_dir: Path, min_cell_size: int, cache_key: str):
    return report.render(results_dir, report_dir, min_cell_size=min_cell_size)


@dataclass
class StageOutcome:
    """A stage's result and whether it came from the cache."""

    result: Any
    cached: bool


def _call(task_fn, refresh: bool, **kwargs) -> StageOutcome:
    state = task_fn.with_options(refresh_cache=refresh)(**kwargs, return_state=True)
    return StageOutcome(result=state.result(), cached=state.name == "Cached")  # result() raises the stage's error


@flow(name="ingest")
def ingest_flow(extract_dir: Path, db_path: Path, cache_key: str, refresh: bool = False) -> StageOutcome:
    """Validate an extract and load it into the study database (all or nothing)."""
    return _call(ingest_task, refresh, extract_dir=extract_dir, db_path=db_path, cache_key=cache_key)


@flow(name="build_cohort")
def build_cohort_flow(
    spec: StudySpec,
    db_path: Path,
    export_dir: Path,
    cache_key: str,
    refresh: bool = False,
    engine: str = "duckdb",
    spark_master: str = "local[2]",
    spark_source: SparkSource | None = None,
) -> StageOutcome:
    """Build the cohort marts and export them as parquet: in the study database (``engine="duckdb"``),
    or on Spark from ``spark_source``, with the marts brought back into the study database."""
    if engine == "spark":
        return _call(
            build_cohort_on_spark_task,
            refresh,
            spec=spec,
            spark_master=spark_master,
            source=spark_source,
            db_path=db_path,
            export_dir=export_dir,
            cache_key=cache_key,
        )
    return _call(build_cohort_task, refresh, spec=spec, db_path=db_path, export_dir=export_dir, cache_key=cache_key)


@flow(name="analyze", task_runner=task_runner("process"))
def analyze_flow(
    spec: StudySpec, db_path: Path, results_dir: Path, cache_key: str, refresh: bool = False
) -> StageOutcome:
    """Fit every method; write results.json and the result tables.

    Bootstrap replicates run as tasks on this flow's task runner (``with_options(task_runner=...)``).
    """
    return _call(analyze_task, refresh, spec=spec, db_path=db_path, results_dir=results_dir, cache_key=cache_key)


@flow(name="report")
def report_flow(
    results_dir: Path, report_dir: Path, min_cell_size: int, cache_key: str, refresh: bool = False
) -> StageOutcome:
    """Render the HTML/PDF report from the results only."""
    return _call(
        report_task,
        refresh,
        results_dir=results_dir,
        report_dir=report_dir,
        min_cell_size=min_cell_size,
        cache_key=cache_key,
    )


@dataclass
class StudyRun:
    """What a study run produced and which stages ran (the rest came from the cache)."""

    paths: StudyPaths
    stages_run: list[str] = field(default_factory=list)
    stages_cached: list[str] = field(default_factory=list)
    report_html: Path | None = None

    def record(self, stage: str, key: str, outcome: StageOutcome) -> bool:
        """Note how the stage went; True when it ran (so the stages after it must run too)."""
        (self.stages_cached if outcome.cached else self.stages_run).append(stage)
        record_stage(self.paths, stage, key)
        return not outcome.cached

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


@flow(name="study", log_prints=True)
def study_flow(
    spec: StudySpec | None = None,
    spec_file: Path | None = None,
    extract_dir: Path | None = None,
    out_dir: Path = Path("."),
    synthetic_persons: int = 20_000,
    refresh: bool = False,
    bootstrap_runner: str = "process",
    cluster_address: str | None = None,
    engine: str = "duckdb",
    spark_master: str = "local[2]",
    spark_source_schema: str | None = None,
    spark_source_path: Path | None = None,
) -> StudyRun:
    """Run the whole study; with no extract, on a synthetic one generated from the spec's seed.

    The spec is given either as a validated model (``spec``) or as a TOML file (``spec_file``, for
    deployments triggered with JSON parameters); with neither, the shipped default study runs.
    ``bootstrap_runner`` (process, thread, dask, ray) and ``cluster_address`` choose where the
    bootstrap replicates run. With ``engine="spark"`` the cohort is built on Spark (``spark_master``)
    from raw tables already there (``spark_source_schema``, or Parquet under ``spark_source_path``):
    no extract is loaded locally, and the analysis and report run locally on the marts it brings back.
    """
    if engine == "spark":
        return _spark_study(
            spec or load_spec(spec_file),
            Path(out_dir),
            SparkSource(schema=spark_source_schema, path=Path(spark_source_path) if spark_source_path else None),
            spark_master,
            refresh,
            analyze_flow.with_options(task_runner=task_runner(bootstrap_runner, cluster_address)),
        )
    if engine != "duckdb":
        raise IpmError(f"unknown engine {engine!r}; use duckdb or spark")
    analyze = analyze_flow.with_options(task_runner=task_runner(bootstrap_runner, cluster_address))
    if spec is None:
        spec = load_spec(spec_file)
    paths = StudyPaths(root=Path(out_dir), study=spec.study.name)
    paths.make_dirs()
    if extract_dir is None:
        extract_dir = paths.synthetic_extract_dir
        if refresh or not (extract_dir / "eligibility.parquet").exists():
            synthesize_task(extract_dir, synthetic_persons, spec.study.seed)
    keys = stage_keys(spec, Path(extract_dir), __version__)
    current = current_stages(paths, keys)
    run = StudyRun(paths=paths)

    # A stage re-runs when asked to, when its outputs are gone or were made under another key, or
    # when the stage before it ran.
    ran = run.record(
        "ingest",
        keys.ingest,
        ingest_flow(Path(extract_dir), paths.db_path, keys.ingest, refresh or not current["ingest"]),
    )
    ran = run.record(
        "build_cohort",
        keys.build_cohort,
        build_cohort_flow(spec, paths.db_path, paths.marts_dir, keys.build_cohort, refresh or ran or not current["build_cohort"]),
    )
    ran = run.record(
        "analyze",
        keys.analyze,
        analyze(spec, paths.db_path, paths.results_dir, keys.analyze, refresh or ran or not current["analyze"]),
    )
    outcome = report_flow(
        paths.results_dir,
        paths.report_dir,
        spec.report.min_cell_size,
        keys.report,
        refresh or ran or not current["report"],
    )
    run.record("report", keys.report, outcome)
    run.report_html = outcome.result.html
    return run


def _spark_study(
    spec: StudySpec, out_dir: Path, source: SparkSource, spark_master: str, refresh: bool, analyze
) -> StudyRun:
    """The study with its cohort built on Spark: build_cohort -> analyze -> report (nothing to ingest)."""
    paths = StudyPaths(root=out_dir, study=spec.study.name)
    paths.make_dirs()
    # A Parquet source is keyed by its bytes; a catalog schema's content cannot be fingerprinted from
    # here, so its cohort is rebuilt on every run.
    source_key = sha256_tree(source.path) if source.path is not None else None
    keys = stage_keys(spec, None, __version__, ingest_key=combine("spark", source.describe(), source_key or "always"))
    current = current_stages(paths, keys)
    run = StudyRun(paths=paths)
    ran = run.record(
        "build_cohort",
        keys.build_cohort,
        build_cohort_flow(
            spec,
            paths.db_path,
            paths.marts_dir,
            keys.build_cohort,
            refresh or source_key is None or not current["build_cohort"],
            engine="spark",
            spark_master=spark_master,
            spark_source=source,
        ),
    )
    ran = run.record(
        "analyze",
        keys.analyze,
        analyze(spec, paths.db_path, paths.results_dir, keys.analyze, refresh or ran or not current["analyze"]),
    )
    outcome = report_flow(
        paths.results_dir, paths.report_dir, spec.report.min_cell_size, keys.report, refresh or ran or not current["report"]
    )
    run.record("report", keys.report, outcome)
    run.report_html = outcome.result.html
    return run
