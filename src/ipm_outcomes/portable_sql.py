"""The project's SQL, written once in DuckDB's dialect, checked for portability and translated per engine.

OHDSI's SqlRender solves the same problem the same way: SQL is written once in a restricted dialect and
translated for each database. Here the dialect is DuckDB's, the translator a pinned sqlglot, and the
restrictions are :data:`PORTABILITY_RULES`, each with the reason it exists. A translation applies the
project's own rewrites (:data:`REWRITES`) where sqlglot passes a construct through that the target
rejects, then generates the target's SQL in sqlglot's strict mode, so an unsupported construct is an
error here, never a silently different query there.

Values stay bound parameters in every dialect (``$name`` in DuckDB, ``:name`` in Spark SQL).

The order the files are built in is derived from the same parse (:func:`build_order`): each file's
table is built after every table it reads, so no list of files is kept by hand.
"""

from __future__ import annotations

import functools
import heapq
import re
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import sqlglot
from sqlglot import exp

from . import db
from .errors import IpmError

#: The engines the SQL is translated for, by sqlglot dialect name.
ENGINES: dict[str, str] = {"duckdb": "duckdb", "spark": "spark"}
#: The dialect the SQL files are written in.
SOURCE_DIALECT = "duckdb"
#: A GREATEST/LEAST whose arguments the author has checked can never be NULL carries this on its line,
#: followed by the reason (DuckDB and Spark skip NULL arguments; Trino and BigQuery return NULL).
NOT_NULL_WAIVER = "-- not null:"


@dataclass(frozen=True)
class Rule:
    """A construct the SQL files may not use, and why."""

    name: str
    reason: str
    find: Callable[[exp.Expression, str], list[str]]


def _nullable_greatest_least(tree: exp.Expression, text: str) -> list[str]:
    waived_lines = {i for i, line in enumerate(text.splitlines(), start=1) if NOT_NULL_WAIVER in line}
    found = []
    for node in tree.find_all(exp.Greatest, exp.Least):
        arguments = [node.this, *node.expressions]
        if all(_never_null(a) for a in arguments):
            continue
        line = _line_of(node, text)
        if line in waived_lines:
            continue
        found.append(f"line {line}: {node.sql(SOURCE_DIALECT)[:80]}")
    return found


def _never_null(node: exp.Expression) -> bool:
    if isinstance(node, exp.Literal | exp.Placeholder):
        return True
    if isinstance(node, exp.Coalesce):
        fallbacks = [node.this, *node.expressions]
        return _never_null(fallbacks[-1])
    if isinstance(node, exp.Neg | exp.Paren):
        return _never_null(node.this)
    if isinstance(node, exp.Binary) and isinstance(node, exp.Add | exp.Sub | exp.Mul):
        return _never_null(node.left) and _never_null(node.right)
    return False


def _line_of(node: exp.Expression, text: str) -> int:
    """The line of ``text`` where the call starts (sqlglot keeps no positions on every node)."""
    name = "greatest" if isinstance(node, exp.Greatest) else "least"
    first = re.escape(node.this.sql(SOURCE_DIALECT).lower())
    lines = text.lower().splitlines()
    for pattern in (rf"\b{name}\s*\(\s*{first}", rf"\b{name}\s*\("):
        for i, line in enumerate(lines, start=1):
            if re.search(pattern, line):
                return i
    return 0


def _interpolation(tree: exp.Expression, text: str) -> list[str]:
    return [f"line {i}: {line.strip()[:80]}" for i, line in enumerate(text.splitlines(), 1) if re.search(r"\{[A-Za-z_]\w*\}", line)]


def _select_star_from_raw(tree: exp.Expression, text: str) -> list[str]:
    found = []
    for select in tree.find_all(exp.Select):
        if any(isinstance(e, exp.Star) for e in select.expressions):
            source = select.args.get("from_") or select.args.get("from")
            table = source.find(exp.Table) if source is not None else None
            if table is not None and table.db == "raw":
                found.append(f"select * from raw.{table.name}")
    return found


#: What the SQL files may not contain, with the reason beside each rule.
PORTABILITY_RULES: tuple[Rule, ...] = (
    Rule(
        "nullable_greatest_least",
        "GREATEST/LEAST with an argument that can be NULL: DuckDB and Spark skip NULL arguments, but "
        "sqlglot emits the plain function for Trino and BigQuery, where one NULL makes the result NULL "
        "(an extract without pharmacy or PRO rows would silently lose its data end date). Make each "
        f"argument non-null (coalesce with a literal or parameter), or say why it cannot be NULL after "
        f"'{NOT_NULL_WAIVER}' on the same line.",
        _nullable_greatest_least,
    ),
    Rule(
        "string_interpolation",
        "A {placeholder} means a value or name formatted into the text; values are bound parameters ($name).",
        _interpolation,
    ),
    Rule(
        "select_star_from_raw",
        "select * from a raw table depends on the extract's column order and its number of diagnosis "
        "columns, which differ between sources and engines; name the columns.",
        _select_star_from_raw,
    ),
)


def _drop_materialized_hint(tree: exp.Expression) -> exp.Expression:
    for cte in tree.find_all(exp.CTE):
        if cte.args.get("materialized") is not None:
            cte.set("materialized", None)
    return tree


def _infinity() -> exp.Expression:
    return exp.cast(exp.Literal.string("Infinity"), "double")


def _spark_functions(tree: exp.Expression) -> exp.Expression:
    """DuckDB functions that sqlglot writes under their DuckDB names, which Spark does not have.

    Each replacement means the same for every input, NULL included (the validation rules of
    :mod:`ipm_outcomes.validation` use all of them):

    * ``regexp_full_match(s, p)``: the whole string matches, i.e. ``s RLIKE '^(?:p)$'``;
    * ``strlen(s)``, the length in bytes: ``octet_length(s)``;
    * ``isinf(x)``: ``abs(x) = Infinity``; ``isfinite(x)``: neither NaN nor infinite;
    * ``trunc(x)`` of a number, which sqlglot writes as ``CAST(x AS BIGINT)``: Spark's ANSI mode
      raises an error where that overflows (an amount of 1e20 in a whole-number column), so the cast
      is a ``TRY_CAST`` (NULL when out of range, as the whole-number type rule then reports).
    """

    def rewrite(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.RegexpFullMatch):
            pattern = node.expression
            if isinstance(pattern, exp.Literal) and pattern.is_string:
                anchored: exp.Expression = exp.Literal.string(f"^(?:{pattern.this})$")
            else:
                anchored = exp.Concat(
                    expressions=[exp.Literal.string("^(?:"), pattern.copy(), exp.Literal.string(")$")]
                )
            return exp.RegexpLike(this=node.this.copy(), expression=anchored)
        if isinstance(node, exp.IsInf):
            return exp.EQ(this=exp.Abs(this=node.this.copy()), expression=_infinity())
        if isinstance(node, exp.Anonymous) and node.name.lower() == "isfinite" and len(node.expressions) == 1:
            x = node.expressions[0]
            infinite = exp.EQ(this=exp.Abs(this=x.copy()), expression=_infinity())
            return exp.Paren(this=exp.Not(this=exp.Paren(this=exp.Or(this=exp.IsNan(this=x.copy()), expression=infinite))))
        if isinstance(node, exp.Anonymous) and node.name.lower() == "strlen" and len(node.expressions) == 1:
            return exp.Anonymous(this="octet_length", expressions=[node.expressions[0].copy()])
        if isinstance(node, exp.Trunc) and not node.args.get("decimals"):
            return exp.TryCast(this=node.this.copy(), to=exp.DataType.build("bigint"), safe=True)
        return node

    return tree.transform(rewrite)


#: The project's rewrites, per engine: constructs sqlglot passes through unchanged that the engine
#: rejects. ``WITH ... AS MATERIALIZED`` makes DuckDB compute a CTE once (a 1M-person build relies on it
#: in marts/qol_outcome.sql); Spark has no such hint and refuses the statement. DuckDB functions that
#: Spark lacks are written as Spark's equivalents (:func:`_spark_functions`).
REWRITES: dict[str, tuple[Callable[[exp.Expression], exp.Expression], ...]] = {
    "duckdb": (),
    "spark": (_drop_materialized_hint, _spark_functions),
}


def lint(sql: str) -> list[tuple[str, str]]:
    """Every breach of :data:`PORTABILITY_RULES` in one SQL text, as (rule name, where)."""
    tree = _parse(sql, "(sql)")
    return [(rule.name, where) for rule in PORTABILITY_RULES for where in rule.find(tree, sql)]


def _parse(sql: str, name: str) -> exp.Expression:
    try:
        trees = sqlglot.parse(sql, read=SOURCE_DIALECT)
    except sqlglot.errors.ParseError as error:
        raise IpmError(f"{name}: does not parse as {SOURCE_DIALECT} SQL: {error}") from None
    statements = [t for t in trees if t is not None]
    if len(statements) != 1:
        raise IpmError(f"{name}: holds {len(statements)} statements; each SQL file is one SELECT")
    return statements[0]


def translate(
    sql: str,
    engine: str,
    *,
    tables: Mapping[str, str] | None = None,
    name: str = "(sql)",
) -> str:
    """``sql`` (one SELECT in DuckDB's dialect) as ``engine``'s SQL.

    Parameters
    ----------
    tables
        ``schema`` -> schema it lives in on the engine (e.g. ``{"raw": "claims_2026"}``), or
        ``schema.table`` -> ``schema.table`` for a single table; names not listed stay as written.
    name
        Named in errors (the file the SQL came from).

    Raises
    ------
    IpmError
        When the SQL does not parse, or the engine cannot express something in it (sqlglot's strict mode).
    """
    if engine not in ENGINES:
        raise IpmError(f"unknown engine {engine!r}; engines: {', '.join(ENGINES)}")
    if engine == SOURCE_DIALECT and not tables:
        return sql
    tree = _parse(sql, name)
    for rewrite in REWRITES[engine]:
        tree = rewrite(tree)
    if tables:
        tree = _rename_tables(tree, tables)
    try:
        return tree.sql(dialect=ENGINES[engine], pretty=True, unsupported_level=sqlglot.ErrorLevel.RAISE)
    except sqlglot.errors.UnsupportedError as error:
        raise IpmError(f"{name}: cannot be written as {engine} SQL: {error}") from None


def _rename_tables(tree: exp.Expression, tables: Mapping[str, str]) -> exp.Expression:
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    for table in tree.find_all(exp.Table):
        if not table.db and table.name in ctes:
            continue
        full = f"{table.db}.{table.name}" if table.db else table.name
        if full in tables:
            schema, _, name = tables[full].rpartition(".")
            table.set("this", exp.to_identifier(name))
            table.set("db", exp.to_identifier(schema) if schema else None)
        elif table.db in tables:
            table.set("db", exp.to_identifier(tables[table.db]))
    return tree


def translated_layers(
    engine: str, layers: Mapping[str, list[str]], tables: Mapping[str, str] | None = None
) -> Iterator[tuple[str, str, str]]:
    """(layer, table, SQL for ``engine``) for every packaged SQL file of ``layers``, in build order."""
    for layer, order in layers.items():
        files = dict(db.sql_files(layer))
        for table in order:
            yield layer, table, translate(files[table], engine, tables=tables, name=f"sql/{layer}/{table}.sql")


def tables_read(sql: str, name: str = "(sql)") -> set[str]:
    """The tables one SQL text reads, as ``schema.table`` (the names of its CTEs are not tables).

    Raises
    ------
    IpmError
        When the SQL does not parse, or names a table without its schema (the build order and the
        engines' schema mapping both rely on every table being qualified).
    """
    tree = _parse(sql, name)
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    read = set()
    for table in tree.find_all(exp.Table):
        if table.db:
            read.add(f"{table.db}.{table.name}")
        elif table.name not in ctes:
            raise IpmError(f"{name}: reads table {table.name!r} without its schema; write <schema>.{table.name}")
    return read


def build_order(
    layers: Sequence[str],
    *,
    root: str | Path | None = None,
    inputs: Collection[str] | None = None,
) -> dict[str, list[str]]:
    """The tables of each SQL layer in the order to build them, derived from the tables each file reads.

    A layer is a folder of ``<table>.sql`` files whose tables go to the schema of the same name; the
    layers are built in the order given. Within a layer a table comes after every table of that layer
    it reads; tables that could be built at the same point come in name order, so the order is the
    same on every run.

    Parameters
    ----------
    layers
        The layers, in the order they are built (e.g. ``db.SQL_LAYERS``).
    root
        The folder holding ``<layer>/`` folders; the packaged SQL (``ipm_outcomes/sql``) when not given.
    inputs
        The tables (``schema.table``) that exist before the build; when given, a file reading any other
        table outside the layers is an error. Tables of the layers themselves are always checked.

    Returns
    -------
    dict
        layer -> its table names in build order, the layers in the order given.

    Raises
    ------
    IpmError
        One line naming the file: a table read that no file builds (or that a later layer builds), a
        table outside the layers that is not among ``inputs``, or files that read each other in a cycle.
    """
    if root is None and inputs is None:
        return {layer: list(tables) for layer, tables in _packaged_build_order(tuple(layers)).items()}
    return _build_order(tuple(layers), root, inputs)


@functools.cache
def _packaged_build_order(layers: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    # The packaged files do not change while the package is loaded: parse them once per process.
    return {layer: tuple(tables) for layer, tables in _build_order(layers, None, None).items()}


def _build_order(
    layers: tuple[str, ...], root: str | Path | None, inputs: Collection[str] | None
) -> dict[str, list[str]]:
    files = {layer: dict(db.sql_files(layer, root)) for layer in layers}
    folder = Path("sql" if root is None else root)
    order: dict[str, list[str]] = {}
    for position, layer in enumerate(layers):
        same_layer: dict[str, set[str]] = {}
        for table, sql in files[layer].items():
            path = str(folder / layer / f"{table}.sql")
            same_layer[table] = set()
            for read in sorted(tables_read(sql, path)):
                schema, _, name = read.partition(".")
                if schema == layer:
                    if name not in files[layer]:
                        raise IpmError(f"{path}: reads {read}, but no file {folder / layer / name}.sql builds it")
                    same_layer[table].add(name)
                elif schema in layers:
                    if layers.index(schema) > position:
                        raise IpmError(f"{path}: reads {read}, which the later layer {schema} builds")
                    if name not in files[schema]:
                        raise IpmError(f"{path}: reads {read}, but no file {folder / schema / name}.sql builds it")
                elif inputs is not None and read not in inputs:
                    raise IpmError(f"{path}: reads {read}, which is neither built by a SQL file nor an input")
        order[layer] = _topological(folder / layer, same_layer)
    return order


def _topological(folder: Path, reads: Mapping[str, set[str]]) -> list[str]:
    """Kahn's algorithm, the ready table with the smallest name first."""
    waiting = {table: set(needs) for table, needs in reads.items()}
    readers: dict[str, list[str]] = {table: [] for table in reads}
    for table, needs in reads.items():
        for need in needs:
            readers[need].append(table)
    ready = [table for table, needs in waiting.items() if not needs]
    heapq.heapify(ready)
    order = []
    while ready:
        table = heapq.heappop(ready)
        order.append(table)
        for reader in readers[table]:
            waiting[reader].discard(table)
            if not waiting[reader]:
                heapq.heappush(ready, reader)
    if len(order) < len(reads):
        raise IpmError(_cycle_message(folder, {t: n for t, n in waiting.items() if n}))
    return order


def _cycle_message(folder: Path, waiting: Mapping[str, set[str]]) -> str:
    # Every table left waits for another table left, so walking from one always comes back round.
    path = [min(waiting)]
    while path.count(path[-1]) < 2:
        path.append(min(waiting[path[-1]]))
    cycle = path[path.index(path[-1]) :]
    steps = ", ".join(f"{folder / a}.sql reads {folder.name}.{b}" for a, b in zip(cycle, cycle[1:]))
    return f"{folder}: the files read each other in a cycle ({steps}); a table cannot be built before the tables it reads"
