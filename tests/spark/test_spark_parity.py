"""The same cohort SQL on Spark and on DuckDB: every table of every layer row for row, and the same estimates.

Marked ``spark`` (pyspark and Java 17; ``make test-spark``, run in CI). One Spark session serves every
test (tests/spark/conftest.py): starting one costs tens of seconds.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from ipm_outcomes import analysis, cohort, ingest, synth
from ipm_outcomes.db import SQL_LAYERS
from ipm_outcomes.portable_sql import build_order
from ipm_outcomes.spec import load_spec

pyspark = pytest.importorskip("pyspark")

pytestmark = pytest.mark.spark

PERSONS, SEED = 2500, 5


def _spec(folder: Path):
    path = folder / "spec.toml"
    path.write_text('extends = "default"\n[analysis]\nbootstrap_replicates = 4\n')
    return load_spec(path)


def _raw_parquet(db_path: Path, folder: Path) -> Path:
    """The loaded raw tables as Parquet: a site's raw tables on Spark, in the contract's loaded form."""
    folder.mkdir()
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        tables = con.execute(
            "select table_name from information_schema.tables where table_schema = 'raw' and table_type = 'BASE TABLE'"
        ).fetchall()
        for (table,) in tables:
            con.execute(f"copy raw.{table} to '{folder / table}.parquet' (format parquet)")
    finally:
        con.close()
    return folder


def _duckdb_table(db_path: Path, name: str) -> pd.DataFrame:
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        return con.execute(f"select * from {name}").df()
    finally:
        con.close()


def _text(value) -> str:
    if isinstance(value, list | tuple | np.ndarray):
        return str([_text(v) for v in value])
    if value is None or (not isinstance(value, str | bytes) and pd.isna(value)):
        return "NULL"
    if isinstance(value, datetime.datetime) and value.time() == datetime.time(0):
        return value.strftime("%Y-%m-%d")
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, float | np.floating):
        # sums of doubles may differ in the last bits with the order the engine adds them in
        return f"{float(value):.12g}"
    return str(value)


def _canonical(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows sorted on every column, values as text: the engines hand dates back as dates or midnight
    timestamps, and integers in other widths, but the values must be the same."""
    text = frame.astype(object).apply(lambda column: column.map(_text))
    return text.sort_values(list(text.columns)).reset_index(drop=True)


def _build_both(root: Path, spark, drop: tuple[str, ...] = (), empty: tuple[str, ...] = ()):
    from ipm_outcomes.spark_engine import SparkSource, build_on_spark

    spec = _spec(root)
    synth.generate(root / "extract", persons=PERSONS, seed=SEED, file_format="parquet")
    for table in drop:
        (root / "extract" / f"{table}.parquet").unlink()
    for table in empty:  # a header and no rows
        path = root / "extract" / f"{table}.parquet"
        pq.write_table(pq.read_table(path).slice(0, 0), path)
    duck = root / "duck.duckdb"
    ingest.load_extract(root / "extract", duck)
    cohort.build(spec, duck)
    raw = _raw_parquet(duck, root / "raw")
    prefix = f"{root.name.replace('-', '_')}_"
    summary = build_on_spark(spec, spark, SparkSource(path=raw), root / "spark.duckdb", schema_prefix=prefix)
    return spec, duck, root / "spark.duckdb", prefix, summary


@pytest.fixture(scope="module")
def full(tmp_path_factory, spark):
    root = tmp_path_factory.mktemp("full")
    return _build_both(root, spark)


def test_every_table_of_every_layer_is_the_same_row_for_row(full, spark):
    _, duck, _, prefix, _ = full
    compared = 0
    for layer, tables in build_order(SQL_LAYERS).items():
        for table in tables:
            expected = _duckdb_table(duck, f"{layer}.{table}")
            got = spark.table(f"{prefix}{layer}.{table}").toPandas()
            assert list(got.columns) == list(expected.columns), f"{layer}.{table}"
            pd.testing.assert_frame_equal(_canonical(got), _canonical(expected), obj=f"{layer}.{table}")
            compared += 1
    assert compared == sum(len(t) for t in build_order(SQL_LAYERS).values())
    assert len(_duckdb_table(duck, "marts.cohort")) > 1000


def test_the_local_marts_and_the_estimates_are_the_same(full, tmp_path):
    spec, duck, spark_db, _, summary = full
    for mart in cohort.MART_KEYS:
        pd.testing.assert_frame_equal(
            _canonical(_duckdb_table(spark_db, f"marts.{mart}")), _canonical(_duckdb_table(duck, f"marts.{mart}")), obj=mart
        )
    results = {}
    for name, db_path in (("duckdb", duck), ("spark", spark_db)):
        analysis.run(spec, db_path, tmp_path / name, workers=1)
        results[name] = json.loads((tmp_path / name / "results.json").read_text())
    assert results["spark"]["estimates"] == results["duckdb"]["estimates"]
    assert results["spark"]["provenance"]["cohort_load"]["extract_path"].startswith("Parquet tables in ")
    assert summary.cohort == len(_duckdb_table(duck, "marts.cohort"))


def test_a_build_over_the_folders_an_earlier_session_left_behind(full, spark):
    """A local session's in-memory catalog forgets its tables when it ends but leaves their folders in the
    warehouse; the next `cohort --engine spark` on the same warehouse must still build (Spark refuses a
    managed table over a non-empty folder: LOCATION_ALREADY_EXISTS)."""
    from urllib.parse import urlparse

    from ipm_outcomes.spark_engine import SparkSource, build_on_spark

    spec, duck, spark_db, prefix, _ = full
    again = f"{prefix}again_"
    warehouse = Path(urlparse(spark.conf.get("spark.sql.warehouse.dir")).path)
    left = [("ref", "valueset"), ("ref", "empty_ehr_pro"), ("staging", "person"), ("marts", "cohort")]
    for schema, table in left:  # what an earlier session's tables leave once its catalog is gone
        folder = warehouse / f"{again}{schema}.db" / table
        folder.mkdir(parents=True)
        (folder / "part-00000.parquet").write_bytes(b"left by an earlier session")
    summary = build_on_spark(spec, spark, SparkSource(path=spark_db.parent / "raw"), spark_db.parent / "again.duckdb",
                             schema_prefix=again)
    assert summary.cohort == len(_duckdb_table(duck, "marts.cohort"))
    got = spark.table(f"{again}marts.cohort").toPandas()
    pd.testing.assert_frame_equal(_canonical(got), _canonical(_duckdb_table(duck, "marts.cohort")))


@pytest.mark.parametrize(
    ("case", "drop", "empty"),
    [("no_pharmacy_or_pro", ("pharmacy_claim", "ndc_reference", "ehr_pro"), ()), ("empty_optional", (), ("ehr_pro", "pharmacy_claim"))],
)
def test_extracts_without_optional_data_give_the_same_marts(tmp_path_factory, spark, case, drop, empty):
    root = tmp_path_factory.mktemp(case)
    _, duck, spark_db, _, summary = _build_both(root, spark, drop=drop, empty=empty)
    for mart in cohort.MART_KEYS:
        pd.testing.assert_frame_equal(
            _canonical(_duckdb_table(spark_db, f"marts.{mart}")), _canonical(_duckdb_table(duck, f"marts.{mart}")), obj=mart
        )
    assert summary.pharmacy_available is False
    assert summary.data_end_date is not None
