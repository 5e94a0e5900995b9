"""The input contract's row-level rules on Apache Spark: an extract validated where it lives.

Claims too large for one machine, or not allowed to leave a Spark platform, are checked there with the
same rules ingest applies (:mod:`ipm_outcomes.validation`): the same :class:`~ipm_outcomes.validation.Check`
objects, their SQL conditions written once in DuckDB's dialect and translated by
:mod:`ipm_outcomes.portable_sql`, over the same normalised view (trimmed text, empty as NULL, codes upper
case, typed twins ``<column>__t``). The problems are :class:`~ipm_outcomes.validation.Problem` objects
built by the same code as ingest's, so they name the same file, column, rule, message and row.

What runs here: missing tables and columns, extra and identifier-named columns, empty tables, and every
rule on values (null, type, non_finite, allowed_values, code_shape, future_date, early_date,
birth_year_range, date_order, pro_range, identifier_value), duplicate keys and orphan persons. What does
not: the rules about how a CSV file is written (malformed lines, blank or repeated header names: Spark
sources are Parquet files or catalog tables) and the schema drift between Parquet parts (``part_schema``:
Spark reads a folder with the first part's schema).

Rows: a Parquet file's rows are numbered as DuckDB numbers them (Spark's ``_metadata.row_index``, from 1
within each file). A catalog table has no row order: its problems name the table (``schema.table``) and
give no row numbers; the examples still show the values.

Needs ``pip install 'ipm-outcomes[spark]'`` and Java 17.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from .contract import TABLES, Table
from .ingest import (
    _add_duplicates,
    _add_examples,
    _add_no_rows,
    _add_orphans,
    _checks_for,
    _duplicates_sql,
    _examples_sql,
    _EXTRA_PREFIX,
    _key_exprs,
    _match_header,
    _orphan_join,
    _Source,
    EXAMPLES,
)
from .portable_sql import translate
from .spark_engine import SparkSource, _parquet_location
from .validation import ERROR, Problem, ProblemList, normalise_expr, quote_ident, typed_expr, typed_name

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: Spark's type names (``DataType.simpleString()``) as DuckDB's, which the rules are written for.
_DUCKDB_TYPES = {
    "string": "VARCHAR",
    "tinyint": "TINYINT",
    "smallint": "SMALLINT",
    "int": "INTEGER",
    "bigint": "BIGINT",
    "float": "FLOAT",
    "double": "DOUBLE",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "timestamp_ntz": "TIMESTAMP",
}


def duckdb_type(spark_type: str) -> str:
    """A Spark column type (``simpleString``) under DuckDB's name (``decimal(10,2)`` -> ``DECIMAL(10,2)``)."""
    if spark_type.startswith("decimal"):
        return spark_type.upper()
    return _DUCKDB_TYPES.get(spark_type, spark_type.upper())


def validate_on_spark(
    spark: SparkSession,
    source: SparkSource,
    *,
    allow_identifiers: bool = False,
    today: date | None = None,
    reference_date: date | None = None,
) -> list[Problem]:
    """Check the contract's raw tables on Spark, as :func:`ipm_outcomes.ingest.validate_extract` checks an extract.

    Parameters
    ----------
    spark
        The session (:func:`ipm_outcomes.spark_engine.spark_session`).
    source
        A folder with one Parquet file or folder of parts per table (``eligibility.parquet`` or
        ``eligibility/``), or a catalog schema holding tables named as the contract's.
    allow_identifiers, today, reference_date
        As for :func:`~ipm_outcomes.ingest.validate_extract`.

    Returns
    -------
    list of Problem
        Every problem found, in the order of the contract's tables; empty when the tables are clean.
    """
    today = reference_date or today or date.today()
    problems = ProblemList()
    sources = _discover(spark, source, problems)
    for src in sources.values():
        _match_header(src, problems, allow_identifiers)
    have_persons = False
    try:
        for src in sources.values():
            _create_view(spark, src)
            with_orphans = have_persons and src.name != "eligibility" and src.has("person_id")
            _check_table(spark, src, problems, today, with_orphans, allow_identifiers)
            if src.name == "eligibility" and src.has("person_id"):
                spark.sql(
                    f"cache table _eligible_persons as select distinct person_id from {src.view} where person_id is not null"
                )
                have_persons = True
    finally:
        if have_persons:
            spark.sql("uncache table if exists _eligible_persons")
        for name in ("_eligible_persons", *(f"_s_{s.name}" for s in sources.values()), *(s.view for s in sources.values())):
            spark.catalog.dropTempView(name)
    return problems.items


def _discover(spark: SparkSession, source: SparkSource, problems: ProblemList) -> dict[str, _Source]:
    """Each contract table present in the source, its columns and types read from Spark's schema."""
    from pyspark.errors import AnalysisException

    sources: dict[str, _Source] = {}
    for table in TABLES:
        if source.path is not None:
            location = _parquet_location(source.path, table.name)
            if location is None:
                _missing(table, f"{table.name}.parquet", f"give {table.name}.parquet or a folder of parquet parts", problems)
                continue
            rel = location.name + ("/" if location.is_dir() else "")
            src = _Source(table=table, path=location, rel=rel, kind="parquet", files=[location])
            try:
                frame = spark.read.parquet(str(location.resolve()))
                frame = frame.selectExpr("_metadata.file_name as _file", "_metadata.row_index + 1 as _row", "*")
            except AnalysisException as exc:
                problems.add(ERROR, rel, table.name, None, "unreadable_file", f"{rel} cannot be read: {_first_line(exc)}")
                continue
        else:
            rel = f"{source.schema}.{table.name}"
            if not spark.catalog.tableExists(rel):
                _missing(table, rel, f"there is no table {rel}", problems)
                continue
            # a catalog table has no row order to report (the path and name are its location)
            src = _Source(table=table, path=Path(rel), rel=rel, kind="parquet", files=[])
            frame = spark.table(rel).selectExpr("cast(null as string) as _file", "cast(null as bigint) as _row", "*")
        frame.createOrReplaceTempView(f"_s_{table.name}")
        src.types = {f.name: duckdb_type(f.dataType.simpleString()) for f in frame.schema.fields[2:]}
        src.header = list(src.types)
        sources[table.name] = src
    return sources


def _missing(table: Table, file: str, hint: str, problems: ProblemList) -> None:
    if table.required:
        problems.add(ERROR, file, table.name, None, "missing_table", f"required table {table.name} is missing ({hint})")


def _first_line(exc: Exception) -> str:
    return " ".join(str(exc).split())[:300]


def _create_view(spark: SparkSession, src: _Source) -> None:
    """``_v_<table>``: _file, _row, the normalised contract and diagnosis columns, typed twins, extra columns as text.

    The same expressions as ingest's validation view (:func:`ipm_outcomes.ingest._create_view`), translated.
    """
    inner = ["_file", "_row"]
    outer = ["*"]
    for col in src.columns:
        ref = quote_ident(col.name)
        inner.append(f"{normalise_expr(col, src.types[col.name], ref)} as {ref}")
        if col.type != "VARCHAR":
            outer.append(f"{typed_expr(col, src.types[col.name], ref)} as {quote_ident(typed_name(col.name))}")
    for _, name in src.diagnosis:
        ref = quote_ident(name)
        inner.append(f"{normalise_expr(None, src.types[name], ref)} as {ref}")
    for name in src.extras:  # checked for identifier-shaped values
        inner.append(f"nullif(trim(cast({quote_ident(name)} as VARCHAR)), '') as {quote_ident(_EXTRA_PREFIX + name)}")
    select = f"select {', '.join(outer)} from (select {', '.join(inner)} from _s_{src.name})"
    spark.sql(f"create or replace temp view {src.view} as {_spark(select, src)}")


def _spark(sql: str, src: _Source) -> str:
    return translate(sql, "spark", name=f"validation of {src.name}")


def _rows(spark: SparkSession, sql: str, src: _Source) -> list[tuple]:
    return [tuple(row) for row in spark.sql(_spark(sql, src)).collect()]


def _check_table(
    spark: SparkSession, src: _Source, problems: ProblemList, today: date, with_orphans: bool, allow_identifiers: bool
) -> None:
    """Count every rule of one table in one scan, then fetch the first rows of the rules that fail.

    Problems come in ingest's order: an empty table, the failing rules in the order of the checks, repeated keys.
    """
    checks = _checks_for(src, today, with_orphans, allow_identifiers)
    join = _orphan_join() if with_orphans else ""
    keys = _key_exprs(src) if src.table.key and src.has(*src.table.key) else []
    complete = " and ".join(f"{k} is not null" for k in keys) or "false"
    # Spark's count(distinct a, b) counts the distinct keys without a NULL part (DuckDB's has one argument)
    distinct = f"count(distinct {', '.join(keys)})" if keys else "0"
    counts = ["count(*)", f"count(*) filter (where {complete})", distinct]
    counts += [f"count(*) filter (where {c.condition})" for c in checks]
    rows, keyed, distinct_keys, *bad = _rows(spark, f"select {', '.join(counts)} from {src.view} _v{join}", src)[0]
    src.rows = rows
    _add_no_rows(src, problems)
    for check, n in zip(checks, bad, strict=True):
        if not n:
            continue
        if check.rule == "orphan_person":
            _report_orphans(spark, src, check, n, problems, join)
        else:
            _add_examples(src, check, n, _rows(spark, _examples_sql(src, check, join), src), problems)
    if keyed > distinct_keys:
        _add_duplicates(src, keyed - distinct_keys, _rows(spark, _duplicates_sql(src), src), problems)


def _report_orphans(spark: SparkSession, src: _Source, check, n_rows: int, problems: ProblemList, join: str) -> None:
    orphans = f"(select _file, _row, person_id from {src.view} _v{join} where {check.condition})"
    (persons,) = _rows(spark, f"select count(distinct person_id) from {orphans}", src)[0]
    examples = _rows(
        spark,
        f"select person_id from {orphans} group by person_id order by min(_file), min(_row), person_id limit {EXAMPLES}",
        src,
    )
    found = _rows(spark, f"select _file, _row from {orphans} where _row is not null order by _file, _row limit {EXAMPLES}", src)
    _add_orphans(src, check, n_rows, persons, [e for (e,) in examples], found, problems)
