"""DuckDB access: open a database file with a clear error when it is busy, and run the SQL layers.

SQL lives in ``.sql`` files under ``ipm_outcomes/sql/<layer>/<table>.sql``: one SELECT per file,
the file name is the table it creates, values are bound parameters (``$name``), never formatted in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path

import duckdb

from .errors import DatabaseInUseError, IpmError

SQL_LAYERS = ("staging", "intermediate", "marts")
_PARAMETER = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_LINE_COMMENT = re.compile(r"--[^\n]*")


def connect(
    path: str | Path,
    *,
    read_only: bool = False,
    threads: int | None = None,
    memory_limit: str | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open a DuckDB database file.

    Raises :class:`DatabaseInUseError` when another process holds the file (DuckDB allows one
    writer process), instead of DuckDB's lock message.
    """
    path = Path(path)
    if read_only and not path.exists():
        raise IpmError(f"{path}: no such database; run `ipm-outcomes ingest` first")
    config: dict[str, str | int] = {}
    if threads:
        config["threads"] = threads
    if memory_limit:
        config["memory_limit"] = memory_limit
    try:
        return duckdb.connect(str(path), read_only=read_only, config=config)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise DatabaseInUseError(
                f"{path}: database is in use by another process; wait for it to finish and try again"
            ) from exc
        raise IpmError(f"{path}: cannot open database: {exc}") from exc


def sql_parameters(sql: str) -> set[str]:
    """Names of the ``$name`` parameters a SQL text uses (a ``$name`` in a ``--`` comment is not a use)."""
    return set(_PARAMETER.findall(_LINE_COMMENT.sub("", sql)))


def bind(sql: str, params: Mapping[str, object]) -> dict[str, object]:
    """The subset of ``params`` the SQL uses; a missing one is an error naming it."""
    needed = sql_parameters(sql)
    missing = sorted(needed - set(params))
    if missing:
        raise IpmError(f"SQL needs parameters that were not given: {', '.join(missing)}")
    return {name: params[name] for name in needed}


def sql_files(layer: str, root: str | Path | None = None) -> list[tuple[str, str]]:
    """(table name, SQL text) for each file of a SQL layer, in file-name order.

    The layer is the packaged folder ``ipm_outcomes/sql/<layer>``, or ``root/<layer>`` when ``root`` is given.
    """
    folder = (resources.files("ipm_outcomes") / "sql" if root is None else Path(root)) / layer
    entries = sorted((p for p in folder.iterdir() if p.name.endswith(".sql")), key=lambda p: p.name)
    return [(entry.name[: -len(".sql")], entry.read_text()) for entry in entries]


def create_table_from_select(
    con: duckdb.DuckDBPyConnection, schema: str, table: str, select_sql: str, params: Mapping[str, object]
) -> None:
    """``create or replace table schema.table as <select>`` with bound parameters."""
    con.execute(f"create schema if not exists {schema}")
    con.execute(f"create or replace table {schema}.{table} as\n{select_sql}", bind(select_sql, params))


def run_layers(
    con: duckdb.DuckDBPyConnection,
    params: Mapping[str, object],
    layers: Iterable[str] = SQL_LAYERS,
    ordered_tables: Mapping[str, list[str]] | None = None,
) -> list[str]:
    """Create the tables of each SQL layer in order; returns ``schema.table`` names created.

    Within a layer, files run in the order given by ``ordered_tables[layer]`` when present (for
    tables that read other tables of the same layer), otherwise in file-name order.
    """
    created = []
    for layer in layers:
        files = dict(sql_files(layer))
        order = (ordered_tables or {}).get(layer) or sorted(files)
        for table in order:
            create_table_from_select(con, layer, table, files[table], params)
            created.append(f"{layer}.{table}")
    return created
