"""Property: whatever is wrong with an extract, ingest never half-writes the database.

Each example corrupts one cell, row, column or file of the good extract (or splits one table into
parquet parts, one of which drifted) and loads it over a previous good load. Either the load fails with ValidationFailed and the database is exactly as it
was, or it succeeds completely: every raw table holds every row of its file and the provenance
names the new files. Any other exception (a DuckDB error leaking out, say) fails the test.
"""

from __future__ import annotations

import csv
import hashlib
import shutil
import tempfile
from datetime import date
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ipm_outcomes.errors import ValidationFailed
from ipm_outcomes.ingest import load_extract

TODAY = date(2025, 6, 30)
GOOD = Path(__file__).parents[1] / "fixtures" / "extract_good"
TABLE_FILES = sorted(p.name for p in GOOD.iterdir())

VALUES = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "x",
            "-1",
            "0",
            "1.5",
            "1e400",
            "2021-13-01",
            "9999-12-31",
            "2021-02-28",
            "NaN",
            "true",
            "M54.5",
            "P999",
            "123-45-6789",
            "a@b.org",
            '"',
            ",",
            "\n",
            "office",
            "odi",
            "00591-0385-01",
        ]
    ),
    st.text(max_size=6),
)


@st.composite
def corruptions(draw):
    file = draw(st.sampled_from(TABLE_FILES))
    kind = draw(
        st.sampled_from(
            [
                "cell",
                "cell",
                "cell",
                "drop_row",
                "copy_row",
                "drop_column",
                "add_column",
                "rename_column",
                "truncate",
                "remove_file",
            ]
        )
    )
    return file, kind, draw(st.integers(0, 10_000)), draw(st.integers(0, 10_000)), draw(VALUES)


def corrupt(extract: Path, file: str, kind: str, i: int, j: int, value: str) -> None:
    path = extract / file
    if kind == "remove_file":
        path.unlink()
        return
    if kind == "truncate":
        data = path.read_bytes()
        path.write_bytes(data[: i % (len(data) + 1)])
        return
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    r, c = i % len(body), j % len(header)
    if kind == "cell":
        body[r][c] = value
    elif kind == "drop_row":
        del body[r]
    elif kind == "copy_row":
        body.append(list(body[r]))
    elif kind == "drop_column":
        header = header[:c] + header[c + 1 :]
        body = [row[:c] + row[c + 1 :] for row in body]
    elif kind == "add_column":
        header = [*header, value.strip() or "extra"]
        body = [[*row, value] for row in body]
    elif kind == "rename_column":
        header[c] = value
    with open(path, "w", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows([header, *body])


@pytest.fixture(scope="module")
def previous_load(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("previous")
    path = folder / "study.duckdb"
    load_extract(GOOD, path, today=TODAY)
    return path


def data_rows(path: Path) -> int:
    with open(path, newline="") as handle:
        return sum(1 for _ in csv.reader(handle)) - 1


@settings(max_examples=30, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(corruption=corruptions())
def test_a_corrupted_extract_is_loaded_completely_or_not_at_all(previous_load, db_state, corruption):
    with tempfile.TemporaryDirectory() as tmp:
        extract, db = Path(tmp) / "extract", Path(tmp) / "study.duckdb"
        shutil.copytree(GOOD, extract)
        shutil.copy(previous_load, db)
        corrupt(extract, *corruption)
        before = db_state(db)
        try:
            summary = load_extract(extract, db, today=TODAY)
        except ValidationFailed as exc:
            event(f"refused: {next(p.rule for p in exc.problems if p.is_error)}")
            assert exc.problems and any(p.is_error for p in exc.problems)
            assert db_state(db) == before
            return
        event("loaded")
        con = duckdb.connect(str(db), read_only=True)
        try:
            provenance = con.execute("select table_name, file, sha256, rows from meta.load_provenance").fetchall()
            for table, file, sha, rows in provenance:
                assert sha == hashlib.sha256((extract / file).read_bytes()).hexdigest()
                assert rows == data_rows(extract / file) == summary.rows[table]
                assert con.execute(f"select count(*) from raw.{table}").fetchall() == [(rows,)]
            loaded = {table for table, *_ in provenance}
            for table, n in summary.rows.items():
                if table not in loaded and table != "medical_claim_diagnosis":
                    assert n == 0
        finally:
            con.close()


# --- parquet folders whose parts drifted ----------------------------------------------------

CASTS = ["VARCHAR", "DOUBLE", "BIGINT", "DATE", "BOOLEAN"]


@st.composite
def part_drifts(draw):
    file = draw(st.sampled_from(TABLE_FILES))
    parts = draw(st.integers(2, 3))
    kinds = ["none", "drop_column", "cast_column", "rename_column", "add_column", "empty_part", "cell"]
    kind = draw(st.sampled_from(kinds))
    part, column, cast = draw(st.integers(0, parts - 1)), draw(st.integers(0, 10_000)), draw(st.sampled_from(CASTS))
    return file, parts, kind, part, column, cast, draw(VALUES)


def write_parts(
    extract: Path, file: str, parts: int, kind: str, drifted: int, j: int, cast: str, value: str
) -> str | None:
    """Replace ``file`` by a folder of ``parts`` parquet parts, one of which drifted; the column it touched."""
    table = file.removesuffix(".csv")
    folder = extract / table
    folder.mkdir()
    con = duckdb.connect()
    source = f"read_csv('{extract / file}', all_varchar=true, header=true)"
    header = [name for name, *_ in con.execute(f"describe select * from {source}").fetchall()]
    con.execute(f"create table t as select *, row_number() over () - 1 as _i from {source}")
    (n,) = con.execute("select count(*) from t").fetchone()
    column = header[j % len(header)]
    ref = '"' + column.replace('"', '""') + '"'
    for k in range(parts):
        select = "* exclude (_i)"
        where = f"_i * {parts} // greatest({n}, 1) = {k}"
        if k == drifted:
            if kind == "drop_column":
                select = f"* exclude (_i, {ref})"
            elif kind == "cast_column":
                select = f"* exclude (_i) replace (try_cast({ref} as {cast}) as {ref})"
            elif kind == "rename_column":
                select = f"* exclude (_i) rename ({ref} as \"{column}_x\")"
            elif kind == "add_column":
                select = "* exclude (_i), ? as extra"
            elif kind == "empty_part":
                where = "false"
            elif kind == "cell":
                first = f"(select min(_i) from t where {where})"
                select = f"* exclude (_i) replace (case when _i = {first} then ? else {ref} end as {ref})"
        params = [value] if k == drifted and kind in ("add_column", "cell") else []
        con.execute(f"copy (select {select} from t where {where}) to '{folder / f'part-{k}.parquet'}'", params)
    con.close()
    (extract / file).unlink()
    return column if kind in ("drop_column", "rename_column") or (kind == "cast_column" and cast != "VARCHAR") else None


@settings(max_examples=25, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(drift=part_drifts())
def test_parquet_parts_that_drifted_are_loaded_completely_or_not_at_all(previous_load, db_state, drift):
    from ipm_outcomes.contract import TABLES_BY_NAME

    with tempfile.TemporaryDirectory() as tmp:
        extract, db = Path(tmp) / "extract", Path(tmp) / "study.duckdb"
        shutil.copytree(GOOD, extract)
        shutil.copy(previous_load, db)
        table = drift[0].removesuffix(".csv")
        changed = write_parts(extract, *drift)
        before = db_state(db)
        # a part without a contract column, or with it as another kind of type, must be refused
        must_refuse = changed is not None and (
            changed in TABLES_BY_NAME[table].column_names or changed == "diagnosis_code_1"
        )
        try:
            summary = load_extract(extract, db, today=TODAY)
        except ValidationFailed as exc:
            event(f"refused: {next(p.rule for p in exc.problems if p.is_error)}")
            assert db_state(db) == before
            if must_refuse:
                assert any(
                    (p.severity, p.rule, p.column) == ("error", "part_schema", changed)
                    and p.file.startswith(f"{table}/part-")
                    for p in exc.problems
                )
            return
        assert not must_refuse, f"{drift} loaded"
        event("loaded")
        con = duckdb.connect(str(db), read_only=True)
        try:
            parts = con.execute(
                "select file, rows from meta.load_provenance where table_name = ? order by file", [table]
            ).fetchall()
            expected = [
                (f"{table}/{p.name}", con.execute(f"select count(*) from '{p}'").fetchall()[0][0])
                for p in sorted((extract / table).glob("*.parquet"))
            ]
            assert parts == expected
            assert summary.rows[table] == sum(n for _, n in expected)
            assert con.execute(f"select count(*) from raw.{table}").fetchall() == [(summary.rows[table],)]
        finally:
            con.close()
