"""db.py: parameter binding and the SQL-layer runner."""

import duckdb
import pytest

from ipm_outcomes import db
from ipm_outcomes.errors import IpmError


def test_parameters_in_comments_are_not_uses():
    sql = "-- counts rows newer than $since\nselect * from t where d > $cutoff and s = '$x' -- $ignored\n"
    assert db.sql_parameters(sql) == {"cutoff", "x"}


def test_bind_passes_only_what_the_sql_uses():
    assert db.bind("select $a + $a", {"a": 1, "b": 2}) == {"a": 1}


def test_bind_names_missing_parameters():
    with pytest.raises(IpmError, match="not given: a, c"):
        db.bind("select $a, $c, $b", {"b": 1})


def test_create_table_from_select_binds_values():
    con = duckdb.connect()
    db.create_table_from_select(con, "marts", "t", "select $n::integer as n, $s as s", {"n": 3, "s": "x", "z": 0})
    assert con.execute("select * from marts.t").fetchall() == [(3, "x")]


def test_read_only_connect_to_a_missing_file_says_what_to_do(tmp_path):
    with pytest.raises(IpmError, match="run `ipm-outcomes ingest` first"):
        db.connect(tmp_path / "absent.duckdb", read_only=True)
