"""The SQL build order, derived from the tables each file reads (portable_sql.build_order)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ipm_outcomes import cohort, contract, db
from ipm_outcomes.errors import IpmError
from ipm_outcomes.portable_sql import build_order, tables_read
from ipm_outcomes.spec import load_spec


def _write(root: Path, files: dict[str, str]) -> Path:
    for relative, sql in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"-- grain: one row per thing\n{sql}\n")
    return root


def test_miniature_layers_build_in_the_order_their_reads_require(tmp_path):
    root = _write(
        tmp_path,
        {
            "one/a.sql": "with d as (select x from one.c) select x from d",  # the CTE d is not the table one.d
            "one/b.sql": "select x from raw.x",
            "one/c.sql": "select x from raw.x join ref.y using (x)",
            "one/d.sql": "select a.x from one.a as a join (select x from one.b) as b using (x)",
            "two/y.sql": "select x from two.z union all select x from one.a",
            "two/z.sql": "select x from one.d",
        },
    )
    expected = {"one": ["b", "c", "a", "d"], "two": ["z", "y"]}
    assert build_order(["one", "two"], root=root) == expected
    assert build_order(["one", "two"], root=root, inputs={"raw.x", "ref.y"}) == expected


def test_tables_read_are_the_schema_qualified_tables_in_every_subquery():
    assert tables_read("select 1 from s.b, s.a where exists (select 1 from t.c)") == {"s.a", "s.b", "t.c"}


def test_a_cycle_is_refused_naming_the_files(tmp_path):
    root = _write(
        tmp_path,
        {
            "one/a.sql": "select x from one.b",
            "one/b.sql": "select x from one.c",
            "one/c.sql": "select x from one.a",
            "one/d.sql": "select x from raw.x",
        },
    )
    with pytest.raises(IpmError) as error:
        build_order(["one"], root=root)
    message = str(error.value)
    assert "\n" not in message
    folder = root / "one"
    assert message == (
        f"{folder}: the files read each other in a cycle ({folder}/a.sql reads one.b, {folder}/b.sql reads one.c,"
        f" {folder}/c.sql reads one.a); a table cannot be built before the tables it reads"
    )


def test_a_file_reading_its_own_table_is_a_cycle(tmp_path):
    root = _write(tmp_path, {"one/a.sql": "select x from one.a"})
    with pytest.raises(IpmError, match=r"cycle \(.*one/a\.sql reads one\.a\)"):
        build_order(["one"], root=root)


@pytest.mark.parametrize(
    "files, message",
    [
        ({"one/a.sql": "select x from one.missing"}, r"one/a\.sql: reads one\.missing, but no file .*one/missing\.sql"),
        (
            {"one/a.sql": "select x from two.b", "two/b.sql": "select 1 as x"},
            r"one/a\.sql: reads two\.b, which the later layer two builds",
        ),
        (
            {"one/a.sql": "select 1 as x", "two/b.sql": "select x from one.nope"},
            r"two/b\.sql: reads one\.nope, but no file .*one/nope\.sql",
        ),
        ({"one/a.sql": "select x from lonely"}, r"one/a\.sql: reads table 'lonely' without its schema"),
    ],
    ids=["same layer", "later layer", "earlier layer", "no schema"],
)
def test_a_read_of_a_table_nothing_builds_is_refused_naming_the_file(tmp_path, files, message):
    root = _write(tmp_path, {"one/keep.sql": "select 1 as x", "two/keep.sql": "select 1 as x", **files})
    with pytest.raises(IpmError, match=message):
        build_order(["one", "two"], root=root)


def test_a_read_outside_the_layers_must_be_an_input_when_inputs_are_given(tmp_path):
    root = _write(tmp_path, {"one/a.sql": "select x from raw.x join raw.gone using (x)"})
    assert build_order(["one"], root=root) == {"one": ["a"]}
    with pytest.raises(IpmError, match=r"one/a\.sql: reads raw\.gone, which is neither built by a SQL file nor an input"):
        build_order(["one"], root=root, inputs={"raw.x"})


# -- the packaged layers ------------------------------------------------------------------------------

#: What the cohort layers read from outside them: the loaded extract and the reference tables of the build.
COHORT_INPUTS = {f"raw.{t.name}" for t in contract.TABLES} | {"raw.medical_claim_diagnosis", "ref.valueset"}
COHORT_INPUTS |= {f"ref.{name}" for name in cohort.reference_rows(load_spec())}


def _regex_reads(text: str) -> set[str]:
    # An oracle independent of sqlglot: every schema-qualified name of a built or loaded schema in the code.
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    schemas = "raw|ref|staging|intermediate|marts|omop|cdm|omop_map"
    return {f"{s}.{t}" for s, t in re.findall(rf"\b({schemas})\.([a-z_0-9]+)\b", code)}


@pytest.mark.parametrize("layers", [db.SQL_LAYERS, ("omop",)], ids=["cohort", "omop"])
def test_packaged_order_builds_every_file_once_after_everything_it_reads(layers):
    order = build_order(layers, inputs=COHORT_INPUTS if layers == db.SQL_LAYERS else None)
    assert list(order) == list(layers)
    built: set[str] = set()
    for layer in layers:
        files = dict(db.sql_files(layer))
        assert sorted(order[layer]) == sorted(files)
        for table in order[layer]:
            reads = _regex_reads(files[table])
            assert tables_read(files[table]) == reads, f"{layer}/{table}.sql"
            in_layers = {r for r in reads if r.split(".")[0] in layers}
            assert in_layers <= built, f"{layer}/{table}.sql reads {in_layers - built} before they are built"
            built.add(f"{layer}.{table}")


def test_packaged_order_is_a_fresh_copy_each_time():
    first = build_order(db.SQL_LAYERS)
    first["staging"].clear()
    assert build_order(db.SQL_LAYERS)["staging"]
