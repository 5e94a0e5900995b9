"""Value sets: versioned code lists in CSV, shipped in the package or supplied by the user.

A value-set file has the columns ``code, system, description, source`` and, optionally,
``valid_from, valid_to`` (service dates between which the code counts, inclusive; used for codes
deleted from or added to a code system, such as the legacy ICD-10-CM M54.5 that ended 2021-09-30)
and ``group`` (for a value set that holds several outcomes, such as the negative controls: the
outcome each code belongs to; a lower-case name).
``system`` is ``icd10cm``, ``hcpcs`` (CPT and HCPCS Level II), ``icd10pcs`` (inpatient procedures;
the extract contract has no ICD-10-PCS column yet, so such rows are kept for provenance and match no
claim) or ``nucc`` (provider taxonomy).
Codes are stored normalised: upper case, without dots, dashes or spaces. A code ending in ``*`` is a
prefix that matches every code starting with it (``C*`` = every C code, ``M485*`` = M48.5-), so
ICD-10-CM categories need not be enumerated; CPT ranges are written out code by code.

In the database the value sets form one table, ``ref.valueset`` (see :func:`write_valueset_table`),
which the SQL matches against the *distinct* codes present in the data before joining events.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import duckdb

from .contract import CODE_SHAPES
from .errors import IpmError
from .fingerprint import sha256_file

REQUIRED_COLUMNS = ("code", "system", "description", "source")
OPTIONAL_COLUMNS = ("valid_from", "valid_to", "group")

#: Shape of a ``group`` name (it becomes an outcome key).
_GROUP_SHAPE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")

#: Code systems a value set may use, and the spellings accepted for each in user files.
SYSTEM_ALIASES: dict[str, str] = {
    "icd10cm": "icd10cm",
    "icd-10-cm": "icd10cm",
    "icd10": "icd10cm",
    "hcpcs": "hcpcs",
    "cpt": "hcpcs",
    "cpt/hcpcs": "hcpcs",
    "nucc": "nucc",
    "taxonomy": "nucc",
    "icd10pcs": "icd10pcs",
    "icd-10-pcs": "icd10pcs",
}

#: Shape of the part before ``*`` in a prefix code.
_PREFIX_SHAPES = {
    "icd10cm": re.compile(r"^[A-Z][0-9A-Z]{0,6}$"),
    "hcpcs": re.compile(r"^[0-9A-Z]{1,4}$"),
    "nucc": re.compile(r"^[0-9A-Z]{1,9}$"),
    "icd10pcs": re.compile(r"^[0-9A-HJ-NP-Z]{1,6}$"),
}
#: ICD-10-PCS: 7 characters, digits and letters other than I and O (CMS ICD-10-PCS Official Guidelines A.3).
_ICD10PCS_SHAPE = r"^[0-9A-HJ-NP-Z]{7}$"
_CODE_SHAPES = {system: re.compile(CODE_SHAPES.get(system, _ICD10PCS_SHAPE)) for system in _PREFIX_SHAPES}
_STRIP = re.compile(r"[.\-\s]")


@dataclass(frozen=True)
class ValueSetEntry:
    """One row of a value set (code normalised; ``is_prefix`` when it ended in ``*``)."""

    code: str
    system: str
    description: str
    source: str
    valid_from: dt.date | None = None
    valid_to: dt.date | None = None
    group: str | None = None

    @property
    def is_prefix(self) -> bool:
        return self.code.endswith("*")

    @property
    def match_code(self) -> str:
        """The code without its ``*``: equal to, or a prefix of, the codes it matches."""
        return self.code[:-1] if self.is_prefix else self.code

    def matches(self, code: str, on: dt.date | None = None) -> bool:
        """Whether a (normalised) code, used on service date ``on``, is in this entry."""
        hit = code.startswith(self.match_code) if self.is_prefix else code == self.code
        if not hit or on is None:
            return hit
        return (self.valid_from is None or on >= self.valid_from) and (self.valid_to is None or on <= self.valid_to)


@dataclass(frozen=True)
class ValueSet:
    """A named, validated value set and where it came from (file and sha256 for provenance)."""

    name: str
    path: Path
    sha256: str
    entries: tuple[ValueSetEntry, ...]

    def matches(self, code: str, on: dt.date | None = None) -> bool:
        """Whether a code (any form: dots and case are normalised) is in the set on date ``on``."""
        normal = normalise_code(code)
        return any(entry.matches(normal, on) for entry in self.entries)

    @property
    def systems(self) -> set[str]:
        return {entry.system for entry in self.entries}

    def __len__(self) -> int:
        return len(self.entries)


def normalise_code(code: str) -> str:
    """Upper case, without dots, dashes or spaces (``m54.50`` -> ``M5450``)."""
    return _STRIP.sub("", code).upper()


def packaged_folder() -> Path:
    return Path(str(resources.files("ipm_outcomes") / "valuesets"))


def packaged_names() -> list[str]:
    """Names of the value sets shipped with the package."""
    return sorted(p.stem for p in packaged_folder().glob("*.csv"))


def resolve_valueset(name: str, ref: str, base: Path, spec_file: Path | None = None) -> Path:
    """File of value set ``name`` given its spec entry ``ref``: a packaged name or a CSV path.

    Relative paths are taken from ``base`` (the spec file's folder).
    """
    where = f"{spec_file}: valuesets.{name}" if spec_file else f"valuesets.{name}"
    looks_like_path = "/" in ref or "\\" in ref or ref.lower().endswith(".csv")
    if not looks_like_path:
        path = packaged_folder() / f"{ref}.csv"
        if not path.is_file():
            raise IpmError(
                f"{where}: no packaged value set named {ref!r}; packaged: {', '.join(packaged_names())} "
                "(or give a path to your own CSV)"
            )
        return path
    path = Path(ref)
    if not path.is_absolute():
        path = (base / path).resolve()
    if not path.is_file():
        raise IpmError(f"{where}: value-set file {path} does not exist; fix the path in the study spec")
    return path


def _parse_date(text: str, path: Path, line: int, column: str) -> dt.date | None:
    text = text.strip()
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise IpmError(
            f"{path}: line {line}, column {column}: {text!r} is not a date; write YYYY-MM-DD or leave empty"
        ) from None


def read_valueset(name: str, path: str | Path) -> ValueSet:
    """Read and validate one value-set CSV.

    Raises :class:`IpmError` naming the file, line and column of the first problem.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except OSError as exc:
        raise IpmError(f"{path}: cannot read value set {name!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise IpmError(f"{path}: value set {name!r} is not UTF-8 text; save it as UTF-8 CSV") from None
    if not rows:
        raise IpmError(f"{path}: value set {name!r} is empty; it needs a header row {','.join(REQUIRED_COLUMNS)}")
    header = [h.strip().lower() for h in rows[0]]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise IpmError(
            f"{path}: value set {name!r} lacks column(s) {', '.join(missing)}; "
            f"the header must include {','.join(REQUIRED_COLUMNS)}"
        )
    unknown = [h for h in header if h not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    if unknown:
        raise IpmError(
            f"{path}: value set {name!r} has unknown column(s) {', '.join(unknown)}; "
            f"allowed: {','.join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)}"
        )
    index = {h: i for i, h in enumerate(header)}
    entries: list[ValueSetEntry] = []
    seen: dict[tuple, int] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise IpmError(f"{path}: line {line} has {len(row)} fields, the header has {len(header)}; check quoting")
        cell = {h: row[i].strip() for h, i in index.items()}
        raw_system = cell["system"].lower()
        system = SYSTEM_ALIASES.get(raw_system)
        if system is None:
            raise IpmError(
                f"{path}: line {line}, column system: {cell['system']!r} is not a known code system; "
                "use icd10cm, hcpcs (CPT/HCPCS), icd10pcs or nucc"
            )
        code = normalise_code(cell["code"])
        shape = _PREFIX_SHAPES[system] if code.endswith("*") else _CODE_SHAPES[system]
        body = code[:-1] if code.endswith("*") else code
        if not shape.match(body):
            raise IpmError(
                f"{path}: line {line}, column code: {cell['code']!r} is not a valid {system} code"
                + (" prefix" if code.endswith("*") else "")
                + "; a prefix ends in * (e.g. M485*), ranges must be written out code by code"
            )
        for column in ("description", "source"):
            if not cell[column]:
                raise IpmError(f"{path}: line {line}, column {column} is empty; every code needs a {column}")
        valid_from = _parse_date(cell.get("valid_from", ""), path, line, "valid_from")
        valid_to = _parse_date(cell.get("valid_to", ""), path, line, "valid_to")
        if valid_from and valid_to and valid_to < valid_from:
            raise IpmError(f"{path}: line {line}: valid_to {valid_to} is before valid_from {valid_from}")
        group = cell.get("group") or None
        if group is not None and not _GROUP_SHAPE.match(group):
            raise IpmError(
                f"{path}: line {line}, column group: {group!r} is not a group name; "
                "use lower-case letters, digits and _ (starting with a letter)"
            )
        key = (code, system, valid_from, valid_to, group)
        if key in seen:
            raise IpmError(f"{path}: line {line}: code {code} repeats line {seen[key]}; remove the duplicate")
        seen[key] = line
        entries.append(
            ValueSetEntry(code, system, cell["description"], cell["source"], valid_from, valid_to, group)
        )
    if not entries:
        raise IpmError(f"{path}: value set {name!r} has no codes")
    return ValueSet(name=name, path=path, sha256=sha256_file(path), entries=tuple(entries))


def load_valuesets(spec) -> dict[str, ValueSet]:
    """Every value set a study spec names, read and validated (name -> :class:`ValueSet`)."""
    return {name: read_valueset(name, path) for name, path in spec.valueset_paths().items()}


def valueset_rows(valuesets: dict[str, ValueSet], date_shift_days: int = 0) -> list[tuple]:
    """Rows of ``ref.valueset``: one per value set per entry (``code_group`` = the entry's ``group``).

    ``date_shift_days`` moves each code's validity window into a date-shifted extract's calendar
    (its service dates are the true dates plus that many days), so a code system's calendar rules,
    such as M54.5 ending on 2021-09-30, apply to the same true days.
    """
    shift = dt.timedelta(days=date_shift_days)
    return [
        (
            vs.name,
            e.code,
            e.match_code,
            e.is_prefix,
            e.system,
            e.description,
            e.source,
            e.valid_from + shift if e.valid_from is not None else None,
            e.valid_to + shift if e.valid_to is not None else None,
            e.group,
        )
        for vs in valuesets.values()
        for e in vs.entries
    ]


VALUESET_TABLE_DDL = """
create or replace table ref.valueset (
    valueset varchar not null,
    code varchar not null,
    match_code varchar not null,
    is_prefix boolean not null,
    code_system varchar not null,
    description varchar,
    source varchar,
    valid_from date,
    valid_to date,
    code_group varchar
)
"""


def write_valueset_table(
    con: duckdb.DuckDBPyConnection, valuesets: dict[str, ValueSet], date_shift_days: int = 0
) -> int:
    """(Re)create ``ref.valueset`` (one row per value set per code) and ``ref.valueset_file``; returns rows.

    ``ref.valueset_file`` has one row per value set: name, file, sha256 and number of codes, for provenance.
    ``date_shift_days``: see :func:`valueset_rows`.
    """
    con.execute("create schema if not exists ref")
    con.execute(VALUESET_TABLE_DDL)
    rows = valueset_rows(valuesets, date_shift_days)
    insert_rows(con, "ref.valueset", rows)
    con.execute(
        "create or replace table ref.valueset_file "
        "(valueset varchar not null, file varchar not null, sha256 varchar not null, codes integer not null)"
    )
    insert_rows(con, "ref.valueset_file", [(vs.name, str(vs.path), vs.sha256, len(vs)) for vs in valuesets.values()])
    return len(rows)


def insert_rows(con: duckdb.DuckDBPyConnection, table: str, rows: list[tuple]) -> None:
    """Insert rows into an existing table with one statement of bound values.

    (``executemany`` runs one statement per row, which costs half a second for a few hundred codes.)
    """
    if not rows:
        return
    width = len(rows[0])
    row_marks = "(" + ", ".join("?" for _ in range(width)) + ")"
    for start in range(0, len(rows), 500):
        chunk = rows[start : start + 500]
        params = [value for row in chunk for value in row]
        con.execute(f"insert into {table} values " + ", ".join(row_marks for _ in chunk), params)
