"""The ``ipm-outcomes`` command line: thin wrappers over the package.

Errors the user can act on (:class:`IpmError`) print as one line and exit 1; ``--debug`` shows
the traceback instead.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from .errors import IpmError

app = typer.Typer(
    name="ipm-outcomes",
    help="Early referral to Interventional Pain Medicine: return to work and quality of life, from raw extract to report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)
out = Console()

_state = {"debug": False}
#: Metavar of on/off flags: typer's help would show them as "--debug <bool>", as if they took a value.
FLAG = ""

ShowSmallOption = Annotated[
    bool,
    typer.Option(
        "--show-small-counts",
        metavar=FLAG,
        help="Print counts of fewer than report.min_cell_size persons as they are (your own terminal only; "
        "never in logs or shared output).",
    ),
]


ReportOption = Annotated[
    Path | None, typer.Option("--report", help="Also write every problem found as JSON to this file.")
]
MemoryLimitOption = Annotated[
    str | None, typer.Option("--memory-limit", help="DuckDB memory limit, e.g. 4GB (default: 3GB or 80% of RAM).")
]
ThreadsOption = Annotated[int | None, typer.Option(help="DuckDB threads (default: all cores).")]
ReferenceDateOption = Annotated[
    str | None,
    typer.Option(
        "--reference-date",
        metavar="YYYY-MM-DD",
        help="The extract's dates are shifted (de-identification): check future dates and birth years "
        "against this day of the extract's own calendar instead of today.",
    ),
]


def _console_policy(show_small_counts: bool, spec=None):
    """The disclosure gate for what a command prints: the spec's threshold, or none when asked."""
    from .disclosure import DisclosurePolicy

    if show_small_counts:
        return None
    return DisclosurePolicy(spec.report.min_cell_size if spec is not None else DisclosurePolicy().min_cell_size)


@app.callback()
def main(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.", metavar=FLAG)] = False,
) -> None:
    _state["debug"] = debug


def say(text: str) -> None:
    """Print plain text: values from user data may contain brackets that rich would read as markup."""
    out.print(text, markup=False, highlight=False, soft_wrap=True)


def user_errors(command):
    """Turn :class:`IpmError` into one red line and exit code 1 (traceback only with --debug)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except IpmError as exc:
            if _state["debug"]:
                raise
            console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=1) from None

    return wrapper


@app.command()
@user_errors
def synth(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write the extract into (created).")],
    persons: Annotated[int, typer.Option(help="Number of persons.")] = 20_000,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives byte-identical files.")] = 20261128,
    file_format: Annotated[str, typer.Option("--format", help="csv or parquet.")] = "csv",
    effect_rtw_hr: Annotated[
        float, typer.Option(help="True hazard ratio of return to work after early IPM (1 = no effect).")
    ] = 1.5,
    effect_promis_pf: Annotated[
        float, typer.Option(help="True PROMIS physical-function gain (T-score points) from early IPM.")
    ] = 3.0,
    shift_years: Annotated[
        int,
        typer.Option(
            help="Shift every date by this many years (a fixed number of days), as a date-shifted "
            "de-identified extract; load it with `ingest --reference-date`."
        ),
    ] = 0,
    secondary_hr: Annotated[
        float | None,
        typer.Option(
            help="True hazard ratio of every secondary outcome (new depression/anxiety, new sleep disorder, "
            "long-term opioid therapy, lumbar surgery, ED visit for low back pain) after early IPM; 1 = no effect. "
            "Default: each outcome's own value (synth.SECONDARY_EFFECTS).",
        ),
    ] = None,
    cost_ratio: Annotated[
        float | None,
        typer.Option(
            help="Rate ratio of back-pain-related costs after early IPM (the referral also costs "
            "synth.COST_EFFECTS['referral_cost'] on its day); 1 = no effect on costs at all (nor a cost of the "
            "referral itself). Default: synth.COST_EFFECTS.",
        ),
    ] = None,
    real_referral: Annotated[
        bool,
        typer.Option(
            "--real-referral",
            help="Referral as real data show it (synth.EXTENDED): referral after return to work at 0.3x the rate, "
            "the rate halving after four months, a quarter of first contacts EHR-only, logistic-linear referral, "
            "more competing events and disenrolment.",
            metavar=FLAG,
        ),
    ] = False,
) -> None:
    """Write a synthetic claims + EHR extract with known truth (truth.json)."""
    from . import synth as synth_module

    summary = synth_module.generate(
        out_dir,
        persons=persons,
        seed=seed,
        file_format=file_format,
        effect_rtw_hr=effect_rtw_hr,
        effect_promis_pf=effect_promis_pf,
        progress=True,
        shift_years=shift_years,
        mechanisms=synth_module.EXTENDED if real_referral else None,
        secondary_effects=None if secondary_hr is None else dict.fromkeys(synth_module.SECONDARY_EFFECTS, secondary_hr),
        cost_effects=None if cost_ratio is None else synth_module.cost_effects_for_ratio(cost_ratio),
    )
    say(summary.describe())


@app.command()
@user_errors
def ingest(
    db: Annotated[Path, typer.Option("--db", help="DuckDB database file (created if missing).")],
    extract: Annotated[
        Path | None, typer.Option("--extract", help="Folder holding an extract in the input contract.")
    ] = None,
    omop: Annotated[
        Path | None,
        typer.Option("--omop", help="OMOP CDM v5.3/v5.4 source: a folder of tables or a DuckDB file."),
    ] = None,
    omop_schema: Annotated[
        str | None,
        typer.Option("--omop-schema", help="Schema holding the CDM when an OMOP DuckDB file has several."),
    ] = None,
    report: ReportOption = None,
    allow_identifiers: Annotated[
        bool,
        typer.Option(
            "--allow-identifiers",
            help="Load even if columns or values look like direct identifiers (you take responsibility).",
        ),
    ] = False,
    memory_limit: MemoryLimitOption = None,
    threads: ThreadsOption = None,
    reference_date: ReferenceDateOption = None,
    show_small_counts: ShowSmallOption = False,
) -> None:
    """Validate an extract against the input contract and load it into DuckDB (all or nothing)."""
    from . import ingest as ingest_module

    if (extract is None) == (omop is None):
        _refuse_load("give exactly one of --extract DIR or --omop SOURCE", report, extract or omop)
    if omop_schema is not None and omop is None:
        _refuse_load("--omop-schema applies only to an --omop source; drop it or load with --omop SOURCE", report, extract)
    try:
        reference = _iso_date(reference_date, "--reference-date")
    except IpmError as error:
        _refuse_load(str(error), report, extract or omop)
    options = dict(
        allow_identifiers=allow_identifiers,
        report_path=report,
        progress=True,
        memory_limit=memory_limit,
        threads=threads,
        reference_date=reference,
    )
    if omop is not None:
        from . import omop as omop_module

        summary = omop_module.load_omop(omop, db, cdm_schema=omop_schema, **options)
    else:
        summary = ingest_module.load_extract(extract, db, **options)
    say(summary.describe(_console_policy(show_small_counts)))


def _refuse_load(problem: str, report: Path | None, source: Path | None):
    """Refuse a load before it starts; the ``--report`` file, when asked for, still says why."""
    if report is not None:
        from .ingest import write_failure_report

        write_failure_report(report, source, problem)
    raise IpmError(problem)


def _iso_date(text: str | None, option: str):
    if text is None:
        return None
    import datetime as dt

    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise IpmError(f"{option} {text!r} is not a date; give it as YYYY-MM-DD, e.g. 2131-06-30") from None


SpecOption = Annotated[
    Path | None, typer.Option("--spec", help="Study specification TOML (default: the shipped studies/default.toml).")
]


EngineOption = Annotated[str, typer.Option("--engine", help="Where the cohort SQL runs: duckdb (default) or spark.")]
SparkMasterOption = Annotated[
    str, typer.Option("--spark-master", help="Spark master URL (local[N], spark://host:7077, yarn) or sc://host.")
]
SourceSchemaOption = Annotated[
    str | None, typer.Option("--source-schema", help="Spark: the schema holding the contract's raw tables.")
]
SourcePathOption = Annotated[
    Path | None, typer.Option("--source-path", help="Spark: a folder with one Parquet file or folder per raw table.")
]
SchemaPrefixOption = Annotated[str, typer.Option("--schema-prefix", help="Spark: prefix of the schemas the layers are built in.")]


@app.command("validate")
@user_errors
def validate_command(
    extract: Annotated[
        Path | None, typer.Option("--extract", help="DuckDB: the folder holding an extract in the input contract.")
    ] = None,
    engine: Annotated[
        str, typer.Option("--engine", help="Where the rules run: duckdb (default) or spark (where the claims live).")
    ] = "duckdb",
    spark_master: SparkMasterOption = "local[2]",
    source_schema: SourceSchemaOption = None,
    source_path: SourcePathOption = None,
    report: ReportOption = None,
    allow_identifiers: Annotated[
        bool,
        typer.Option(
            "--allow-identifiers", help="Report columns and values that look like direct identifiers as warnings."
        ),
    ] = False,
    reference_date: ReferenceDateOption = None,
    memory_limit: MemoryLimitOption = None,
    threads: ThreadsOption = None,
    show_small_counts: ShowSmallOption = False,
) -> None:
    """Check an extract against the input contract without loading it; every problem, one per block."""
    from .ingest import _failure_message, _write_report, validate_extract
    from .validation import count_by_severity, problems_table

    reference = _iso_date(reference_date, "--reference-date")
    if engine == "duckdb":
        given = [n for n, v in {"--source-schema": source_schema, "--source-path": source_path}.items() if v is not None]
        if given:
            raise IpmError(f"{', '.join(given)} applies only to --engine spark; give the extract folder as --extract DIR")
        if extract is None:
            raise IpmError("give the extract folder as --extract DIR (with --engine spark: --source-path or --source-schema)")
        problems = validate_extract(
            extract, allow_identifiers=allow_identifiers, reference_date=reference, memory_limit=memory_limit, threads=threads
        )
        where: str | Path = extract
    elif engine == "spark":
        if extract is not None:
            raise IpmError("with --engine spark give --source-path DIR (Parquet) or --source-schema NAME instead of --extract")
        given = [n for n, v in {"--memory-limit": memory_limit, "--threads": threads}.items() if v is not None]
        if given:
            raise IpmError(f"{', '.join(given)} applies only to --engine duckdb (Spark's resources are the session's)")
        from .spark_engine import SparkSource, spark_session
        from .spark_validation import validate_on_spark

        source = SparkSource(schema=source_schema, path=source_path)
        problems = validate_on_spark(
            spark_session(spark_master), source, allow_identifiers=allow_identifiers, reference_date=reference
        )
        where = source.describe()
    else:
        raise IpmError(f"unknown engine {engine!r}; use duckdb or spark")
    if report is not None:
        _write_report(report, where, problems, None)
    if problems:
        console.print(problems_table(problems, _console_policy(show_small_counts)))
    errors, warnings = count_by_severity(problems)
    if errors:
        raise IpmError(_failure_message(where, problems))
    say(f"{where}: meets the input contract ({warnings} warning{'' if warnings == 1 else 's'})")


@app.command("cohort")
@user_errors
def cohort_command(
    db: Annotated[
        Path,
        typer.Option("--db", help="DuckDB database holding a loaded extract (with --engine spark: receives the marts)."),
    ],
    spec_path: SpecOption = None,
    export: Annotated[
        Path | None, typer.Option("--export", help="Folder to export the marts to as parquet.")
    ] = None,
    engine: EngineOption = "duckdb",
    spark_master: SparkMasterOption = "local[2]",
    source_schema: SourceSchemaOption = None,
    source_path: SourcePathOption = None,
    schema_prefix: SchemaPrefixOption = "",
    show_small_counts: ShowSmallOption = False,
) -> None:
    """Build the analysis tables (cohort, rtw_outcome, qol_outcome, attrition) from a loaded extract."""
    from . import cohort
    from .spec import load_spec

    spec = load_spec(spec_path)
    spark_only = {"--source-schema": source_schema, "--source-path": source_path, "--schema-prefix": schema_prefix or None}
    if engine == "duckdb":
        given = [name for name, value in spark_only.items() if value is not None]
        if given:
            raise IpmError(f"{', '.join(given)} applies only to --engine spark")
        summary = cohort.build(spec, db, export_dir=export, progress=True)
    elif engine == "spark":
        from .spark_engine import SparkSource, build_on_spark, spark_session

        source = SparkSource(schema=source_schema, path=source_path)
        summary = build_on_spark(
            spec, spark_session(spark_master), source, db, schema_prefix=schema_prefix, export_dir=export, progress=True
        )
    else:
        raise IpmError(f"unknown engine {engine!r}; use duckdb or spark")
    say(summary.describe(_console_policy(show_small_counts, spec)))


@app.command("sql")
@user_errors
def sql_command(
    engine: EngineOption = "duckdb",
    print_sql: Annotated[bool, typer.Option("--print", help="Print every layer's SQL, in build order.")] = False,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Write <layer>/<table>.sql files here instead.")
    ] = None,
    source_schema: SourceSchemaOption = None,
    schema_prefix: SchemaPrefixOption = "",
) -> None:
    """The cohort SQL as the engine will run it, for review by a site's data team."""
    from .db import SQL_LAYERS
    from .portable_sql import build_order, translated_layers
    from .spark_engine import schema_names

    if print_sql == (out_dir is not None):
        raise IpmError("give exactly one of --print or --out DIR")
    tables = {name: on_engine for name, on_engine in schema_names(schema_prefix, source_schema).items() if name != on_engine}
    for layer, table, sql in translated_layers(engine, build_order(SQL_LAYERS), tables):
        if out_dir is not None:
            path = out_dir / layer / f"{table}.sql"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(sql.rstrip() + "\n")
        else:
            say(f"-- {layer}.{table}\n{sql.rstrip()};\n")
    if out_dir is not None:
        say(f"wrote the {engine} SQL of every layer under {out_dir}")


@app.command("analyze")
@user_errors
def analyze_command(
    db: Annotated[Path, typer.Option("--db", help="DuckDB database with the cohort built.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for results.json and the result tables.")],
    spec_path: SpecOption = None,
    workers: Annotated[
        int | None, typer.Option(help="Processes for the bootstrap (default: all cores).")
    ] = None,
    show_small_counts: ShowSmallOption = False,
) -> None:
    """Estimate the effect of early IPM referral; write results.json and tidy result tables."""
    from . import analysis
    from .spec import load_spec

    spec = load_spec(spec_path)
    summary = analysis.run(spec, db, out_dir, workers=workers, progress=True)
    say(summary.describe(_console_policy(show_small_counts, spec)))


@app.command("report")
@user_errors
def report_command(
    results: Annotated[Path, typer.Option("--results", help="Folder written by `ipm-outcomes analyze`.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the HTML/PDF report, figures and tables.")],
    pdf: Annotated[bool, typer.Option("--pdf/--no-pdf", help="Also write the PDF.", metavar=FLAG)] = True,
) -> None:
    """Render the report from results only (no model fitting)."""
    from . import report

    summary = report.render(results, out_dir, pdf=pdf, progress=True)
    say(summary.describe())


@app.command("run")
@user_errors
def run_command(
    extract: Annotated[
        Path | None,
        typer.Option("--extract", help="Extract folder; without it a synthetic extract is generated and used."),
    ] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Root folder for data/ and reports/ outputs.")] = Path("."),
    spec_path: SpecOption = None,
    persons: Annotated[
        int | None, typer.Option(help="Persons in the synthetic extract (only without --extract; default 20000).")
    ] = None,
    refresh: Annotated[bool, typer.Option("--refresh", help="Ignore cached stages; run everything.", metavar=FLAG)] = False,
    task_runner: Annotated[
        str, typer.Option(help="Where bootstrap replicates run: process, thread, dask or ray.")
    ] = "process",
    cluster: Annotated[
        str | None, typer.Option(help="Address of a Dask or Ray cluster for --task-runner dask/ray.")
    ] = None,
    engine: EngineOption = "duckdb",
    spark_master: SparkMasterOption = "local[2]",
    source_schema: SourceSchemaOption = None,
    source_path: SourcePathOption = None,
) -> None:
    """Run the whole study as a Prefect flow: ingest -> cohort -> analyze -> report."""
    from .spec import load_spec

    if extract is not None and persons is not None:
        raise IpmError("--persons sizes the generated synthetic extract; drop it when you give --extract")
    if engine == "spark" and (extract is not None or persons is not None):
        raise IpmError("with --engine spark the raw tables are on Spark (--source-schema or --source-path); drop --extract and --persons")
    if engine != "spark" and (source_schema is not None or source_path is not None):
        raise IpmError("--source-schema and --source-path apply only to --engine spark")
    if cluster is not None and task_runner not in ("dask", "ray"):
        raise IpmError(f"--cluster is the address of a Dask or Ray cluster; add --task-runner dask or ray (not {task_runner})")
    spec = load_spec(spec_path)
    # Checked before the flow starts: a missing extract would otherwise fail inside Prefect, with retries,
    # tracebacks and empty output folders.
    if extract is not None and not extract.is_dir():
        raise IpmError(f"{extract}: no such extract folder (--extract); give the folder holding the extract's tables")
    from pipelines.run import run_study

    run = run_study(
        spec,
        extract,
        out_dir,
        persons=persons if persons is not None else 20_000,
        refresh=refresh,
        bootstrap_runner=task_runner,
        cluster_address=cluster,
        engine=engine,
        spark_master=spark_master,
        spark_source_schema=source_schema,
        spark_source_path=source_path,
    )
    say(run.describe())


def run() -> None:  # pragma: no cover - console entry for `python -m ipm_outcomes`
    app(prog_name="ipm-outcomes")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run())
