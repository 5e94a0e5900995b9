"""The cohort build on Apache Spark: the same SQL files, translated, for extracts that outgrow one machine.

National claims (billions of lines) live on Spark platforms and may not leave them. This engine builds
each SQL layer as tables on a Spark session, from the same ``.sql`` files DuckDB runs, translated by
:mod:`ipm_outcomes.portable_sql` with values as bound parameters (Spark's ``:name`` markers). The raw
tables are read from a catalog schema, or from Parquet folders that this module registers as tables;
the reference tables (value sets, spec lists) are written as tables. Only the marts come back: they
are exported to Parquet and imported into a local DuckDB file with their build record, so ``analyze``
and ``report`` run locally on them as after a DuckDB build (and check them the same way).

Needs ``pip install 'ipm-outcomes[spark]'`` and Java 17.
"""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from . import db, lineage
from .cohort import MART_KEYS, CohortSummary, _summarise, reference_rows
from .contract import DIAGNOSIS_COLUMN_PREFIX, RAW_SCHEMA, TABLES, medical_claim_diagnosis_view_ddl
from .errors import IpmError
from .fingerprint import sha256_file, sha256_tree
from .portable_sql import build_order, translate
from .spec import StudySpec, spec_sha256
from .valuesets import VALUESET_TABLE_DDL, load_valuesets, valueset_rows

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: Schemas the SQL files name, besides ``raw``: each becomes ``<prefix><schema>`` on Spark.
BUILT_SCHEMAS = ("ref", "staging", "intermediate", "marts")
#: The raw tables the cohort SQL reads; the optional ones may be empty.
_OPTIONAL_FOR_AVAILABILITY = ("pharmacy_claim", "ndc_reference", "ehr_work_status", "ehr_pro")


def spark_session(master: str = "local[2]", app_name: str = "ipm-outcomes", warehouse: str | Path | None = None):
    """A Spark session for the build (``master``: ``local[N]``, ``spark://host:7077``, ``yarn``...).

    Spark Connect endpoints (``sc://host``) are reached with ``SparkSession.builder.remote`` instead.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise IpmError("the Spark engine needs pyspark and Java 17: pip install 'ipm-outcomes[spark]'") from None
    builder = SparkSession.builder.appName(app_name)
    builder = builder.remote(master) if master.startswith("sc://") else builder.master(master)
    builder = builder.config("spark.ui.enabled", "false").config("spark.sql.session.timeZone", "UTC")
    if master.startswith("local"):
        # a laptop-sized session: few shuffle partitions, the driver holds the data
        builder = builder.config("spark.sql.shuffle.partitions", "8").config("spark.driver.memory", "3g")
    if warehouse is not None:
        builder = builder.config("spark.sql.warehouse.dir", str(Path(warehouse).resolve()))
    return builder.getOrCreate()


@dataclass(frozen=True)
class SparkSource:
    """Where the contract's raw tables are: a catalog schema, or a folder of Parquet (one per table)."""

    schema: str | None = None
    path: Path | None = None

    def __post_init__(self) -> None:
        if (self.schema is None) == (self.path is None):
            raise IpmError("give exactly one of --source-schema NAME or --source-path DIR")

    def describe(self) -> str:
        return f"Spark schema {self.schema}" if self.schema else f"Parquet tables in {self.path}"


def schema_names(prefix: str, source_schema: str | None) -> dict[str, str]:
    """The schema each name in the SQL files maps to on Spark: the built layers' under ``prefix``, and
    ``raw`` to the source schema (or, for a Parquet source, ``<prefix>raw``, where its tables are registered)."""
    names = {schema: f"{prefix}{schema}" for schema in BUILT_SCHEMAS}
    names[RAW_SCHEMA] = source_schema or f"{prefix}{RAW_SCHEMA}"
    return names


def _raw_relations(spark: SparkSession, source: SparkSource, schemas: dict[str, str]) -> None:
    """Make the raw tables readable under ``schemas['raw']``; a Parquet folder's tables are registered."""
    if source.path is None:
        return
    spark.sql(f"create database if not exists {schemas[RAW_SCHEMA]}")
    for table in TABLES:
        location = _parquet_location(source.path, table.name)
        if location is None:
            if table.required:
                raise IpmError(f"{source.path}: no {table.name}.parquet (or folder of parts); it is required")
            continue
        spark.sql(f"drop table if exists {schemas[RAW_SCHEMA]}.{table.name}")
        spark.catalog.createTable(f"{schemas[RAW_SCHEMA]}.{table.name}", path=str(location.resolve()), source="parquet")


def _parquet_location(folder: Path, table: str) -> Path | None:
    for candidate in (folder / f"{table}.parquet", folder / table):
        if candidate.exists():
            return candidate
    return None


def _existing_tables(spark: SparkSession, schema: str) -> set[str]:
    return {row.tableName for row in spark.sql(f"show tables in {schema}").collect()}


def _empty_optional_tables(spark: SparkSession, schemas: dict[str, str], present: set[str]) -> list[str]:
    """Absent optional raw tables as empty tables in the built ``ref`` schema (the SQL reads every one)."""
    from .contract import raw_table_ddl

    absent = []
    for table in TABLES:
        if table.name in present:
            continue
        if table.required:
            raise IpmError(f"{schemas[RAW_SCHEMA]}: no table {table.name}; it is required")
        ddl = raw_table_ddl(table)
        columns = ddl[ddl.index("(") + 1 : ddl.rindex(")")]
        _drop_table(spark, f"{schemas['ref']}.empty_{table.name}")
        spark.sql(f"create table {schemas['ref']}.empty_{table.name} ({_spark_columns(columns)}) using parquet")
        absent.append(table.name)
    return absent


def _spark_columns(duckdb_columns: str) -> str:
    """DuckDB column definitions as Spark's: VARCHAR is STRING, NOT NULL and compression hints dropped."""
    text = re.sub(r"\bvarchar\b", "string", duckdb_columns, flags=re.IGNORECASE)
    text = re.sub(r"\bnot null\b", "", text, flags=re.IGNORECASE)
    text = re.sub(r"\s+using compression \w+", "", text, flags=re.IGNORECASE)
    return text


def _drop_table(spark: SparkSession, name: str) -> None:
    """Drop the managed table ``name`` before it is created again.

    Spark's in-memory catalog (a local session without Hive) forgets its tables when the session ends
    but leaves their folders in the warehouse, and Spark refuses to create a managed table over a
    non-empty folder (LOCATION_ALREADY_EXISTS): a second build on the same warehouse would fail. Such a
    folder is this build's own table from an earlier session, so it is removed. With a persistent
    catalog (Hive, Unity) ``drop table`` removes the data itself.
    """
    spark.sql(f"drop table if exists {name}")
    if spark.conf.get("spark.sql.catalogImplementation", "in-memory") != "in-memory":
        return
    schema, table = name.split(".")
    info = {r.info_name: r.info_value for r in spark.sql(f"describe schema extended {schema}").collect()}
    location = urlparse(info.get("Location", ""))
    folder = Path(location.path) / table.lower()
    if location.scheme in ("", "file") and folder.is_dir():
        shutil.rmtree(folder)


def _write_reference_tables(spark: SparkSession, spec: StudySpec, schema: str) -> None:
    """The value sets and the spec-derived lists as tables (what :func:`cohort.write_reference_tables` writes)."""
    valueset_columns = VALUESET_TABLE_DDL[VALUESET_TABLE_DDL.index("(") + 1 : VALUESET_TABLE_DDL.rindex(")")]
    tables: dict[str, tuple[str, list[tuple]]] = {
        "valueset": (valueset_columns, valueset_rows(load_valuesets(spec))),
        **reference_rows(spec),
    }
    for name, (columns, rows) in tables.items():
        spark_columns = _spark_columns(columns)
        frame = spark.createDataFrame(rows, schema=spark_columns) if rows else spark.createDataFrame([], spark_columns)
        _drop_table(spark, f"{schema}.{name}")
        frame.write.format("parquet").saveAsTable(f"{schema}.{name}")


def _diagnosis_view(spark: SparkSession, schemas: dict[str, str]) -> str:
    """Create the unpivoted diagnosis view where the build may write; returns its name."""
    columns = spark.table(f"{schemas[RAW_SCHEMA]}.medical_claim").columns
    positions = sorted(
        int(c[len(DIAGNOSIS_COLUMN_PREFIX) :])
        for c in columns
        if c.startswith(DIAGNOSIS_COLUMN_PREFIX) and c[len(DIAGNOSIS_COLUMN_PREFIX) :].isdigit()
    )
    if not positions:
        raise IpmError(f"{schemas[RAW_SCHEMA]}.medical_claim: no {DIAGNOSIS_COLUMN_PREFIX}N columns")
    ddl = medical_claim_diagnosis_view_ddl(positions)
    select = ddl[ddl.index(" as\n") + len(" as\n") :]
    name = f"{schemas['staging']}.medical_claim_diagnosis"
    spark.sql(f"create or replace view {name} as\n" + translate(select, "spark", tables={RAW_SCHEMA: schemas[RAW_SCHEMA]}))
    return name


def build_on_spark(
    spec: StudySpec,
    spark: SparkSession,
    source: SparkSource,
    db_path: str | Path,
    *,
    schema_prefix: str = "",
    export_dir: str | Path | None = None,
    progress: bool = False,
) -> CohortSummary:
    """Build the cohort on Spark and bring its marts into a local DuckDB file for ``analyze``.

    Parameters
    ----------
    spark
        The session (:func:`spark_session`).
    source
        The contract's raw tables, in their loaded form (the columns and types of ``data/README.md``,
        codes normalised as ``ingest`` loads them).
    db_path
        Local DuckDB file that receives the marts (``marts.*``), the source's load record
        (``meta.load``) and the build record (``meta.cohort_build``); created or replaced.
    schema_prefix
        Spark schemas ``<prefix>ref``, ``<prefix>staging``, ``<prefix>intermediate`` and
        ``<prefix>marts`` are created for the layers (and ``<prefix>raw`` for a Parquet source).
    export_dir
        The marts as Parquet, written by Spark (default: ``<db_path>.marts/``).
    """
    started = time.perf_counter()
    db_path = Path(db_path)
    export_dir = Path(export_dir) if export_dir is not None else Path(f"{db_path}.marts")
    schemas = schema_names(schema_prefix, source.schema)
    for schema in BUILT_SCHEMAS:
        spark.sql(f"create database if not exists {schemas[schema]}")
    _raw_relations(spark, source, schemas)
    present = _existing_tables(spark, schemas[RAW_SCHEMA])
    absent = _empty_optional_tables(spark, schemas, present)
    tables = {
        **{name: schemas[name] for name in (RAW_SCHEMA, *BUILT_SCHEMAS)},
        f"{RAW_SCHEMA}.medical_claim_diagnosis": _diagnosis_view(spark, schemas),
        **{f"{RAW_SCHEMA}.{name}": f"{schemas['ref']}.empty_{name}" for name in absent},
    }
    _write_reference_tables(spark, spec, schemas["ref"])
    available = {
        name: name not in absent and bool(spark.table(f"{schemas[RAW_SCHEMA]}.{name}").limit(1).collect())
        for name in _OPTIONAL_FOR_AVAILABILITY
    }
    params = dict(spec.sql_params())
    params["pharmacy_available"] = available["pharmacy_claim"] and available["ndc_reference"]
    for layer, order in build_order(db.SQL_LAYERS).items():
        files = dict(db.sql_files(layer))
        for table in order:
            sql = translate(files[table], "spark", tables=tables, name=f"sql/{layer}/{table}.sql")
            target = f"{schemas[layer]}.{table}"
            if progress:
                print(f"building {target}", flush=True)
            _drop_table(spark, target)
            spark.sql(f"create table {target} using parquet as\n{sql}", args=db.bind(files[table], params))
    exported = _export_marts(spark, schemas["marts"], export_dir)
    load = _source_load(source, absent)
    totals = {
        "persons": spark.table(f"{schemas['staging']}.person").count(),
        "lbp_persons": spark.table(f"{schemas['intermediate']}.person_eligibility").count(),
        "data_end_date": spark.table(f"{schemas['staging']}.extract_period").first()["data_end_date"],
    }
    fingerprint = spec_sha256(spec)
    _import_marts(db_path, exported, spec, load, fingerprint)
    con = db.connect(db_path, read_only=True)
    try:
        summary = _summarise(con, spec, db_path, fingerprint, available, params["pharmacy_available"], totals=totals)
    finally:
        con.close()
    return CohortSummary(**summary, seconds=time.perf_counter() - started, exported=list(exported.values()))


def _export_marts(spark: SparkSession, schema: str, folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for mart, key in MART_KEYS.items():
        path = folder / mart
        spark.table(f"{schema}.{mart}").orderBy(*key).write.mode("overwrite").parquet(str(path.resolve()))
        written[mart] = path
    return written


def _source_load(source: SparkSource, absent: list[str]) -> lineage.LoadRecord:
    """The load record of a Spark source: a Parquet folder by content; a catalog schema by name only."""
    from datetime import UTC, datetime

    files: list[dict[str, Any]] = []
    if source.path is not None:
        for table in TABLES:
            location = _parquet_location(source.path, table.name)
            if location is not None:
                digest = sha256_tree(location) if location.is_dir() else sha256_file(location)
                files.append({"table": table.name, "file": location.name, "sha256": digest, "rows": None})
    return lineage.LoadRecord(
        extract_path=source.describe(),
        loaded_at=datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="seconds"),
        data_sha256=lineage.data_sha256(files),
        files=files,
        absent_tables=absent,
    )


def _import_marts(db_path: Path, exported: dict[str, Path], spec: StudySpec, load: lineage.LoadRecord, fingerprint: str) -> None:
    """Replace the local database's marts and records with the Spark build's, in one transaction."""
    con = db.connect(db_path)
    try:
        con.execute("begin transaction")
        try:
            con.execute("create schema if not exists marts")
            for mart, path in exported.items():
                con.execute(
                    f"create or replace table marts.{mart} as select * from read_parquet(?)",
                    [str(path.resolve() / "*.parquet")],
                )
            lineage.write_load(con, load.extract_path, load.loaded_at, load.files, load.absent_tables)
            lineage.record_cohort_build(con, spec, lineage.read_load(con), fingerprint)
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
    finally:
        con.close()
