"""Fixtures shared across test folders: small, generic, no study logic."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import duckdb
import pytest

FIXTURES = Path(__file__).parent / "fixtures"
GOOD_EXTRACT = FIXTURES / "extract_good"


@pytest.fixture()
def good_extract(tmp_path: Path) -> Path:
    """A private copy of the hand-made good extract (tests/fixtures/extract_good), safe to edit."""
    target = tmp_path / "extract"
    shutil.copytree(GOOD_EXTRACT, target)
    return target


def database_state(path: Path) -> dict[str, tuple] | None:
    """Every table of a DuckDB file: its column names and types, row count and a hash of its sorted rows.

    ``None`` when the file does not exist. Two equal states mean equal content, whatever the row order.
    """
    path = Path(path)
    if not path.exists():
        return None
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables"
            " where table_type = 'BASE TABLE' order by all"
        ).fetchall()
        state = {}
        for schema, name in tables:
            ref = f'"{schema}"."{name}"'
            columns = tuple(con.execute(f"select column_name, column_type from (describe {ref})").fetchall())
            rows = con.execute(f"select * from {ref} order by all").fetchall()
            state[f"{schema}.{name}"] = (columns, len(rows), hashlib.sha256(repr(rows).encode()).hexdigest())
        return state
    finally:
        con.close()


@pytest.fixture()
def db_state():
    """:func:`database_state` as a fixture: ``db_state(path)`` -> comparable snapshot of a DuckDB file."""
    return database_state


@pytest.fixture(scope="session")
def fast_spec():
    """The shipped study spec with 10 bootstrap replicates: whole-pipeline tests in seconds, not minutes."""
    from ipm_outcomes.spec import load_spec, spec_from_dict

    data = load_spec().to_toml_dict()
    data["analysis"]["bootstrap_replicates"] = 10
    return spec_from_dict(data)
