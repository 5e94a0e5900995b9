"""Validate an extract against the input contract and load it into DuckDB, all or nothing.

Every file is read by DuckDB (CSV as text, so a bad value is reported rather than crashing the
reader; parquet with its own types), never by pandas, so memory stays bounded for extracts larger
than RAM (DuckDB spills to ``<db>.tmp``). The load is one transaction from the first check to the
commit. A CSV is parsed once, straight into its ``raw`` table inside it (its text as read, its
dates and numbers cast, the text of values that are not well-formed and the extra columns kept
beside them for the checks); the checks scan that table, and the write only normalises, in place,
the text columns whose normalisation changes some value. A parquet file is checked where it lies
and copied into its table by the write. Each table is checked in one scan that counts every rule
at once; only rules that fail are scanned again for example rows. The scan is kept cheap because it
is most of the work besides storing the rows:

* codes, enumerations, dates and counts repeat a few thousand values over millions of rows, so
  the scan takes a histogram of each such column and its rules are evaluated once per distinct
  value, weighted by the value's count;
* key uniqueness is counted on 64-bit hashes of the keys (distinct hashes prove distinct keys;
  only a repeated hash is checked again on the keys themselves);
* the scan also finds which text columns are clean (trimming, case-folding and dropping dots
  change no value), and the write leaves those as read instead of normalising every row;
* the identifier-value patterns of a free-text column (regular expressions) are counted only when
  the column's cheap screen (a character every match holds) passes on some row, in a second scan
  of those rows.

A CSV that fails a rule is checked again from its text (copied as read, insertion-ordered, so row
numbers are reliable): its messages show every value and row number as written in the file, not
as typed. A CSV with malformed lines is read as text from the start. A DuckDB error ends a
transaction, so when DuckDB cannot read some file, the transaction is rolled back and the whole
extract is checked again outside one (every CSV as text), which turns the failure into a problem.

Nothing in the database changes unless every rule passes: the transaction replaces every ``raw``
table, defines the view ``raw.medical_claim_diagnosis``, records ``meta.load_provenance`` and
``meta.load``, and commits; any failure (a broken rule, an error, an interruption, kill -9) leaves
the previous load untouched. The connection is held from start to end, so another process cannot
open the database meanwhile (:class:`~ipm_outcomes.errors.DatabaseInUseError`).
"""

from __future__ import annotations

import bisect
import csv
import functools
import gzip
import io
import json
import os
import re
import shutil
import tempfile
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb

from . import db, lineage
from .contract import (
    CSV_MAX_LINE_BYTES,
    DIAGNOSIS_COLUMN_PREFIX,
    META_SCHEMA,
    RAW_SCHEMA,
    TABLES,
    TABLES_BY_NAME,
    Column,
    Table,
    drop_raw_relation,
    medical_claim_diagnosis_view_ddl,
    raw_table_ddl,
)
from .disclosure import DisclosurePolicy
from .errors import IpmError, ValidationFailed
from .fingerprint import sha256_file
from .progress import StageProgress
from .validation import (
    ERROR,
    ORPHAN_JOIN_COLUMN,
    WARNING,
    Check,
    Problem,
    ProblemList,
    column_checks,
    clean_text,
    count_by_severity,
    diagnosis_checks,
    identifier_column_reason,
    identifier_value_checks,
    ill_formed_text,
    normalise_expr,
    orphan_check,
    gated,
    problems_table,
    quote_ident,
    quote_literal,
    staged_type_check,
    table_checks,
    typed_expr,
    typed_name,
)

__all__ = [
    "LoadSummary",
    "Problem",
    "ValidationFailed",
    "load_extract",
    "problems_table",
    "validate_extract",
    "write_failure_report",
]

_DIAGNOSIS_COLUMN = re.compile(rf"^{DIAGNOSIS_COLUMN_PREFIX}([1-9][0-9]*)$")
_CSV_OPTIONS = (
    f"header=true, auto_detect=false, delim=',', quote='\"', escape='\"', max_line_size={CSV_MAX_LINE_BYTES}"
)
#: Example rows fetched per failing rule.
EXAMPLES = 5
#: Above this many malformed CSV lines, row numbers of other problems are not corrected for them.
_MAX_REJECTS_FOR_ROW_MAPPING = 100_000


@dataclass
class LoadSummary:
    """What a load wrote: rows per ``raw`` table, absent optional tables, warnings and wall time."""

    extract_dir: Path
    db_path: Path
    rows: dict[str, int]
    absent_tables: tuple[str, ...]
    warnings: list[Problem] = field(default_factory=list)
    seconds: float = 0.0
    reference_date: date | None = None

    def describe(self, policy: DisclosurePolicy | None = DisclosurePolicy()) -> str:
        """A few lines for people: rows per table, what is unavailable, the warnings.

        A warning that counts persons (``orphan_person``) passes the disclosure gate of ``policy``: a
        count of 1 to min_cell_size - 1 persons prints as ``<11``, without the example identifier or the
        row count that would tell it. ``policy=None`` prints them as found (``--show-small-counts``).
        """
        lines = [f"Loaded {self.extract_dir} into {self.db_path} in {self.seconds:.1f} s"]
        if self.reference_date is not None:
            lines.append(
                f"  dates are shifted: plausibility checked against the reference date {self.reference_date.isoformat()}"
            )
        width = max(len(name) for name in self.rows)
        for name, n in self.rows.items():
            # rows of person-level tables can stand for a handful of persons: small counts pass the gate
            shown = f"{n:,}" if policy is None else policy.format_count(n)
            lines.append(f"  {name:<{width}}  {shown:>12} rows")
        for name in self.absent_tables:
            lines.append(f"  absent: {name} (unavailable: {TABLES_BY_NAME[name].unavailable_without})")
        if self.warnings:
            lines.append(f"{len(self.warnings)} warning{'s' if len(self.warnings) != 1 else ''}:")
            lines.extend(f"  - {_gated_line(p, policy)}" for p in self.warnings)
        return "\n".join(lines)


def _gated_line(problem: Problem, policy: DisclosurePolicy | None) -> str:
    """One warning line, through the disclosure gate for counts of persons."""
    return gated(problem, policy).one_line()


# --- finding the files ----------------------------------------------------------------------


@dataclass
class _Source:
    """One contract table found in the extract and what we learnt about it."""

    table: Table
    path: Path
    rel: str
    kind: str  # "csv" or "parquet"
    files: list[Path]
    header: list[str] = field(default_factory=list)
    types: dict[str, str] = field(default_factory=dict)
    columns: list[Column] = field(default_factory=list)
    diagnosis: list[tuple[int, str]] = field(default_factory=list)
    extras: list[str] = field(default_factory=list)
    rows: int = 0
    usable: bool = True
    staged: bool = False
    #: A CSV parsed once into its ``raw`` table, inside the load's transaction (text columns as read,
    #: the others typed, with the text of ill-formed values and the extra columns beside them): the
    #: checks read that table.
    typed: bool = False
    #: The ``raw`` table holds this file's rows as parsed: the write finishes it instead of inserting.
    in_raw: bool = False
    #: ``rowid`` of the file's first row in its insertion-ordered copy (rows a transaction has not
    #: committed are numbered from a large offset, in file order). A ``raw`` table parsed from the
    #: file keeps no order: an orphan warning numbers its rows in a parse of ``person_id``.
    row_base: int = 0
    rejected_rows: list[int] = field(default_factory=list)
    #: Text columns whose normalisation changes no value: the write copies them as they are.
    clean: set[str] = field(default_factory=set)
    #: Non-empty values per diagnosis column after normalisation (rows of the diagnosis view).
    diagnoses_present: dict[str, int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.table.name

    @property
    def view(self) -> str:
        return f"_v_{self.name}"

    def has(self, *names: str) -> bool:
        present = {c.name for c in self.columns} | {c for _, c in self.diagnosis}
        return all(n in present for n in names)

    def display(self, file: str | None) -> str:
        """Path of a file relative to the extract (parquet parts report their own file)."""
        if file is None or self.kind == "csv":
            return self.rel
        return f"{self.name}/{Path(file).name}" if self.path.is_dir() else self.rel


class _Unreadable(Exception):
    pass


def _table_name_of(entry: Path) -> tuple[str, str] | None:
    """(table name, kind) if the entry has a contract file form, else None."""
    name = entry.name
    if entry.is_dir():
        return name, "parquet"
    for suffix, kind in ((".parquet", "parquet"), (".csv.gz", "csv"), (".csv", "csv")):
        if name.endswith(suffix):
            return name[: -len(suffix)], kind
    return None


def _discover(extract_dir: Path, problems: ProblemList) -> dict[str, _Source]:
    if not extract_dir.is_dir():
        raise IpmError(f"{extract_dir}: no such extract folder; give the folder that holds eligibility.csv etc.")
    found: dict[str, list[tuple[Path, str]]] = {}
    for entry in sorted(extract_dir.iterdir()):
        if entry.name.startswith("."):
            continue
        named = _table_name_of(entry)
        if named is None or named[0] not in TABLES_BY_NAME:
            problems.add(
                WARNING,
                entry.name + ("/" if entry.is_dir() else ""),
                None,
                None,
                "unknown_file",
                "not a contract table; ignored",
            )
            continue
        found.setdefault(named[0], []).append((entry, named[1]))
    sources: dict[str, _Source] = {}
    for table in TABLES:
        entries = found.get(table.name, [])
        if len(entries) > 1:
            names = ", ".join(e.name for e, _ in entries)
            problems.add(
                ERROR,
                names,
                table.name,
                None,
                "ambiguous_table",
                f"{table.name} is given more than once ({names}); keep one",
            )
            continue
        if not entries:
            if table.required:
                near = [e.name for e in extract_dir.iterdir() if e.name.lower().startswith(table.name)]
                hint = f"; found {', '.join(sorted(near))}: file names must be lower case" if near else ""
                problems.add(
                    ERROR,
                    f"{table.name}.csv",
                    table.name,
                    None,
                    "missing_table",
                    f"required table {table.name} is missing (give {table.name}.csv, .csv.gz, .parquet or a "
                    f"folder of parquet parts){hint}",
                )
            continue
        path, kind = entries[0]
        files = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
        rel = path.name + ("/" if path.is_dir() else "")
        sources[table.name] = _Source(table=table, path=path, rel=rel, kind=kind, files=files)
    return sources


def _csv_header(path: Path) -> list[str]:
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as raw:
            first = raw.readline()
    except (OSError, EOFError) as exc:
        raise _Unreadable(f"cannot be read: {exc}") from exc
    if not first.strip():
        raise _Unreadable("is empty; a table needs at least a header line")
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _Unreadable("header is not UTF-8 text; save the file as UTF-8") from exc
    return next(csv.reader(io.StringIO(text)))


def _path_literal(path: Path) -> str:
    return quote_literal(str(path.resolve()))


def _reader_sql(src: _Source, *, rejects: bool) -> str:
    """A SELECT giving ``_file``, ``_row`` and every column of the file as stored."""
    if src.kind == "parquet":
        files = ", ".join(_path_literal(p) for p in src.files)
        return (
            "select _file, file_row_number + 1 as _row, * exclude (_file, file_row_number) from read_parquet("
            f"[{files}], filename='_file', file_row_number=true, union_by_name=true)"
        )
    if src.typed:
        stored = [quote_ident(c.name) for c in src.columns]
        stored += [quote_ident(_TEXT_PREFIX + c.name) for c in src.columns if c.type != "VARCHAR"]
        stored += [quote_ident(name) for _, name in src.diagnosis]
        stored += [f"{quote_ident(_stored_extra(i))} as {quote_ident(name)}" for i, name in enumerate(src.extras)]
        # rows are stored in no particular order: an orphan warning numbers them (_numbered_persons_sql)
        return (
            f"select {quote_literal(src.rel)} as _file, NULL::BIGINT as _row, {', '.join(stored)}"
            f" from {RAW_SCHEMA}.{src.name}"
        )
    if src.staged:
        # rowid of an insertion-ordered copy is the (well-formed) row's position in the file
        return f"select {quote_literal(src.rel)} as _file, rowid - {src.row_base - 1} as _row, * from _stg_{src.name}"
    return f"select {quote_literal(src.rel)} as _file, NULL::BIGINT as _row, * from {_read_csv_sql(src, rejects)}"


def _read_csv_sql(src: _Source, rejects: bool | str) -> str:
    columns = ", ".join(f"{quote_literal(c)}: 'VARCHAR'" for c in src.header)
    extra = ""
    if rejects:
        tag = rejects if isinstance(rejects, str) else "rej"
        extra = f", store_rejects=true, rejects_table='_{tag}_{src.name}', rejects_scan='_{tag}scan_{src.name}'"
    return f"read_csv({_path_literal(src.path)}, {_CSV_OPTIONS}, columns={{{columns}}}{extra})"


def _inspect(con: duckdb.DuckDBPyConnection, src: _Source, problems: ProblemList, allow_identifiers: bool) -> None:
    """Read the header, match it to the contract, and report missing, extra and identifier columns."""
    table = src.table
    renamed: set[str] = set()  # later copies of a duplicated header name, read under a new name
    try:
        if src.kind == "csv":
            header = _csv_header(src.path)
            seen: dict[str, int] = {}
            names = []
            named = [i for i, name in enumerate(header) if name.strip()]
            for i, name in enumerate(header):
                if not name.strip():
                    # read under a name of its own; never loaded (an unnamed column cannot be matched)
                    trailing = not named or i > named[-1]
                    problems.add(
                        WARNING if trailing else ERROR,
                        src.rel,
                        table.name,
                        None,
                        "blank_column_name",
                        f"the last column ({i + 1}) has no name, as when every line ends with a comma; ignored"
                        if trailing
                        else f"column {i + 1} of the header has no name; name it or remove the column",
                    )
                    name = f"_blank_{i + 1}"
                    renamed.add(name)
                elif name in seen:
                    seen[name] += 1
                    problems.add(
                        ERROR,
                        src.rel,
                        table.name,
                        name,
                        "duplicate_column",
                        f"column {name} appears {seen[name]} times in the header; keep one",
                    )
                    name = f"{name}__{seen[name]}"
                    renamed.add(name)
                else:
                    seen[name] = 1
                names.append(name)
            src.header = names
            src.types = dict.fromkeys(names, "VARCHAR")
        else:
            if not src.files:
                raise _Unreadable("holds no .parquet parts")
            described = con.execute(f"describe {_reader_sql(src, rejects=False)}").fetchall()
            src.types = {row[0]: row[1] for row in described if row[0] not in ("_file", "_row")}
            src.header = list(src.types)
            if len(src.files) > 1:
                _check_parts(con, src, problems)
    except (_Unreadable, duckdb.Error) as exc:
        problems.add(ERROR, src.rel, table.name, None, "unreadable_file", _one_line(f"{src.rel} {exc}"))
        src.usable = False
        return
    _match_header(src, problems, allow_identifiers, renamed)


def _match_header(src: _Source, problems: ProblemList, allow_identifiers: bool, renamed: set[str] = frozenset()) -> None:
    """Match a table's column names (``src.header``) to the contract: missing, diagnosis, extra and identifier columns.

    ``renamed`` holds the names given to blank or repeated header names (never loaded). Shared with the
    Spark validation (:mod:`ipm_outcomes.spark_validation`), which reads the header from Spark's schema.
    """
    table = src.table
    present = set(src.header)
    for col in table.columns:
        if col.name in present:
            src.columns.append(col)
            continue
        variants = [h for h in src.header if h.strip().lower() == col.name]
        hint = f"; found {variants[0]!r}: column names must be lower case without spaces" if variants else ""
        if len(src.header) == 1 and any(sep in src.header[0] for sep in (";", "\t", "|")):
            hint = "; the file does not look comma-separated"
        problems.add(
            ERROR, src.rel, table.name, col.name, "missing_column", f"required column {col.name} is missing{hint}"
        )
    declared = set(table.column_names)
    for name in src.header:
        match = _DIAGNOSIS_COLUMN.match(name)
        if table.has_diagnosis_columns and match:
            src.diagnosis.append((int(match.group(1)), name))
        elif name not in declared and name not in renamed:
            src.extras.append(name)
    src.diagnosis.sort()
    if table.has_diagnosis_columns and not any(pos == 1 for pos, _ in src.diagnosis):
        problems.add(
            ERROR,
            src.rel,
            table.name,
            f"{DIAGNOSIS_COLUMN_PREFIX}1",
            "missing_column",
            f"required column {DIAGNOSIS_COLUMN_PREFIX}1 is missing (diagnoses go in "
            f"{DIAGNOSIS_COLUMN_PREFIX}1 .. {DIAGNOSIS_COLUMN_PREFIX}N)",
        )
    if src.extras:
        problems.add(
            WARNING,
            src.rel,
            table.name,
            None,
            "extra_columns",
            f"columns not in the contract are ignored: {', '.join(src.extras)}",
            count=len(src.extras),
        )
    severity = WARNING if allow_identifiers else ERROR
    for name in src.header:
        reason = identifier_column_reason(name)
        if reason:
            todo = (
                "loaded anyway: --allow-identifiers"
                if allow_identifiers
                else "drop the column or use --allow-identifiers"
            )
            problems.add(
                severity,
                src.rel,
                table.name,
                name,
                "identifier_column",
                f"column name looks like {reason}, a direct identifier; {todo}",
            )


def _check_parts(con: duckdb.DuckDBPyConnection, src: _Source, problems: ProblemList) -> None:
    """Every part of a parquet folder must carry every contract column, with the same kind of type.

    Parts are read by name as one table, so a part without a column would give NULL in all its rows
    (monthly parts whose schema drifted are common) and a part with the column as text would turn
    the whole column into text. Later diagnosis columns may be absent from a part (a warning: its
    rows have no such diagnosis).
    """
    declared = set(src.table.column_names) | {f"{DIAGNOSIS_COLUMN_PREFIX}1"}
    first: dict[str, tuple[str, str, str]] = {}  # column -> (kind of type, type, part) where first seen
    schemas = []
    for part in src.files:
        rel = src.display(str(part))
        described = con.execute(f"describe select * from read_parquet({_path_literal(part)})").fetchall()
        schema = {row[0]: row[1] for row in described}
        schemas.append((rel, schema))
        for name, type_ in schema.items():
            first.setdefault(name, (_type_kind(type_), type_, rel))
    for rel, schema in schemas:
        for name in src.header:
            is_diagnosis = bool(_DIAGNOSIS_COLUMN.match(name)) and src.table.has_diagnosis_columns
            if name not in declared and not is_diagnosis:
                continue
            kind, type_, where = first[name]
            if name not in schema:
                if name in declared:
                    problems.add(
                        ERROR,
                        rel,
                        src.name,
                        name,
                        "part_schema",
                        f"column {name} is missing from this part ({where} has it); every part must carry every column",
                    )
                else:
                    problems.add(
                        WARNING,
                        rel,
                        src.name,
                        name,
                        "part_schema",
                        f"column {name} is missing from this part ({where} has it); read as empty",
                    )
            elif _type_kind(schema[name]) != kind:
                problems.add(
                    ERROR,
                    rel,
                    src.name,
                    name,
                    "part_schema",
                    f"column {name} is {schema[name]} in this part but {type_} in {where}; every part must give a "
                    "column the same kind of type",
                )


_NUMBER_TYPES = frozenset(
    "TINYINT SMALLINT INTEGER BIGINT HUGEINT UTINYINT USMALLINT UINTEGER UBIGINT UHUGEINT FLOAT DOUBLE".split()
)


def _type_kind(duckdb_type: str) -> str:
    """Kind of a DuckDB type, for comparing parts: numbers of any width or precision are one kind."""
    t = duckdb_type.upper()
    if t.startswith("DECIMAL") or t in _NUMBER_TYPES:
        return "number"
    if t == "DATE" or t.startswith("TIMESTAMP"):
        return "date"
    return t


def _one_line(text: str) -> str:
    return " ".join(str(text).split())[:400]


# --- the validation view --------------------------------------------------------------------


def _create_view(con: duckdb.DuckDBPyConnection, src: _Source, *, rejects: bool, write: bool = False) -> None:
    """``_v_<table>``: _file, _row, normalised contract and diagnosis columns, typed twins.

    For the write (``write=True``) a column known to be clean is passed through as read: its
    normalisation would change nothing, and trimming and case-folding tens of millions of values
    costs as much as storing them. The validation view also carries the value as read,
    ``_raw:<column>``, so one scan can tell which columns are clean.
    """
    inner = ["_file", "_row"]
    outer = ["*"]
    for col in src.columns:
        ref = quote_ident(col.name)
        as_read = write and col.name in src.clean
        expr = ref if as_read else normalise_expr(col, src.types[col.name], ref)
        inner.append(f"{expr} as {ref}")
        if not write and _normalises(src, col.name):
            inner.append(f"{ref} as {quote_ident(_RAW_PREFIX + col.name)}")
        if col.type != "VARCHAR":
            outer.append(f"{typed_expr(col, src.types[col.name], ref)} as {quote_ident(typed_name(col.name))}")
    for _, name in src.diagnosis:
        ref = quote_ident(name)
        as_read = write and name in src.clean
        expr = ref if as_read else normalise_expr(None, src.types[name], ref)
        inner.append(f"{expr} as {ref}")
        if not write and _normalises(src, name):
            inner.append(f"{ref} as {quote_ident(_RAW_PREFIX + name)}")
    if src.typed and not write:
        inner.extend(quote_ident(_TEXT_PREFIX + c.name) for c in src.columns if c.type != "VARCHAR")
    if not write:
        for name in src.extras:  # checked for identifier-shaped values, never loaded
            ref = f"nullif(trim(cast({quote_ident(name)} as VARCHAR)), '')"
            inner.append(f"{ref} as {quote_ident(_EXTRA_PREFIX + name)}")
    con.execute(
        f"create or replace temp view {src.view} as select {', '.join(outer)} from "
        f"(select {', '.join(inner)} from ({_reader_sql(src, rejects=rejects)}))"
    )


_RAW_PREFIX = "_raw:"
_EXTRA_PREFIX = "_extra:"
_TEXT_PREFIX = "_text:"
#: Columns of the CSV staging query only (a typed value and whether its text is ill-formed).
_CAST_PREFIX = "_cast:"
_ILL_PREFIX = "_ill:"


def _normalises(src: _Source, name: str) -> bool:
    """Whether normalising the column can change a value: only text is trimmed (typed columns pass through)."""
    return src.types[name] == "VARCHAR"


def _distinct_columns(src: _Source) -> list[str]:
    """Columns with few distinct values (codes, enumerations, dates, counts), checked value by value.

    A claims table repeats a few thousand codes and dates over millions of rows: grouping first
    and testing each distinct value once costs far less than a regular expression or cast per row.
    Identifiers and amounts have nearly as many values as rows and stay in the row scan.
    """
    names = [
        c.name
        for c in src.columns
        if c.code_system is not None
        or c.allowed is not None
        or c.name == "instrument"
        or c.type in ("DATE", "INTEGER", "BOOLEAN")
    ]
    return names + [name for _, name in src.diagnosis]


def _checks_for(src: _Source, today: date, with_orphans: bool, allow_identifiers: bool) -> list[Check]:
    checks: list[Check] = []
    for col in src.columns:
        checks.extend(column_checks(src.table, col, src.types[col.name], today))
    for _, name in src.diagnosis:
        checks.extend(diagnosis_checks(name))
    checks.extend(table_checks(src.table))
    checks = [c for c in checks if src.has(*c.columns_needed)]
    if src.typed:
        checks += _typed_stage_checks(src)
    # every value of every free-text column, extra columns too (cast to text): a sample of the first
    # rows missed identifiers further down; a cheap test of each value spares most the patterns
    free_text = {
        c.name: c.name
        for c in src.columns
        if c.type == "VARCHAR" and c.allowed is None and c.code_system is None
    }
    free_text |= {name: _EXTRA_PREFIX + name for name in src.extras}
    checks += identifier_value_checks(free_text, allow_identifiers, lambda: src.rows)
    if with_orphans:
        checks.append(orphan_check(src.table))
    return checks


def _orphan_join() -> str:
    return (
        f" left join (select person_id as {ORPHAN_JOIN_COLUMN} from _eligible_persons) _e"
        f" on _v.person_id = _e.{ORPHAN_JOIN_COLUMN}"
    )


def _key_exprs(src: _Source) -> list[str]:
    return [quote_ident(typed_name(k) if src.table.column(k).type != "VARCHAR" else k) for k in src.table.key]


def _check_table(
    con: duckdb.DuckDBPyConnection,
    src: _Source,
    problems: ProblemList,
    today: date,
    with_orphans: bool,
    allow_identifiers: bool,
    *,
    fast: bool = False,
) -> None:
    """Check one table: a CSV parsed once into its raw table, checked as read from the file when it fails.

    A typed raw table gives the counts of a clean file (most are) at the cost of one parse. When any
    rule needs its rows (an error, a repeated key, an identifier), the table is checked again as
    text, as read from the file: its messages then give every value and row number as written.
    ``fast``: inside the load's transaction, where a DuckDB error cannot be survived (it is raised).
    """
    if src.typed:
        found = ProblemList()
        try:
            _check_rows(con, src, found, today, with_orphans, allow_identifiers, fast=fast)
        except _NeedsText:
            _unstage_typed(con, src)
        else:
            problems.items.extend(found.items)
            return
    _check_rows(con, src, problems, today, with_orphans, allow_identifiers, fast=fast)


class _NeedsText(Exception):
    """A typed table found a problem whose rows and values must be reported as written in the file."""


def _stored_extra(i: int) -> str:
    """Name of the i-th extra column in a typed raw table (header names may differ only in case)."""
    return f"_extra:{i}"


def _hidden_columns(src: _Source) -> list[str]:
    """Columns a typed raw table holds for the checks only: the text of ill-formed values, the extras."""
    return [_TEXT_PREFIX + c.name for c in src.columns if c.type != "VARCHAR"] + [
        _stored_extra(i) for i in range(len(src.extras))
    ]


def _stage_typed(con: duckdb.DuckDBPyConnection, src: _Source, positions: list[int]) -> None:
    """Parse a CSV once, straight into its ``raw`` table: text columns as read, the others typed.

    Runs inside the load's transaction (a failed load rolls it back with everything else), so the
    rows are parsed and stored once: the checks scan the stored table, and the write only
    normalises the few text columns whose values normalising changes (:func:`_finish_raw`). A
    value of a typed column that is not well-formed (``1990.0`` for a year) is NULL there, with its
    text in ``_text:<column>``; extra columns are kept as ``_extra:<i>`` for the identifier checks.
    Rows are stored in whatever order the parsing threads finish: keeping the file's order cost a
    fifth of the parse (15.1 against 18.8 CPU-s for 200,000 persons' claims). The one rule reported
    from this table with rows (orphan persons, a warning) numbers them in a parse of ``person_id``
    (:func:`_numbered_persons_sql`); every other rule that needs rows sends the file to the text path.
    A file with a malformed line is left to the text path, which reports its lines.
    """
    # Layered so that each value is trimmed, cast and tested once: DuckDB evaluates an expression
    # as often as it is written (writing the cast and the test in both the typed column and its
    # text twin made the copy of 200,000 persons' claims cost 17.0 CPU-s instead of 12.3).
    inner, casts, tests, outer = [], ["*"], ["*"], []
    for col in src.columns:
        ref = quote_ident(col.name)
        if col.type == "VARCHAR":
            # as read: codes repeat, so the checks normalise each distinct value once, and the
            # write normalises only a column that normalising changes
            inner.append(ref)
            outer.append(ref)
        else:
            cast, ill = quote_ident(_CAST_PREFIX + col.name), quote_ident(_ILL_PREFIX + col.name)
            inner.append(f"{clean_text(ref)} as {ref}")
            casts.append(f"{typed_expr(col, 'VARCHAR', ref)} as {cast}")
            tests.append(f"{ill_formed_text(col, ref, cast)} as {ill}")
            outer.append(f"case when not {ill} then {cast} end as {ref}")
            outer.append(f"case when {ill} then {ref} end as {quote_ident(_TEXT_PREFIX + col.name)}")
    for _, name in src.diagnosis:
        inner.append(quote_ident(name))
        outer.append(quote_ident(name))
    for i, name in enumerate(src.extras):
        inner.append(quote_ident(name))
        outer.append(f"{quote_ident(name)} as {quote_ident(_stored_extra(i))}")
    table = f"{RAW_SCHEMA}.{src.name}"
    con.execute(f"drop table if exists {table}")
    con.execute(raw_table_ddl(src.table, positions))
    for name in _hidden_columns(src):
        con.execute(f"alter table {table} add column {quote_ident(name)} VARCHAR")
    read = f"select {', '.join(inner)} from {_read_csv_sql(src, 'fast')}"
    con.execute("set preserve_insertion_order = false")
    con.execute(
        f"insert into {table} by name select {', '.join(outer)} from (select {', '.join(tests)} from"
        f" (select {', '.join(casts)} from ({read})))"
    )
    # back to the default (not in a ``finally``: after a DuckDB error the transaction refuses every
    # statement, and the error that ended it must reach the caller, which checks again as text)
    con.execute("set preserve_insertion_order = true")
    if _temp_rows(con, f"_fast_{src.name}"):
        con.execute(f"drop table {table}")  # malformed lines: the text path reports them
        return
    src.in_raw = src.typed = True
    src.types = {**src.types, **{c.name: c.type for c in src.columns}}


def _first_rowid(con: duckdb.DuckDBPyConnection, table: str) -> int:
    """``rowid`` of a table's first row: 0 once committed, a large offset for rows a transaction has
    not yet committed (in insertion order either way)."""
    return con.execute(f"select coalesce(min(rowid), 0) from {table}").fetchall()[0][0]


def _temp_rows(con: duckdb.DuckDBPyConnection, name: str) -> int:
    """Rows of temporary table ``name``, 0 when there is none (asked, not tried: an error would end
    the load's transaction)."""
    found = con.execute(
        "select count(*) from duckdb_tables() where temporary and table_name = ?", [name]
    ).fetchall()[0][0]
    return con.execute(f"select count(*) from temp.main.{quote_ident(name)}").fetchall()[0][0] if found else 0


def _unstage_typed(con: duckdb.DuckDBPyConnection, src: _Source) -> None:
    """Back to reading the CSV as text (what the typed table taught is forgotten; its rows stay for the write)."""
    src.typed = False
    src.types = dict.fromkeys(src.header, "VARCHAR")
    src.clean = set()
    src.diagnoses_present = {}
    src.rows = 0
    _create_view(con, src, rejects=True)


def _typed_stage_checks(src: _Source) -> list[Check]:
    """The type rule of a typed raw table: values not well-formed kept their text in ``_text:<column>``."""
    return [staged_type_check(col, _TEXT_PREFIX + col.name) for col in src.columns if col.type != "VARCHAR"]


def _check_rows(
    con: duckdb.DuckDBPyConnection,
    src: _Source,
    problems: ProblemList,
    today: date,
    with_orphans: bool,
    allow_identifiers: bool,
    *,
    fast: bool = False,
) -> None:
    """Count every rule of one table in one scan, then fetch examples of those that fail.

    The scan counts the rules that need whole rows, key uniqueness and which text columns are
    clean, and takes a histogram of each low-cardinality column (:func:`_distinct_columns`); the
    rules on one such column are then evaluated once per distinct value and weighted by its count.
    """
    checks = _checks_for(src, today, with_orphans, allow_identifiers)
    # A CSV's orphans are counted in a scan of their own: joining every row of the view to the
    # eligible persons carries each of its text columns through the join (for 1M persons' claims,
    # 36 s of 68). A Parquet file's typed columns are cheap to carry, and a second scan is not.
    orphans = [c for c in checks if c.rule == "orphan_person"] if src.kind == "csv" else []
    join = _orphan_join() if with_orphans and not orphans else ""
    grouped = [n for n in _distinct_columns(src) if any(c.columns_needed == (n,) for c in checks) or _normalises(src, n)]
    per_row = [
        c for c in checks if not (len(c.columns_needed) == 1 and c.columns_needed[0] in grouped) and c not in orphans
    ]
    # Rules with a screen (identifier values: a regular expression per row of every free-text column,
    # half the scan of a claims table) are counted by their screens, one per column; the rules
    # themselves only where a screen passes. A CSV read as text is scanned once (it logs its
    # malformed lines), so its rules are counted as they are.
    by_columns: dict[tuple[str, ...], list[Check]] = {}
    if src.kind != "csv" or src.typed or src.staged:
        for c in per_row:
            if c.screen is not None:
                by_columns.setdefault(c.columns_needed, []).append(c)
    screened = {" or ".join(dict.fromkeys(c.screen for c in group)): group for group in by_columns.values()}
    per_row = [c for c in per_row if c.screen is None or c.columns_needed not in by_columns]
    to_clean = [c.name for c in src.columns if _normalises(src, c.name) and c.name not in grouped]
    scalars = (
        [("count(*)", "_rows"), *((e, f"_key{i}") for i, e in enumerate(_key_counts(src)))]
        + [(f"count(*) filter (where {c.condition})", f"_c{i}") for i, c in enumerate(per_row)]
        + [(f"count(*) filter (where {screen})", f"_s{i}") for i, screen in enumerate(screened)]
        + [
            (f"count(*) filter (where {quote_ident(_RAW_PREFIX + n)} is distinct from {quote_ident(n)})", f"_k{i}")
            for i, n in enumerate(to_clean)
        ]
    )
    histograms = [(f"histogram({_as_read(src, n)})", f"_h{i}") for i, n in enumerate(grouped)]
    selected = ", ".join(f"{expr} as {alias}" for expr, alias in scalars + histograms)
    table = f"_h_{src.name}"
    try:
        # one scan; a CSV scan logs its malformed lines only once the query has finished
        con.execute(f"create or replace temp table {table} as select {selected} from {src.view} _v{join}")
    except duckdb.Error as exc:
        if fast:
            raise  # the load's transaction is over: the caller checks everything again outside one
        problems.add(ERROR, src.rel, src.name, None, "unreadable_file", _one_line(f"{src.rel} cannot be read: {exc}"))
        src.usable = False
        return
    try:
        sums = [f"coalesce(list_sum(map_values(_h{i})), 0)" for i in range(len(grouped))]
        rows, keyed, distinct_keys, *counts = con.execute(
            f"select {', '.join([alias for _, alias in scalars] + sums)} from {table}"
        ).fetchall()[0]
        row_counts = counts[: len(per_row)]
        passed = counts[len(per_row) : len(per_row) + len(screened)]
        changed = counts[len(per_row) + len(screened) : len(per_row) + len(screened) + len(to_clean)]
        non_null = counts[len(per_row) + len(screened) + len(to_clean) :]
        counted = dict(zip((id(c) for c in per_row), row_counts, strict=True))
        for (screen, group), n in zip(screened.items(), passed, strict=True):
            counted |= _count_screened(con, src, screen, group) if n else dict.fromkeys((id(c) for c in group), 0)
        for i, name in enumerate(grouped):
            counted |= _count_values(con, src, table, i, name, checks, rows - non_null[i])
        for check in orphans:
            counted[id(check)] = con.execute(
                f"select count(*) from (select person_id from {src.view}) _v{_orphan_join()} where {check.condition}"
            ).fetchall()[0][0]
    finally:
        con.execute(f"drop table if exists {table}")
    src.rows = rows
    src.clean.update(n for n, k in zip(to_clean, changed, strict=True) if not k)
    dup_rows = keyed - distinct_keys
    if dup_rows:
        # distinct hashes prove distinct keys; equal hashes may still be a collision, so count exactly
        dup_rows = keyed - con.execute(f"select {_exact_distinct_keys(src)} from {src.view}").fetchall()[0][0]
    _report_rejects(con, src, problems)
    _add_no_rows(src, problems)
    failing = [(c, counted[id(c)]) for c in checks if counted[id(c)]]
    needs_rows = dup_rows or any(c.severity == ERROR or c.rule == "identifier_value" for c, _ in failing)
    if needs_rows and src.typed:
        raise _NeedsText
    if needs_rows and src.kind == "csv" and not src.staged:
        _stage_csv(con, src)
    for check, n in failing:
        if check.rule == "orphan_person":
            _report_orphans(con, src, check, n, problems)
        else:
            _report_examples(con, src, check, n, problems, join)
    if dup_rows:
        _report_duplicates(con, src, dup_rows, problems)


def _add_no_rows(src: _Source, problems: ProblemList) -> None:
    """A table without rows: an error for a required table, a warning naming what is unavailable otherwise."""
    if src.rows == 0 and src.table.required:
        problems.add(ERROR, src.rel, src.name, None, "no_rows", f"required table {src.name} has no rows")
    elif src.rows == 0:
        problems.add(
            WARNING,
            src.rel,
            src.name,
            None,
            "no_rows",
            f"optional table {src.name} has no rows, as if it were absent; unavailable: "
            f"{src.table.unavailable_without}",
        )


def _count_screened(con: duckdb.DuckDBPyConnection, src: _Source, screen: str, checks: list[Check]) -> dict[int, int]:
    """Bad-row counts of rules whose screen passed on some rows, keyed by ``id(check)``: a scan of those rows."""
    sums = ", ".join(f"count(*) filter (where {c.condition})" for c in checks)
    found = con.execute(f"select {sums} from {src.view} where {screen}").fetchall()[0]
    return {id(c): int(n) for c, n in zip(checks, found, strict=True)}


def _as_read(src: _Source, name: str) -> str:
    """The view's copy of a column as read from the file (only text is normalised)."""
    return quote_ident(_RAW_PREFIX + name) if _normalises(src, name) else quote_ident(name)


def _count_values(
    con: duckdb.DuckDBPyConnection, src: _Source, table: str, i: int, name: str, checks: list[Check], nulls: int
) -> dict[int, int]:
    """Bad-row counts of the rules on one column from its histogram ``_h<i>``, keyed by ``id(check)``.

    Each distinct value (and the NULLs, which a histogram leaves out) is normalised, typed and
    tested as the view would, weighted by how many rows hold it. Marks the column clean when
    normalising changes no value.
    """
    column = src.table.column(name) if name in src.table.column_names else None
    ref = quote_ident(name)
    mine = [c for c in checks if c.columns_needed == (name,)]
    sums = [f"coalesce(sum(_n) filter (where {c.condition}), 0)" for c in mine]
    if _normalises(src, name):
        sums.append(f"coalesce(sum(_n) filter (where {quote_ident(_RAW_PREFIX + name)} is distinct from {ref}), 0)")
    is_diagnosis = column is None
    if is_diagnosis:
        sums.append(f"coalesce(sum(_n) filter (where {ref} is not null), 0)")
    if not sums:
        return {}
    normalised = [f"{normalise_expr(column, src.types[name], ref)} as {ref}", "_n"]
    if _normalises(src, name):
        normalised.append(f"{ref} as {quote_ident(_RAW_PREFIX + name)}")
    typed = ["*"]
    if column is not None and column.type != "VARCHAR":
        typed.append(f"{typed_expr(column, src.types[name], ref)} as {quote_ident(typed_name(name))}")
    values = (
        f"select unnest(map_keys(_h{i})) as {ref}, unnest(map_values(_h{i})) as _n from {table}"
        f" union all select NULL, {int(nulls)}"
    )
    result = con.execute(
        f"select {', '.join(sums)} from (select {', '.join(typed)} from (select {', '.join(normalised)} from ({values})))"
    ).fetchall()[0]
    if is_diagnosis:
        src.diagnoses_present[name] = int(result[-1])
        result = result[:-1]
    if _normalises(src, name) and not result[-1]:
        src.clean.add(name)
    return {id(c): int(n) for c, n in zip(mine, result, strict=False)}


def _key_counts(src: _Source) -> list[str]:
    """Rows with a complete key and distinct hashes of their keys: they differ when a key may repeat.

    Counted in the same scan as the other rules. Hashes, not the keys: a 64-bit hash is much
    cheaper to group than text keys, and distinct hashes prove distinct keys (a repeated hash is
    checked exactly). DuckDB spills to disk when needed.
    """
    if not src.table.key or not src.has(*src.table.key):
        return ["0", "0"]
    keys = _key_exprs(src)
    complete = " and ".join(f"{k} is not null" for k in keys)
    return [f"count(*) filter (where {complete})", f"count(distinct hash({', '.join(keys)})) filter (where {complete})"]


def _exact_distinct_keys(src: _Source) -> str:
    keys = _key_exprs(src)
    complete = " and ".join(f"{k} is not null" for k in keys)
    distinct = keys[0] if len(keys) == 1 else f"({', '.join(keys)})"
    return f"count(distinct {distinct}) filter (where {complete})"


def _stage_csv(con: duckdb.DuckDBPyConnection, src: _Source) -> None:
    """Copy a failing CSV into an insertion-ordered temp table so rows have reliable numbers."""
    con.execute(f"drop table if exists _rejstg_{src.name}")
    con.execute(f"drop table if exists _rejstgscan_{src.name}")
    con.execute("set preserve_insertion_order = true")
    con.execute(f"create or replace temp table _stg_{src.name} as select * from {_read_csv_sql(src, 'rejstg')}")
    src.row_base = _first_rowid(con, f"_stg_{src.name}")
    src.rejected_rows = [
        line - 1
        for (line,) in con.execute(
            f"select distinct line from _rejstg_{src.name} order by line limit {_MAX_REJECTS_FOR_ROW_MAPPING + 1}"
        ).fetchall()
    ]
    src.staged = True
    _create_view(con, src, rejects=False)


def _file_row(src: _Source, row: int | None) -> int | None:
    """Row in the file of the n-th well-formed row (malformed lines are not in the staged copy)."""
    if row is None or not src.rejected_rows or len(src.rejected_rows) > _MAX_REJECTS_FOR_ROW_MAPPING:
        return row
    # before the j-th rejected row (1-based) come r_j - j well-formed rows
    shifted = [r - j for j, r in enumerate(src.rejected_rows, start=1)]
    return row + bisect.bisect_left(shifted, row)


def _located(src: _Source, found: list[tuple]) -> tuple[str, list[int | None], list]:
    """File of the first example and the examples in that same file."""
    first_file = src.display(found[0][0]) if found else src.rel
    same = [f for f in found if src.display(f[0]) == first_file]
    return first_file, [_file_row(src, f[1]) for f in same], same


def _report_examples(
    con: duckdb.DuckDBPyConnection, src: _Source, check: Check, n: int, problems: ProblemList, join: str
) -> None:
    _add_examples(src, check, n, con.execute(_examples_sql(src, check, join)).fetchall(), problems)


def _examples_sql(src: _Source, check: Check, join: str) -> str:
    """(_file, _row, example) of the first rows breaking ``check``, in file order."""
    return (
        f"select _file, _row, {check.example or 'NULL'} from {src.view} _v{join} where {check.condition}"
        f" order by _file, _row limit {EXAMPLES}"
    )


def _add_examples(src: _Source, check: Check, n: int, found: list[tuple], problems: ProblemList) -> None:
    """The problem of ``n`` rows breaking ``check``, located by the first of them (:func:`_examples_sql`)."""
    file, rows, same = _located(src, found)
    examples = [str(f[2]) for f in same] if check.example else []
    problems.add(
        check.severity,
        file,
        src.name,
        check.column,
        check.rule,
        check.message(n),
        rows=[r for r in rows if r is not None],
        examples=examples,
        count=n,
    )


def _report_orphans(
    con: duckdb.DuckDBPyConnection, src: _Source, check: Check, n_rows: int, problems: ProblemList
) -> None:
    # the orphan rows once (a scan of the table joined to eligibility), then the report from them
    rows = f"({_numbered_persons_sql(src)})" if src.typed else src.view
    con.execute("set preserve_insertion_order = true")  # the numbered parse counts in file order
    con.execute(
        f"create or replace temp table _orphans as select _file, _row, person_id from {rows} _v{_orphan_join()}"
        f" where {check.condition}"
    )
    try:
        persons, first = con.execute("select count(distinct person_id), min(_row) from _orphans").fetchall()[0]
        examples = con.execute(
            "select person_id from _orphans group by person_id"
            f" order by min(_file), min(_row), person_id limit {EXAMPLES}"
        ).fetchall()
        found = []
        if first is not None:  # parquet and a staged CSV know their rows; a CSV read as text does not
            found = con.execute(f"select _file, _row from _orphans order by _file, _row limit {EXAMPLES}").fetchall()
    finally:
        con.execute("drop table if exists _orphans")
    _add_orphans(src, check, n_rows, persons, [e for (e,) in examples], found, problems)


def _numbered_persons_sql(src: _Source) -> str:
    """(_file, _row, person_id as the view has it) of every row of a CSV, numbered in file order.

    For a CSV parsed into its raw table out of order (:func:`_stage_typed`, which keeps only files
    without malformed lines, so the n-th row read is the file's row n). An empty ``over ()`` keeps
    the scan's order while ``preserve_insertion_order`` is on.
    """
    person = src.table.column("person_id")
    return (
        f"select {quote_literal(src.rel)} as _file, row_number() over () as _row,"
        f" {normalise_expr(person, 'VARCHAR', quote_ident('person_id'))} as person_id"
        f" from {_read_csv_sql(src, rejects=False)}"
    )


def _add_orphans(
    src: _Source, check: Check, n_rows: int, persons: int, examples: list, found: list[tuple], problems: ProblemList
) -> None:
    """The orphan-person problem: ``persons`` persons in ``n_rows`` rows; ``found``: (_file, _row) of the first rows."""
    file, rows = src.rel, []
    if found:
        file, rows, _ = _located(src, found)
    problems.add(
        check.severity,
        file,
        src.name,
        check.column,
        check.rule,
        f"{check.message(persons)} ({n_rows:,} row{'' if n_rows == 1 else 's'})",
        rows=[r for r in rows if r is not None],
        examples=list(examples),
        count=persons,
    )


def _report_duplicates(con: duckdb.DuckDBPyConnection, src: _Source, n: int, problems: ProblemList) -> None:
    _add_duplicates(src, n, con.execute(_duplicates_sql(src)).fetchall(), problems)


def _duplicates_sql(src: _Source) -> str:
    """(_file, _row, key as text, _first_file, _first_row) of the first rows repeating an earlier row's key."""
    keys = _key_exprs(src)
    not_null = " and ".join(f"{k} is not null" for k in keys)
    on = " and ".join(f"_v.{k} = _d.{k}" for k in keys)
    shown = " || ', ' || ".join(f"coalesce(cast(_v.{k} as VARCHAR), '')" for k in keys)
    by_key = f"partition by {', '.join(f'_v.{k}' for k in keys)} order by _v._file, _v._row"
    # the first repeats in file order, each with the row that first had its key
    return (
        f"with _d as (select {', '.join(keys)} from {src.view} where {not_null} group by all having count(*) > 1)"
        f" select _file, _row, _key, _first_file, _first_row from ("
        f"select _v._file, _v._row, {shown} as _key, row_number() over ({by_key}) as _k,"
        f" first_value(_v._file) over ({by_key}) as _first_file, first_value(_v._row) over ({by_key}) as _first_row"
        f" from {src.view} _v semi join _d on {on}) where _k > 1 order by _file, _row limit {EXAMPLES}"
    )


def _add_duplicates(src: _Source, n: int, found: list[tuple], problems: ProblemList) -> None:
    """The duplicate-key problem of ``n`` rows, from the first repeats (:func:`_duplicates_sql`)."""
    repeats = []
    for file, row, key, first_file, first_row in found:
        where = f"row {_file_row(src, first_row)}"
        if src.display(first_file) != src.display(file):
            where = f"{src.display(first_file)} {where}"
        repeats.append((file, row, f"{key} (first at {where})"))
    file, rows, same = _located(src, repeats[:EXAMPLES])
    cols = ", ".join(src.table.key)
    problems.add(
        ERROR,
        file,
        src.name,
        cols,
        "duplicate_key",
        f"{n:,} {'row repeats' if n == 1 else 'rows repeat'} the key ({cols}) of an earlier row; the key must be unique",
        rows=[r for r in rows if r is not None],
        examples=[f[2] for f in same],
        count=n,
    )


def _report_rejects(con: duckdb.DuckDBPyConnection, src: _Source, problems: ProblemList) -> None:
    if src.kind != "csv" or src.staged or src.typed:
        return  # a typed table exists only for a file that parsed without a malformed line
    # one row per line and kind of error (a short line is logged once per missing column)
    lines = (
        f"select line, error_type, min(column_name) as column_name, min(csv_line) as csv_line,"
        f" min(error_message) as error_message from _rej_{src.name} group by line, error_type"
    )
    if not _temp_rows(con, f"_rej_{src.name}"):
        return  # nothing was malformed
    kinds = con.execute(
        f"select error_type, count(*), min(line) from ({lines}) group by error_type order by 3"
    ).fetchall()
    for error_type, n, _ in kinds:
        first = con.execute(
            f"select line, column_name, csv_line, error_message from ({lines}) where error_type = ?"
            f" order by line limit {EXAMPLES}",
            [error_type],
        ).fetchall()
        problems.add(
            ERROR,
            src.rel,
            src.name,
            first[0][1],
            "malformed_row",
            f"{n:,} line{'s' if n != 1 else ''} cannot be read as CSV ({error_type.lower()}: {_one_line(first[0][3])})",
            rows=[line - 1 for line, *_ in first],
            examples=[_one_line(r[2])[:80] for r in first],
            count=n,
        )


# --- the whole validation -------------------------------------------------------------------


class _Steps:
    """A rich progress bar over the steps of a load on a terminal; elsewhere one line per step; or nothing."""

    def __init__(self, enabled: bool, total: int):
        self.progress = None
        # piped, logged or on a Prefect worker: plain lines, never minutes of silence
        self.lines = StageProgress("ingest", True, total) if enabled and not sys.stderr.isatty() else None
        if enabled and self.lines is None:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                TextColumn("{task.description:<34}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self.progress.start()
            self.task = self.progress.add_task("ingest", total=total)

    @contextmanager
    def step(self, description: str) -> Iterator[None]:
        if self.lines is not None:
            self.lines.step(description)
        if self.progress is not None:
            self.progress.update(self.task, description=description)
        yield
        if self.progress is not None:
            self.progress.advance(self.task)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def _validate(
    con: duckdb.DuckDBPyConnection,
    extract_dir: Path,
    *,
    allow_identifiers: bool,
    today: date,
    steps_enabled: bool,
    extra_steps: int = 0,
) -> tuple[list[Problem], dict[str, _Source], _Steps, bool]:
    """Every problem of the extract, what was learnt of each table, and whether a transaction is open.

    Checked first inside one transaction, left open for the caller to write in and commit, or to
    roll back: each CSV that parses cleanly is parsed once, straight into its ``raw`` table
    (:func:`_stage_typed`). A DuckDB error ends a transaction, so when DuckDB fails on some file
    (one it cannot read), the transaction is rolled back and the extract is checked again outside
    one, every CSV read as text, which turns such failures into problems naming the file.
    """
    steps = None
    for fast in (True, False):
        problems = ProblemList()
        sources = _discover(extract_dir, problems)
        if steps is None:
            steps = _Steps(steps_enabled, total=len(sources) + extra_steps)
        for src in sources.values():
            _inspect(con, src, problems, allow_identifiers)
        try:
            _check_sources(con, sources, problems, today, allow_identifiers, steps, fast=fast)
        except duckdb.Error:
            if not fast:
                raise
            con.execute("rollback")
            continue
        return problems.items, sources, steps, fast
    raise AssertionError("unreachable")  # the second pass returns or raises


def _check_sources(
    con: duckdb.DuckDBPyConnection,
    sources: dict[str, _Source],
    problems: ProblemList,
    today: date,
    allow_identifiers: bool,
    steps: _Steps,
    *,
    fast: bool,
) -> None:
    """Check every table in turn (eligibility first: the others' persons must be in it).

    ``fast``: begin the load's transaction and parse each CSV into its ``raw`` table in it.
    """
    if fast:
        con.execute("begin transaction")
        con.execute(f"create schema if not exists {RAW_SCHEMA}")
        drop_raw_relation(con, "medical_claim_diagnosis")  # it reads raw.medical_claim
    claims = sources.get("medical_claim")
    positions = [position for position, _ in claims.diagnosis] if claims else []
    eligibility = sources.get("eligibility")
    have_persons = False
    for src in sources.values():
        with steps.step(f"checking {src.name}"):
            if not src.usable:
                continue
            if src.kind == "csv" and fast:
                _stage_typed(con, src, positions)
            _create_view(con, src, rejects=src.kind == "csv" and not src.typed)
            with_orphans = have_persons and src.name != "eligibility" and src.has("person_id")
            _check_table(con, src, problems, today, with_orphans, allow_identifiers, fast=fast)
            if src is eligibility and src.usable and src.has("person_id"):
                con.execute(
                    f"create or replace temp table _eligible_persons as select distinct person_id from {src.view}"
                    " where person_id is not null"
                )
                have_persons = True


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back the open transaction, if there is one (DuckDB refuses a rollback outside one)."""
    try:
        con.execute("rollback")
    except duckdb.TransactionException:
        pass  # no transaction was open


def _cleanup(con: duckdb.DuckDBPyConnection) -> None:
    for name, kind in con.execute(
        "select table_name, table_type from information_schema.tables where table_catalog = 'temp'"
    ).fetchall():
        con.execute(f"drop {'view' if kind == 'VIEW' else 'table'} if exists temp.main.{quote_ident(name)}")


def validate_extract(
    extract_dir: str | Path,
    *,
    allow_identifiers: bool = False,
    today: date | None = None,
    reference_date: date | None = None,
    memory_limit: str | None = None,
    threads: int | None = None,
) -> list[Problem]:
    """Check an extract against the input contract without loading it.

    Parameters
    ----------
    extract_dir
        Folder with one file per contract table (``<table>.csv``, ``.csv.gz``, ``.parquet`` or a
        folder of parquet parts).
    allow_identifiers
        Report identifier-looking columns and values as warnings instead of errors.
    today
        The calendar day of the load (default: today); dates after it are errors.
    reference_date
        For a date-shifted extract (HIPAA Safe Harbor or expert-determination practice shifts dates,
        some research extracts into the 2100s): the day in the extract's own calendar that stands
        for ``today``. The future-date and birth-year plausibility checks use it instead of the
        calendar; every other rule applies as usual. The load records it, with the shift in days
        (``reference_date - today``) that the cohort build applies to the code systems' calendar
        rules (codes valid only before or after a date), and the report says the dates are shifted.
    memory_limit, threads
        DuckDB settings (memory_limit default: 3 GB, or 80 % of memory if less); DuckDB spills to a
        temporary folder beyond the memory limit.

    Returns
    -------
    list of Problem
        Every problem found, errors and warnings, in the order of the contract's tables; empty when
        the extract is clean.
    """
    with tempfile.TemporaryDirectory(prefix="ipm-validate-") as spill:
        # a scratch database file: the CSVs are parsed into its raw tables (never committed), which
        # a million persons' claims would outgrow in memory
        con = duckdb.connect(str(Path(spill) / "scratch.duckdb"), config=_config(memory_limit, threads))
        try:
            _configure(con, spill)
            problems, _, steps, _ = _validate(
                con,
                Path(extract_dir),
                allow_identifiers=allow_identifiers,
                today=reference_date or today or date.today(),
                steps_enabled=False,
            )
            steps.close()
            return problems
        finally:
            _rollback(con)
            con.close()


def _configure(con: duckdb.DuckDBPyConnection, spill_dir: str) -> None:
    # DuckDB's own bar would interleave with ours; spilling keeps memory bounded beyond the limit
    con.execute("set enable_progress_bar = false")
    con.execute(f"set temp_directory = {quote_literal(spill_dir)}")


def _default_memory_limit() -> str:
    """3 GB, or 80 % of the machine's memory when that is less (DuckDB's own default is 80 %)."""
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not a POSIX system
        return "3GB"
    return f"{min(3 * 1024, int(physical * 0.8 / 2**20))}MB"


def _config(memory_limit: str | None, threads: int | None) -> dict:
    config: dict[str, str | int] = {"memory_limit": memory_limit or _default_memory_limit()}
    if threads:
        config["threads"] = threads
    return config


def _failure_message(extract_dir: Path, problems: list[Problem]) -> str:
    errors, warnings = count_by_severity(problems)
    first = next(p for p in problems if p.is_error)
    shifted = any(p.is_error and p.rule in _CALENDAR_RULES for p in problems)
    hint = (
        "; if the extract's dates were shifted for de-identification, load it with --reference-date YYYY-MM-DD"
        if shifted
        else ""
    )
    return (
        f"{extract_dir}: extract breaks the input contract ({errors} error{'s' if errors != 1 else ''}, "
        f"{warnings} warning{'s' if warnings != 1 else ''}); first: {first.one_line()}; "
        f"fix the extract and load again (every problem: --report FILE; columns: data/README.md){hint}"
    )


#: The rules that compare dates with the calendar: a date-shifted extract breaks them.
_CALENDAR_RULES = frozenset({"future_date", "birth_year_range"})


def write_failure_report(path: str | Path, extract_dir: str | Path | None, message: str) -> None:
    """The ``--report`` file of a load that could not start or finish: its one problem (rule ``load_failed``)."""
    where = str(extract_dir) if extract_dir is not None else ""
    problem = Problem(ERROR, where, None, None, "load_failed", message)
    _write_report(Path(path), extract_dir, [problem], None, identifier_scan=None)


def _write_report(
    path: Path,
    extract_dir: Path | None,
    problems: list[Problem],
    rows: dict[str, int] | None,
    identifier_scan: str | None = "every row of every table",
) -> None:
    errors, warnings = count_by_severity(problems)
    report = {
        "extract": str(extract_dir) if extract_dir is not None else None,
        "passed": errors == 0,
        "errors": errors,
        "warnings": warnings,
        "identifier_scan": identifier_scan,
        "rows": rows,
        "problems": [p.to_dict() for p in problems],
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


# --- the load -------------------------------------------------------------------------------


def _insert_sql(src: _Source) -> str:
    """Copy the view into its raw table: contract columns typed, diagnosis columns as normalised."""
    cols = [quote_ident(c.name) for c in src.table.columns]
    values = [quote_ident(typed_name(c.name) if c.type != "VARCHAR" else c.name) for c in src.table.columns]
    diagnoses = [quote_ident(name) for _, name in src.diagnosis]
    return (
        f"insert into {RAW_SCHEMA}.{src.name} ({', '.join(cols + diagnoses)})"
        f" select {', '.join(values + diagnoses)} from {src.view}"
    )


def _write(
    con: duckdb.DuckDBPyConnection,
    sources: dict[str, _Source],
    hashes: dict[Path, Future],
    allow_identifiers: bool,
    n_warnings: int,
    steps: _Steps,
    facts: _LoadFacts,
    in_transaction: bool,
) -> dict[str, int]:
    """Replace the raw and meta tables in one transaction; returns rows per raw table.

    ``in_transaction``: the validation's transaction is open (the CSVs' raw tables were written in
    it, :func:`_stage_typed`), and the write finishes in it.
    """
    for src in sources.values():
        if not src.in_raw:  # the write scans must not log rejects into temp tables
            _create_view(con, src, rejects=False, write=True)
    loaded_at = datetime.now(UTC).replace(tzinfo=None)
    rows: dict[str, int] = {}
    # Row order in raw tables carries no meaning (row numbers were needed for reporting only);
    # letting DuckDB write in parallel out of order cuts the write time by about a third.
    con.execute("set preserve_insertion_order = false")
    if not in_transaction:
        con.execute("begin transaction")
    try:
        con.execute(f"create schema if not exists {RAW_SCHEMA}")
        con.execute(f"create schema if not exists {META_SCHEMA}")
        drop_raw_relation(con, "medical_claim_diagnosis")
        positions = [position for position, _ in sources["medical_claim"].diagnosis]
        for table in TABLES:
            src = sources.get(table.name)
            with steps.step(f"writing {table.name}") if src else _nothing():
                if src and src.in_raw:
                    _finish_raw(con, src)
                else:
                    con.execute(f"drop table if exists {RAW_SCHEMA}.{table.name}")
                    con.execute(raw_table_ddl(table, positions))
                    if src:
                        con.execute(_insert_sql(src))
            rows[table.name] = con.execute(f"select count(*) from {RAW_SCHEMA}.{table.name}").fetchall()[0][0]
        con.execute(medical_claim_diagnosis_view_ddl(positions))
        # counted while validating: the view's rows are the non-empty normalised diagnosis values
        rows["medical_claim_diagnosis"] = sum(sources["medical_claim"].diagnoses_present.values())
        with steps.step("writing provenance"):
            _write_meta(con, sources, hashes, allow_identifiers, n_warnings, loaded_at, facts)
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return rows


def _finish_raw(con: duckdb.DuckDBPyConnection, src: _Source) -> None:
    """A raw table parsed from a CSV (:func:`_stage_typed`) as the write leaves it: the text columns
    normalised (only those whose normalisation changes some value: each is rewritten in place), and
    the columns kept for the checks dropped."""
    table = f"{RAW_SCHEMA}.{src.name}"
    text = [(c, c.name) for c in src.columns if c.type == "VARCHAR"] + [(None, name) for _, name in src.diagnosis]
    for column, name in text:
        if name not in src.clean:
            ref = quote_ident(name)
            con.execute(
                f"alter table {table} alter column {ref} set data type VARCHAR using"
                f" {normalise_expr(column, 'VARCHAR', ref)}"
            )
    for name in _hidden_columns(src):
        con.execute(f"alter table {table} drop column {quote_ident(name)}")


@contextmanager
def _nothing() -> Iterator[None]:
    yield


@dataclass(frozen=True)
class _LoadFacts:
    """What a load records beyond its files: the source it names, and whose calendar the dates are in
    (the real one, or a shifted one: ``reference_date``)."""

    source: str
    reference_date: date | None
    date_shift_days: int


def _write_meta(con, sources, hashes, allow_identifiers, n_warnings, loaded_at, facts) -> None:
    files = []
    for src in sources.values():
        if src.kind == "parquet" and src.path.is_dir():
            counts = dict(
                con.execute(
                    "select file_name, num_rows from parquet_file_metadata(?)", [[str(p.resolve()) for p in src.files]]
                ).fetchall()
            )
            per_file = [(p, f"{src.name}/{p.name}", counts[str(p.resolve())]) for p in src.files]
        else:
            per_file = [(src.path, src.rel, src.rows)]
        files.extend(
            {"table": src.name, "file": rel, "sha256": hashes[path].result(), "rows": n, "columns": src.header}
            for path, rel, n in per_file
        )
    lineage.write_load(
        con,
        facts.source,
        loaded_at,
        files,
        [t.name for t in TABLES if t.name not in sources],
        allow_identifiers=allow_identifiers,
        warnings=n_warnings,
        reference_date=facts.reference_date,
        date_shift_days=facts.date_shift_days,
    )


def _reports_load_failures(load):
    """A load that cannot start or finish (not a validation failure, whose report is complete) still
    writes its one problem to the ``--report`` file when one was asked for."""

    @functools.wraps(load)
    def wrapper(extract_dir, db_path, **options):
        try:
            return load(extract_dir, db_path, **options)
        except ValidationFailed:
            raise
        except IpmError as exc:
            if options.get("report_path") is not None:
                write_failure_report(options["report_path"], extract_dir, str(exc))
            raise

    return wrapper


@_reports_load_failures
def load_extract(
    extract_dir: str | Path,
    db_path: str | Path,
    *,
    allow_identifiers: bool = False,
    report_path: str | Path | None = None,
    progress: bool = False,
    today: date | None = None,
    reference_date: date | None = None,
    memory_limit: str | None = None,
    threads: int | None = None,
    source_name: str | None = None,
) -> LoadSummary:
    """Validate an extract and, if it breaks no rule, load it into the ``raw`` schema of a DuckDB file.

    Parameters
    ----------
    extract_dir
        Folder with one file per contract table.
    db_path
        DuckDB file, created if missing. A previous load is replaced as a whole, or kept as a whole
        when this one fails.
    allow_identifiers
        Load even if columns or values look like direct identifiers (reported as warnings).
    report_path
        Write every problem found as JSON here, whether the extract passes or not; when the load
        cannot start or finish (no such folder, the database in use), the one problem that stopped it.
    progress
        Show a progress bar, and the table of problems when validation fails, on stderr.
    today
        The calendar day of the load (default: today); dates after it are errors.
    reference_date
        For a date-shifted extract (HIPAA Safe Harbor or expert-determination practice shifts dates,
        some research extracts into the 2100s): the day in the extract's own calendar that stands
        for ``today``. The future-date and birth-year plausibility checks use it instead of the
        calendar; every other rule applies as usual. The load records it, with the shift in days
        (``reference_date - today``) that the cohort build applies to the code systems' calendar
        rules (codes valid only before or after a date), and the report says the dates are shifted.
    source_name
        What the load records as its source (default: the extract folder's path); an adapter that
        wrote the extract into a temporary folder names its own source instead.
    memory_limit, threads
        DuckDB settings (memory_limit default: 3 GB, or 80 % of memory if less); DuckDB spills to
        ``<db>.tmp`` beyond the memory limit.

    Returns
    -------
    LoadSummary
        Rows per loaded table. Tables written: ``raw.<table>`` for every contract table (one row per
        row of its file, plus the file's diagnosis columns in ``medical_claim``; absent optional
        tables empty), the view ``raw.medical_claim_diagnosis`` (one row per claim line per
        non-empty diagnosis column), ``meta.load_provenance`` (one row per file read)
        and ``meta.load`` (one row: this load).

    Raises
    ------
    ValidationFailed
        When the extract breaks any rule; ``.problems`` holds every problem (errors and warnings).
        The database is left as it was.
    DatabaseInUseError
        When another process holds the database.
    """
    started = time.perf_counter()
    extract_dir = Path(extract_dir)
    db_path = Path(db_path)
    today = today or date.today()
    facts = _LoadFacts(
        source=source_name or str(extract_dir.resolve()),
        reference_date=reference_date,
        date_shift_days=(reference_date - today).days if reference_date is not None else 0,
    )
    existed = db_path.exists()
    ok = False
    con = db.connect(db_path, memory_limit=memory_limit or _default_memory_limit(), threads=threads)
    hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256")
    steps = None
    try:
        _configure(con, str(db_path.resolve()) + ".tmp")
        n_tables = len(TABLES) + 1  # every raw table, provenance
        problems, sources, steps, in_transaction = _validate(
            con,
            extract_dir,
            allow_identifiers=allow_identifiers,
            today=reference_date or today,
            steps_enabled=progress,
            extra_steps=n_tables,
        )
        hashes = {p: hasher.submit(sha256_file, p) for src in sources.values() for p in src.files}
        errors, _ = count_by_severity(problems)
        if errors:
            steps.close()
            if report_path is not None:
                _write_report(Path(report_path), extract_dir, problems, None)
            if progress:
                from rich.console import Console

                Console(stderr=True).print(problems_table(problems))
            raise ValidationFailed(_failure_message(extract_dir, problems), problems)
        warnings = [p for p in problems if not p.is_error]
        rows = _write(con, sources, hashes, allow_identifiers, len(warnings), steps, facts, in_transaction)
        steps.close()
        if report_path is not None:
            _write_report(Path(report_path), extract_dir, problems, rows)
        ok = True
        return LoadSummary(
            extract_dir=extract_dir,
            db_path=db_path,
            rows=rows,
            absent_tables=tuple(t.name for t in TABLES if t.name not in sources),
            warnings=warnings,
            seconds=time.perf_counter() - started,
            reference_date=reference_date,
        )
    finally:
        if steps is not None:
            steps.close()
        hasher.shutdown(wait=True, cancel_futures=True)
        try:
            _rollback(con)  # a load that failed inside its transaction leaves the database as it was
            _cleanup(con)
        finally:
            con.close()
        if not ok and not existed:
            _remove_database(db_path)


def _remove_database(db_path: Path) -> None:
    """A failed first load leaves no database behind (as it was: none)."""
    for path in (db_path, Path(str(db_path) + ".wal")):
        if path.exists():
            path.unlink()
    shutil.rmtree(str(db_path) + ".tmp", ignore_errors=True)
