"""Read an OMOP CDM v5.3/v5.4 instance into the input contract.

Health systems and research networks that keep their EHR in the OHDSI Common Data Model run the same
study by pointing ``ipm-outcomes ingest --omop SOURCE`` at it. SOURCE is a folder of CDM tables (CSV,
CSV.gz or Parquet files, or folders of them, file and column names in any letter case) or a DuckDB
database file holding the CDM in ``main`` or a named schema (the vocabulary tables may sit in a schema of
their own).

How a standard-coded record reaches the one cohort SQL
------------------------------------------------------
The cohort SQL matches codes against the study's value sets, which list ICD-10-CM and CPT/HCPCS codes, and
describes drugs through ``ndc_reference``. An OHDSI CDM records conditions as standard concepts (mostly
SNOMED CT), drugs as RxNorm, and keeps the claims code only as a source concept when it has one. Rather
than a second cohort SQL, the adapter carries every record in the contract's own code columns:

* a condition or procedure whose source concept is ICD-10-CM or CPT4/HCPCS keeps that code;
* otherwise, a standard concept in one of the study's value sets is carried as the value-set code it
  stands for: the value sets have an OMOP form (``sql/omop/int_standard_concept.sql``) made of the
  standard concepts their codes 'Maps to' in the CDM's own vocabulary plus the shipped standard concepts
  of ``valuesets/omop/standard_concepts.csv`` (for vocabularies trimmed of ICD10CM concepts), each with
  its descendants from ``concept_ancestor``; the code chosen is one valid on the record's date;
* a standard concept of no value set is carried as ``OMOP<concept_id>`` (``contract.STANDARD_CONCEPT_CODE``),
  which no value set matches but whose claim, date and cost count like any other;
* a drug keeps its NDC when it has one, else its RxNorm code as ``RXNORM<rxcui>``; ``ndc_reference`` is
  built for both from the drug's RxNorm ingredients (``concept_ancestor``, ``drug_strength``) and the CDC
  MME factors of ``omop_mapping/mme_conversion.csv``.

So a person's index, red flags, comorbidities, IPM contacts and covariates come out the same whether the CDM
is coded from claims or in standard concepts only (``tests/unit/test_omop_standard.py`` checks the marts
row for row). The vocabulary of a code is always read from ``concept.vocabulary_id``, never from its shape:
an ICD-9-CM V or E code with an unknown source concept is never loaded as ICD-10-CM.

The mapping is declared in one place:

* ``omop_mapping/cdm_columns.csv``: the CDM columns read, with their kind (id, concept, date, ...);
* ``omop_mapping/concept_map.csv``: concept ids, vocabulary codes (LOINC, SNOMED CT, SOPT, Medicare
  specialty, ...) and answer texts, each with the contract value it becomes and its source;
* ``omop_mapping/mme_conversion.csv``: the CDC MME conversion factors by RxNorm ingredient;
* ``omop_mapping/versions.csv``: the version of each shipped table (written to the ``--report`` file);
* ``sql/omop/*.sql``: one SELECT per table; ``int_*`` resolve codes per source row, the contract-named
  files build the extract, ``unmapped.sql`` and ``mapped.sql`` account for every source row and
  ``observation_not_used.sql`` lists the observation and measurement concepts no rule uses.

The result is an extract folder in the input contract, loaded by :func:`ipm_outcomes.ingest.load_extract`
so the usual validation runs. What cannot be mapped is counted, with example source values, in
``meta.omop_unmapped`` (and what was mapped, by path, in ``meta.omop_mapped``); an optional contract table
with nothing mapped is left out of the extract, so the study reports the outcome it feeds as unavailable.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import re
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from pathlib import Path

import duckdb

from . import contract, db
from . import valuesets as valueset_module
from .disclosure import DisclosurePolicy
from .errors import IpmError, ValidationFailed
from .ingest import LoadSummary
from .portable_sql import build_order
from .spec import StudySpec, load_spec
from .validation import ndc_to_11_digits
from .valuesets import ValueSet, insert_rows

#: Contract tables the adapter writes, in load order.
TARGET_TABLES = (
    "eligibility",
    "medical_claim",
    "pharmacy_claim",
    "ndc_reference",
    "ehr_encounter",
    "ehr_pro",
    "ehr_work_status",
)

#: CDM tables without which there is no study population.
REQUIRED_CDM_TABLES = ("person", "observation_period")

#: Score ranges of the instruments the adapter reads beyond the contract's own (contract.PRO_RANGES): the
#: PEG items and mean (0-10 each; Krebs EE et al., J Gen Intern Med 2009;24:733-8), PHQ-2 (0-6) and GAD-7
#: (0-21). The contract keeps other instruments unchecked; the adapter still refuses impossible scores.
EXTRA_PRO_RANGES: dict[str, tuple[float, float]] = {
    "peg": (0.0, 10.0),
    "peg_enjoyment": (0.0, 10.0),
    "peg_activity": (0.0, 10.0),
    "phq2": (0.0, 6.0),
    "gad7": (0.0, 21.0),
}

#: CDM tables that belong to the vocabulary (often kept in a schema of their own in a DuckDB file).
VOCABULARY_TABLES = ("concept", "concept_relationship", "concept_ancestor", "drug_strength")

#: Observation and measurement concepts not used, shown on screen (all of them go to the report file).
NOT_USED_ON_SCREEN = 20

#: Rules of concept_map.csv and the values their target may take.
RULES: dict[str, tuple[str, ...] | str] = {
    "gender": contract.GENDERS,
    "visit_encounter_type": contract.ENCOUNTER_TYPES,
    "visit_place_of_service": "pos",
    "condition_primary": ("primary",),
    "pro_instrument": (*contract.PRO_RANGES, *EXTRA_PRO_RANGES),
    "employment_question": ("work_status",),
    "employment_answer": contract.WORK_STATUSES,
    "employment_finding": contract.WORK_STATUSES,
    "specialty_nucc": "nucc",
    "payer_sopt": contract.PAYER_TYPES,
    "payer_text": contract.PAYER_TYPES,
}

_KIND_TYPES = {
    "id": "VARCHAR",
    "concept": "BIGINT",
    "integer": "BIGINT",
    "number": "DOUBLE",
    "date": "DATE",
    "text": "VARCHAR",
}
_INTEGER_TYPES = {
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
}
_FILE_SUFFIXES = (".csv.gz", ".csv", ".parquet")
_HEADER_ONLY_COLUMN = re.compile(r"column\d+")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SOURCE_ALIAS = "omop_source"


@dataclass(frozen=True)
class CdmColumn:
    """One CDM column the adapter reads (a row of ``omop_mapping/cdm_columns.csv``)."""

    table: str
    column: str
    kind: str
    required: bool


@dataclass(frozen=True)
class SourceTable:
    """Where one CDM table was found and what columns it has (lower-case name -> (name, type))."""

    name: str
    relation: str
    location: str
    columns: dict[str, tuple[str, str]]
    header_only: bool = False


@dataclass(frozen=True)
class UnmappedRow:
    """Source rows (or fields) that could not be mapped, for one reason."""

    source_table: str
    target_table: str
    reason: str
    consequence: str
    rows: int
    example_source_values: tuple[str, ...]


@dataclass(frozen=True)
class MappedRow:
    """Source rows used for a contract table, by mapping path."""

    source_table: str
    target_table: str
    path: str
    rows: int


@dataclass(frozen=True)
class NotUsedConcept:
    """Observation or measurement rows of one concept that no mapping rule uses."""

    source_table: str
    concept_id: int
    vocabulary_id: str | None
    concept_code: str | None
    concept_name: str | None
    rows: int
    example_source_values: tuple[str, ...]

    def label(self) -> str:
        code = f"{self.vocabulary_id} {self.concept_code}" if self.vocabulary_id else f"concept {self.concept_id}"
        name = f" {self.concept_name}" if self.concept_name else ""
        examples = f" (e.g. {', '.join(self.example_source_values)})" if self.example_source_values else ""
        return f"{self.source_table} {code}{name}{examples}"


@dataclass
class OmopMappingReport:
    """What :func:`map_omop_to_extract` read, wrote and could not map.

    ``source_rows`` holds the rows read per CDM table present; ``written`` the rows per contract table
    written to the extract (optional tables with no rows are not written and so count as unavailable);
    ``not_used`` the source rows that no mapping rule concerns (e.g. laboratory measurements), and
    ``not_used_concepts`` the same rows by concept, largest first; ``medical_claim_failures`` the reasons
    condition and procedure rows were not loaded, with their counts (source table, reason, rows).
    """

    source: str
    source_kind: str
    cdm_schema: str | None
    cdm_version: str | None
    extract_dir: Path
    source_rows: dict[str, int]
    absent_tables: tuple[str, ...]
    notes: tuple[str, ...]
    written: dict[str, int]
    not_written: tuple[str, ...]
    mapped: tuple[MappedRow, ...]
    unmapped: tuple[UnmappedRow, ...]
    not_used: dict[str, int] = field(default_factory=dict)
    not_used_concepts: tuple[NotUsedConcept, ...] = ()
    medical_claim_failures: tuple[tuple[str, str, int], ...] = ()

    def unmapped_rows(self, source_table: str | None = None) -> int:
        """Source rows not loaded (consequence 'row not loaded'), overall or for one CDM table."""
        return sum(
            u.rows
            for u in self.unmapped
            if u.consequence == "row not loaded" and (source_table is None or u.source_table == source_table)
        )

    def mapped_rows(self, source_table: str, target_table: str | None = None) -> int:
        """Source rows of one CDM table used (for one contract table, or any)."""
        return sum(
            m.rows
            for m in self.mapped
            if m.source_table == source_table and (target_table is None or m.target_table == target_table)
        )

    def to_dict(self) -> dict:
        """JSON-ready form (the ``omop`` section of the ingest report file)."""
        return {
            "source": self.source,
            "source_kind": self.source_kind,
            "cdm_schema": self.cdm_schema,
            "cdm_version": self.cdm_version,
            "source_rows": self.source_rows,
            "absent_tables": list(self.absent_tables),
            "notes": list(self.notes),
            "written": self.written,
            "not_written": list(self.not_written),
            "not_used": self.not_used,
            "not_used_concepts": [
                {**c.__dict__, "example_source_values": list(c.example_source_values)} for c in self.not_used_concepts
            ],
            "mapping_versions": mapping_versions(),
            "mapped": [m.__dict__ for m in self.mapped],
            "unmapped": [{**u.__dict__, "example_source_values": list(u.example_source_values)} for u in self.unmapped],
        }

    def describe(self, policy: DisclosurePolicy | None = DisclosurePolicy()) -> str:
        """A few lines for people: what was mapped, what was not and why.

        Counts pass the disclosure gate of ``policy`` (``None``: as found, ``--show-small-counts``): a
        count of 1 to min_cell_size - 1 shows as ``<11``, and the persons loaded are withheld when they,
        or the persons left out, would number 1 to min_cell_size - 1.
        """
        count = (lambda n: f"{n:,}") if policy is None else policy.format_count
        where = f"schema {self.cdm_schema} of " if self.cdm_schema else ""
        version = f"CDM {self.cdm_version}" if self.cdm_version else "CDM (version not recorded)"
        lines = [f"OMOP {version} from {where}{self.source_kind} {self.source}"]
        persons = self.source_rows.get("person", 0)
        loaded = self.mapped_rows("person", "eligibility")
        if policy is not None and (policy.is_small(loaded) or policy.is_small(persons - loaded)):
            loaded_text = "withheld (it or the persons left out would be a small count)"
        else:
            loaded_text = f"{loaded:,}"
        lines.append(f"  persons read: {count(persons)}; loaded with an enrollment span: {loaded_text}")
        for table in TARGET_TABLES:
            if table in self.written:
                lines.append(f"  {table}: {count(self.written[table])} rows")
            else:
                lines.append(f"  {table}: nothing mapped, left out (the outcomes it feeds are unavailable)")
        if self.absent_tables:
            lines.append(f"  CDM tables absent (read as empty): {', '.join(self.absent_tables)}")
        for note in self.notes:
            lines.append(f"  note: {note}")
        if self.unmapped:
            lines.append("  not mapped (meta.omop_unmapped):")
            for u in self.unmapped:
                examples = ", ".join(u.example_source_values[:3])
                lines.append(
                    f"    {u.source_table} -> {u.target_table}: {count(u.rows)} {u.consequence}: {u.reason}"
                    + (f" (e.g. {examples})" if examples else "")
                )
        if self.not_used_concepts:
            shown = self.not_used_concepts[:NOT_USED_ON_SCREEN]
            more = len(self.not_used_concepts) - len(shown)
            lines.append(
                f"  observation/measurement concepts not used (largest {len(shown)}"
                + (f"; {more:,} more in the --report file" if more else "")
                + "):"
            )
            lines.extend(f"    {count(c.rows)} rows: {c.label()}" for c in shown)
        return "\n".join(lines)

    def unloadable_reason(self) -> str | None:
        """Why the mapped extract cannot load (one or two lines), or None when it has medical claims."""
        if self.written.get("medical_claim"):
            return None
        conditions = self.source_rows.get("condition_occurrence", 0)
        procedures = self.source_rows.get("procedure_occurrence", 0)
        if not conditions and not procedures:
            return f"OMOP {self.source}: condition_occurrence and procedure_occurrence have no rows; nothing to study"
        top = self.medical_claim_failures[0] if self.medical_claim_failures else None
        common = f"; most common reason ({top[2]:,} {top[0]} rows): {top[1]}" if top else ""
        return (
            f"OMOP {self.source}: {conditions:,} condition and {procedures:,} procedure rows, none with an"
            f" ICD-10-CM/CPT code or a standard concept{common}"
        )


@dataclass
class OmopLoadSummary(LoadSummary):
    """A :class:`~ipm_outcomes.ingest.LoadSummary` of the mapped extract plus the OMOP mapping report."""

    mapping: OmopMappingReport | None = None

    def describe(self, policy=DisclosurePolicy()) -> str:
        head = self.mapping.describe(policy) + "\n" if self.mapping is not None else ""
        return head + super().describe(policy)


# --- the declared mapping ---------------------------------------------------------------------------


def _package_file(*parts: str):
    return resources.files("ipm_outcomes").joinpath(*parts)


def cdm_columns() -> dict[str, tuple[CdmColumn, ...]]:
    """The CDM columns read, per CDM table (from ``omop_mapping/cdm_columns.csv``)."""
    tables: dict[str, list[CdmColumn]] = {}
    with _package_file("omop_mapping", "cdm_columns.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            col = CdmColumn(row["table"], row["column"], row["kind"], row["required"] == "yes")
            if col.kind not in _KIND_TYPES:
                raise IpmError(f"omop_mapping/cdm_columns.csv: unknown kind {col.kind!r} for {col.table}.{col.column}")
            tables.setdefault(col.table, []).append(col)
    return {name: tuple(cols) for name, cols in tables.items()}


def concept_map(path: str | Path | None = None) -> list[dict]:
    """Rows of the concept mapping table, checked; ``path`` replaces the packaged ``concept_map.csv``.

    Each row names a rule, how a source value is recognised (``concept_id``; ``vocabulary_id`` +
    ``concept_code``; or ``text``, compared lower-case) and the ``target`` contract value.
    """
    if path is None:
        handle = _package_file("omop_mapping", "concept_map.csv").open(newline="")
        where = "omop_mapping/concept_map.csv"
    else:
        handle = Path(path).open(newline="")
        where = str(path)
    rows = []
    seen: dict[tuple, str] = {}
    with handle:
        for line, raw in enumerate(csv.DictReader(handle), start=2):
            row = {key: (value or "").strip() or None for key, value in raw.items()}
            rule, target = row.get("rule"), row.get("target")
            if rule not in RULES:
                raise IpmError(f"{where} line {line}: unknown rule {rule!r}; use one of {', '.join(RULES)}")
            allowed = RULES[rule]
            if isinstance(allowed, str):
                if target is None or not re.fullmatch(contract.CODE_SHAPES[allowed], target):
                    raise IpmError(f"{where} line {line}: target {target!r} is not a {allowed} code")
            elif target not in allowed:
                raise IpmError(
                    f"{where} line {line}: target {target!r} of rule {rule} is not one of {', '.join(allowed)}"
                )
            concept_id = row.get("concept_id")
            if concept_id is not None and not concept_id.isdigit():
                raise IpmError(f"{where} line {line}: concept_id {concept_id!r} is not a whole number")
            if row.get("concept_code") and not row.get("vocabulary_id"):
                raise IpmError(f"{where} line {line}: concept_code needs a vocabulary_id")
            if not (concept_id or row.get("concept_code") or row.get("text")):
                raise IpmError(f"{where} line {line}: give a concept_id, a vocabulary_id + concept_code, or a text")
            text = row["text"].lower() if row.get("text") else None
            for key in (
                ("id", rule, concept_id),
                ("code", rule, row.get("vocabulary_id"), row.get("concept_code")),
                ("text", rule, text),
            ):
                if key[-1] is None:
                    continue
                if key in seen and seen[key] != target:
                    raise IpmError(
                        f"{where} line {line}: {key[-1]!r} of rule {rule} maps to both {seen[key]} and {target}"
                    )
                seen[key] = target
            rows.append(
                {
                    "rule": rule,
                    "vocabulary_id": row.get("vocabulary_id"),
                    "concept_code": row.get("concept_code"),
                    "concept_id": int(concept_id) if concept_id else None,
                    "text": text,
                    "target": target,
                    "label": row.get("label"),
                }
            )
    return rows


# --- reading the source --------------------------------------------------------------------------------


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _literal(text: str) -> str:
    # File paths go into table functions, which take no bound parameters inside a view.
    return "'" + text.replace("'", "''") + "'"


def _is_duckdb_file(path: Path) -> bool:
    with path.open("rb") as handle:
        header = handle.read(12)
    return header[8:12] == b"DUCK"


def _describe(con: duckdb.DuckDBPyConnection, relation: str) -> dict[str, tuple[str, str]]:
    columns: dict[str, tuple[str, str]] = {}
    for name, type_, *_ in con.execute(f"describe select * from {relation}").fetchall():
        columns.setdefault(name.lower(), (name, type_.upper()))
    return columns


def _header_only_columns(con: duckdb.DuckDBPyConnection, relation: str, columns) -> list[str] | None:
    """Column names of a table stored as its header row alone, else None.

    A CSV with only a header row, loaded without header detection, becomes one row of column names in
    columns column0..N; the DuckDB file of the Eunomia GiBleed sample holds its empty tables that way.
    """
    if not columns or not all(_HEADER_ONLY_COLUMN.fullmatch(name) for name in columns):
        return None
    rows = con.execute(f"select * from {relation} limit 2").fetchall()
    if len(rows) != 1:
        return None
    values = [v for v in rows[0] if v is not None]
    if values and all(isinstance(v, str) and _IDENTIFIER.fullmatch(v.strip()) for v in values):
        return [v.strip().lower() for v in values]
    return None


def _folder_tables(con: duckdb.DuckDBPyConnection, folder: Path, wanted) -> tuple[dict[str, SourceTable], list[str]]:
    found: dict[str, list[Path]] = {}
    ignored = []
    for entry in sorted(folder.iterdir()):
        lower = entry.name.lower()
        if entry.is_dir():
            parts = sorted(p for p in entry.iterdir() if p.is_file() and p.name.lower().endswith(_FILE_SUFFIXES))
            if lower in wanted and parts:
                found.setdefault(lower, []).append(entry)
            continue
        stem = next((lower[: -len(s)] for s in _FILE_SUFFIXES if lower.endswith(s)), None)
        if stem in wanted:
            found.setdefault(stem, []).append(entry)
        elif not entry.name.startswith("."):
            ignored.append(entry.name)
    tables = {}
    for name, entries in found.items():
        if len(entries) > 1:
            names = ", ".join(e.name for e in entries)
            raise IpmError(f"{folder}: CDM table {name} is given more than once ({names}); keep one")
        entry = entries[0]
        files = sorted(p for p in entry.iterdir() if p.is_file()) if entry.is_dir() else [entry]
        files = [p for p in files if p.name.lower().endswith(_FILE_SUFFIXES)]
        kinds = {"parquet" if p.name.lower().endswith(".parquet") else "csv" for p in files}
        if len(kinds) > 1:
            raise IpmError(f"{entry}: mixes CSV and Parquet parts; use one format per table")
        file_list = "[" + ", ".join(_literal(str(p)) for p in files) + "]"
        if kinds == {"parquet"}:
            relation = f"read_parquet({file_list}, union_by_name = true)"
        else:
            # Everything as text: the view casts each column to its declared kind (ids stay exact).
            relation = f"read_csv({file_list}, header = true, all_varchar = true, union_by_name = true)"
        try:
            columns = _describe(con, relation)
        except duckdb.Error as exc:
            raise IpmError(f"{entry}: cannot read CDM table {name}: {exc}".splitlines()[0]) from exc
        tables[name] = SourceTable(name, relation, str(entry), columns)
    notes = [f"files that are not CDM tables the study reads were ignored: {', '.join(ignored)}"] if ignored else []
    return tables, notes


def _duckdb_tables(
    con: duckdb.DuckDBPyConnection, path: Path, wanted, cdm_schema: str | None
) -> tuple[dict[str, SourceTable], str]:
    try:
        con.execute(f"attach {_literal(str(path))} as {_SOURCE_ALIAS} (read_only)")
    except duckdb.Error as exc:
        raise IpmError(f"{path}: cannot open as a DuckDB database: {exc}".splitlines()[0]) from exc
    listing = con.execute(
        """
        select schema_name, table_name from duckdb_tables() where database_name = $db
        union all
        select schema_name, view_name from duckdb_views() where database_name = $db and not internal
        """,
        {"db": _SOURCE_ALIAS},
    ).fetchall()
    by_schema: dict[str, dict[str, str]] = {}
    for schema, table in listing:
        by_schema.setdefault(schema, {}).setdefault(table.lower(), table)
    with_person = sorted(s for s, tables in by_schema.items() if "person" in tables)
    if cdm_schema is not None:
        if cdm_schema not in by_schema:
            raise IpmError(f"{path}: no schema {cdm_schema!r}; schemas: {', '.join(sorted(by_schema)) or 'none'}")
        schema = cdm_schema
    elif len(with_person) == 1:
        schema = with_person[0]
    elif not with_person:
        raise IpmError(f"{path}: no schema holds a person table; is this an OMOP CDM database?")
    else:
        raise IpmError(
            f"{path}: several schemas hold a person table ({', '.join(with_person)}); choose one with cdm_schema"
        )
    tables = {}
    for name in wanted:
        holder = schema if name in by_schema[schema] else None
        if holder is None and name in VOCABULARY_TABLES:
            # The vocabulary often lives in a schema of its own.
            holders = sorted(s for s, t in by_schema.items() if name in t)
            holder = holders[0] if len(holders) == 1 else None
        if holder is None:
            continue
        actual = by_schema[holder][name]
        relation = f"{_SOURCE_ALIAS}.{_quote(holder)}.{_quote(actual)}"
        tables[name] = SourceTable(name, relation, f"{path.name}:{holder}.{actual}", _describe(con, relation))
    return tables, schema


def _cast(kind: str, column: str, source_type: str) -> str:
    q = _quote(column)
    is_int = source_type in _INTEGER_TYPES
    is_float = source_type in ("FLOAT", "DOUBLE", "REAL") or source_type.startswith("DECIMAL")
    is_text = source_type == "VARCHAR"
    if kind == "id":
        if is_int:
            return f"cast({q} as varchar)"
        if is_float:
            return f"cast(try_cast({q} as bigint) as varchar)"
        if is_text:
            # Ids written by tools that turned integers into floats end in '.0'.
            return rf"regexp_replace(nullif(trim({q}), ''), '\.0+$', '')"
        return f"cast({q} as varchar)"
    if kind in ("concept", "integer"):
        if is_int:
            return f"cast({q} as bigint)"
        if is_text:
            return f"try_cast(try_cast(nullif(trim({q}), '') as double) as bigint)"
        return f"try_cast({q} as bigint)"
    if kind == "number":
        if is_int or is_float:
            return f"cast({q} as double)"
        if is_text:
            return f"try_cast(nullif(trim({q}), '') as double)"
        return f"try_cast({q} as double)"
    if kind == "date":
        if source_type == "DATE":
            return q
        if source_type.startswith("TIMESTAMP"):
            return f"cast({q} as date)"
        if is_int:
            return f"cast(try_strptime(cast({q} as varchar), '%Y%m%d') as date)"
        if is_text:
            return (
                f"coalesce(try_cast(trim({q}) as date), cast(try_cast(trim({q}) as timestamp) as date), "
                f"cast(try_strptime(trim({q}), '%Y%m%d') as date))"
            )
        return f"try_cast({q} as date)"
    return f"nullif(trim(cast({q} as varchar)), '')"


def _create_cdm_views(
    con: duckdb.DuckDBPyConnection, declared: Mapping[str, tuple[CdmColumn, ...]], tables: Mapping[str, SourceTable]
) -> tuple[list[str], list[str]]:
    """Create ``cdm.<table>`` with the declared columns, typed, lower-case; absent tables are empty."""
    con.execute("create schema if not exists cdm")
    absent, notes = [], []
    for name, columns in declared.items():
        source = tables.get(name)
        header = None
        if source is not None:
            header = _header_only_columns(con, source.relation, source.columns)
            if header is not None:
                notes.append(f"{source.location} holds only a header row: read as an empty table")
        if source is None:
            if name in REQUIRED_CDM_TABLES:
                raise IpmError(f"OMOP source has no {name} table; it is required (one file or table named {name})")
            absent.append(name)
        present = set(header) if header is not None else set(source.columns) if source else set()
        exprs = []
        for col in columns:
            target_type = _KIND_TYPES[col.kind]
            if source is not None and col.column not in present and col.required:
                raise IpmError(
                    f"{source.location}: CDM table {name} has no column {col.column}; it is required"
                    " (column names may be in any letter case)"
                )
            if source is not None and header is None and col.column in source.columns:
                actual, source_type = source.columns[col.column]
                exprs.append(f"{_cast(col.kind, actual, source_type)} as {col.column}")
            else:
                exprs.append(f"cast(null as {target_type}) as {col.column}")
        select = ",\n    ".join(exprs)
        if source is None or header is not None:
            con.execute(f"create or replace view cdm.{name} as select\n    {select}\nwhere false")
        else:
            con.execute(f"create or replace view cdm.{name} as select\n    {select}\nfrom {source.relation}")
    return absent, notes


def standard_concepts(valuesets: Mapping[str, ValueSet]) -> list[dict]:
    """Rows of ``valuesets/omop/standard_concepts.csv`` for the study's packaged value sets, checked.

    Each row names a standard concept by vocabulary and code (resolved to a concept id through the
    CDM's own concept table), whether its descendants count, and the value-set code a record of it is
    carried as (``equivalent_code``, which must be a code of that value set). Rows of a value set the
    study replaced with its own file are left out: they describe the packaged list, not the study's.
    """
    where = "valuesets/omop/standard_concepts.csv"
    packaged = Path(str(valueset_module.packaged_folder()))
    rows = []
    with _package_file("valuesets", "omop", "standard_concepts.csv").open(newline="") as handle:
        for line, raw in enumerate(csv.DictReader(handle), start=2):
            row = {key: (value or "").strip() for key, value in raw.items()}
            vs = valuesets.get(row["valueset"])
            if vs is None or Path(vs.path).parent != packaged:
                continue
            if row["include_descendants"] not in ("yes", "no"):
                raise IpmError(f"{where} line {line}: include_descendants must be yes or no")
            code = valueset_module.normalise_code(row["equivalent_code"])
            entry = next((e for e in vs.entries if not e.is_prefix and e.code == code), None)
            if entry is None or not row["vocabulary_id"] or not row["concept_code"] or not row["source"]:
                raise IpmError(
                    f"{where} line {line}: needs a vocabulary_id, concept_code and source, and an equivalent_code"
                    f" listed in value set {row['valueset']}"
                )
            rows.append(
                {
                    "valueset": row["valueset"],
                    "vocabulary_id": row["vocabulary_id"],
                    "concept_code": row["concept_code"],
                    "include_descendants": row["include_descendants"] == "yes",
                    "equivalent_code": code,
                    "code_system": entry.system,
                }
            )
    return rows


def mme_conversion() -> list[tuple[str, str, float | None]]:
    """(RxNorm ingredient code, ingredient, CDC MME conversion factor or None) from ``mme_conversion.csv``."""
    rows = []
    with _package_file("omop_mapping", "mme_conversion.csv").open(newline="") as handle:
        for raw in csv.DictReader(handle):
            factor = raw["mme_conversion_factor"].strip()
            rows.append((raw["rxnorm_code"].strip(), raw["ingredient"].strip(), float(factor) if factor else None))
    return rows


def mapping_versions() -> dict[str, str]:
    """Version of each shipped mapping table (``omop_mapping/versions.csv``), for the report."""
    with _package_file("omop_mapping", "versions.csv").open(newline="") as handle:
        return {row["table"]: row["version"] for row in csv.DictReader(handle)}


def _load_mapping_tables(
    con: duckdb.DuckDBPyConnection, rows: list[dict], valuesets: Mapping[str, ValueSet]
) -> None:
    con.execute("create schema if not exists omop_map")
    con.execute(
        """
        create or replace table omop_map.concept_map (
            rule varchar, vocabulary_id varchar, concept_code varchar, concept_id bigint,
            text varchar, target varchar, label varchar
        )
        """
    )
    con.executemany(
        "insert into omop_map.concept_map values (?, ?, ?, ?, ?, ?, ?)",
        [
            (r["rule"], r["vocabulary_id"], r["concept_code"], r["concept_id"], r["text"], r["target"], r["label"])
            for r in rows
        ],
    )
    con.execute("create or replace table omop_map.pro_range (instrument varchar, low double, high double)")
    ranges = {**contract.PRO_RANGES, **EXTRA_PRO_RANGES}
    insert_rows(con, "omop_map.pro_range", [(name, low, high) for name, (low, high) in ranges.items()])
    con.execute(
        "create or replace table omop_map.valueset (valueset varchar, code_system varchar, match_code varchar,"
        " is_prefix boolean, valid_from date, valid_to date)"
    )
    insert_rows(
        con,
        "omop_map.valueset",
        [
            (name, e.system, e.match_code, e.is_prefix, e.valid_from, e.valid_to)
            for name, vs in valuesets.items()
            for e in vs.entries
            if e.system in ("icd10cm", "hcpcs")
        ],
    )
    con.execute(
        "create or replace table omop_map.standard_concept (valueset varchar, vocabulary_id varchar,"
        " concept_code varchar, include_descendants boolean, equivalent_code varchar, code_system varchar)"
    )
    insert_rows(con, "omop_map.standard_concept", [tuple(r.values()) for r in standard_concepts(valuesets)])
    con.execute(
        "create or replace table omop_map.mme_conversion (rxnorm_code varchar, ingredient varchar,"
        " mme_conversion_factor double)"
    )
    insert_rows(con, "omop_map.mme_conversion", mme_conversion())
    # Ingest's own NDC normalisation, so a hyphenated source value is looked up as the 11-digit code.
    con.execute(f"create or replace macro omop_ndc11(x) as ({ndc_to_11_digits('x')})")


def _cdm_version(con: duckdb.DuckDBPyConnection, tables: Mapping[str, SourceTable]) -> str | None:
    source = tables.get("cdm_source")
    if source is None or "cdm_version" not in source.columns:
        return None
    actual = _quote(source.columns["cdm_version"][0])
    row = con.execute(f"select cast({actual} as varchar) from {source.relation} limit 1").fetchall()
    return row[0][0] if row and row[0][0] else None


# --- the public functions ---------------------------------------------------------------------------------


def map_omop_to_extract(
    source: str | Path,
    out_dir: str | Path,
    *,
    cdm_schema: str | None = None,
    concept_map_path: str | Path | None = None,
    progress: bool = False,
    spec: StudySpec | None = None,
) -> OmopMappingReport:
    """Map an OMOP CDM instance to an extract folder in the input contract.

    Parameters
    ----------
    source
        A folder of CDM tables (``person.csv``, ``PERSON.csv.gz``, ``Person.parquet`` or a folder
        ``person/`` of parts) or a DuckDB database file holding the CDM.
    out_dir
        Folder to write the extract into (created; contract tables already there are replaced).
    cdm_schema
        Schema of a DuckDB source holding the CDM, when more than one schema has a person table.
    concept_map_path
        A concept mapping CSV to use instead of the packaged ``omop_mapping/concept_map.csv``.
    progress
        Print a line per step.
    spec
        The study spec whose value sets define the standard concepts read (default: the packaged study).

    Returns
    -------
    OmopMappingReport
        ``mapped`` has one row per CDM table per contract table per mapping path; ``unmapped`` one row
        per CDM table per contract table per reason, with up to five example source values.
    """
    source = Path(source)
    out_dir = Path(out_dir)
    if not source.exists():
        raise IpmError(f"{source}: no such folder or DuckDB file")
    declared = cdm_columns()
    rules = concept_map(concept_map_path)
    study_valuesets = valueset_module.load_valuesets(spec if spec is not None else load_spec())
    con = duckdb.connect()
    try:
        wanted = set(declared) | {"cdm_source"}
        schema = None
        if source.is_dir():
            kind = "folder"
            tables, notes = _folder_tables(con, source, wanted)
        elif _is_duckdb_file(source):
            kind = "DuckDB file"
            tables, schema = _duckdb_tables(con, source, wanted, cdm_schema)
            notes = []
        else:
            raise IpmError(f"{source}: neither a folder of CDM tables nor a DuckDB database file")
        if progress:
            print(f"omop: {kind} {source}: CDM tables found: {', '.join(sorted(tables)) or 'none'}", file=sys.stderr)
        absent, view_notes = _create_cdm_views(con, declared, tables)
        notes += view_notes
        _load_mapping_tables(con, rules, study_valuesets)
        params = {f"{name}_shape": pattern for name, pattern in contract.CODE_SHAPES.items()}
        con.execute("begin transaction")
        db.run_layers(con, params, layers=("omop",), ordered_tables=build_order(("omop",)))
        con.execute("commit")
        conflicts = con.execute(
            "select rule, concept_id, list(distinct target) from omop.int_rule_concept "
            "group by rule, concept_id having count(distinct target) > 1 order by rule, concept_id"
        ).fetchall()
        if conflicts:
            rule, concept_id, targets = conflicts[0]
            raise IpmError(
                f"concept mapping: concept {concept_id} gets two values for rule {rule} ({', '.join(targets)});"
                " fix the mapping table"
            )
        out_dir.mkdir(parents=True, exist_ok=True)
        written, not_written = {}, []
        for table in TARGET_TABLES:
            rows = con.execute(f"select count(*) from omop.{table}").fetchall()[0][0]
            for suffix in contract.TABLE_FILE_SUFFIXES:
                stale = out_dir / f"{table}{suffix}"
                if stale.exists():
                    stale.unlink()
            if rows == 0 and not contract.TABLES_BY_NAME[table].required:
                not_written.append(table)
                continue
            target = out_dir / f"{table}.parquet"
            con.execute(f"copy ({_extract_select(con, table)}) to {_literal(str(target))} (format parquet)")
            written[table] = rows
            if progress:
                print(f"omop: {table}: {rows:,} rows", file=sys.stderr)
        source_rows = {
            name: con.execute(f"select count(*) from cdm.{name}").fetchall()[0][0]
            for name in declared
            if name in tables
        }
        mapped = tuple(
            MappedRow(*row)
            for row in con.execute("select source_table, target_table, path, rows from omop.mapped").fetchall()
        )
        unmapped = tuple(
            UnmappedRow(s, t, r, c, n, tuple(ex))
            for s, t, r, c, n, ex in con.execute(
                "select source_table, target_table, reason, consequence, rows, example_source_values from omop.unmapped"
            ).fetchall()
        )
        version = _cdm_version(con, tables)
        not_used_concepts = tuple(
            NotUsedConcept(*row[:-1], tuple(row[-1]))
            for row in con.execute(
                "select source_table, concept_id, vocabulary_id, concept_code, concept_name, rows,"
                " example_source_values from omop.observation_not_used"
            ).fetchall()
        )
        no_claim_reasons = con.execute(
            "select source_table, reason, rows from omop.unmapped"
            " where target_table = 'medical_claim' and consequence = 'row not loaded' order by rows desc"
        ).fetchall()
    finally:
        con.close()
    report = OmopMappingReport(
        source=str(source),
        source_kind=kind,
        cdm_schema=schema,
        cdm_version=version,
        extract_dir=out_dir,
        source_rows=source_rows,
        absent_tables=tuple(absent),
        notes=tuple(notes),
        written=written,
        not_written=tuple(not_written),
        mapped=mapped,
        unmapped=unmapped,
        not_used_concepts=not_used_concepts,
        medical_claim_failures=tuple(no_claim_reasons),
    )
    # Rows that no rule concerns (laboratory results, allergies, ...) are counted, not listed.
    for name in ("measurement", "observation"):
        if name in source_rows:
            report.not_used[name] = source_rows[name] - report.mapped_rows(name) - report.unmapped_rows(name)
    return report


def _extract_select(con: duckdb.DuckDBPyConnection, table: str) -> str:
    """SELECT writing one contract table; medical_claim's list of codes becomes diagnosis_code_1..N."""
    if table != "medical_claim":
        return f"select * from omop.{table}"
    widest = con.execute("select coalesce(max(len(diagnosis_codes)), 0) from omop.medical_claim").fetchall()[0][0]
    columns = ", ".join(
        f"diagnosis_codes[{n}] as {contract.diagnosis_column(n)}" for n in range(1, max(widest, 1) + 1)
    )
    return f"select * exclude (diagnosis_codes), {columns} from omop.medical_claim"


def write_mapping_report(
    con: duckdb.DuckDBPyConnection, report: OmopMappingReport, loaded_at: object | None = None
) -> None:
    """Write ``meta.omop_source``, ``meta.omop_mapped``, ``meta.omop_unmapped`` and ``meta.omop_not_used``.

    Grains: omop_source one row per CDM table read; omop_mapped one row per CDM table per contract
    table per mapping path; omop_unmapped one row per CDM table per contract table per reason;
    omop_not_used one row per observation or measurement concept that no mapping rule uses.
    ``loaded_at`` is the ``meta.load.loaded_at`` of the load they describe: a later load of a native
    extract leaves these tables behind, and the differing time tells them apart.
    """
    con.execute(f"create schema if not exists {contract.META_SCHEMA}")
    meta = contract.META_SCHEMA
    con.execute(
        f"create or replace table {meta}.omop_source (source varchar, source_kind varchar, cdm_schema varchar,"
        " cdm_version varchar, source_table varchar, rows bigint, not_used bigint, loaded_at timestamp)"
    )
    con.executemany(
        f"insert into {meta}.omop_source values (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                report.source,
                report.source_kind,
                report.cdm_schema,
                report.cdm_version,
                name,
                rows,
                report.not_used.get(name, 0),
                loaded_at,
            )
            for name, rows in sorted(report.source_rows.items())
        ],
    )
    con.execute(
        f"create or replace table {meta}.omop_mapped (source_table varchar, target_table varchar, path varchar,"
        " rows bigint)"
    )
    if report.mapped:
        con.executemany(
            f"insert into {meta}.omop_mapped values (?, ?, ?, ?)",
            [(m.source_table, m.target_table, m.path, m.rows) for m in report.mapped],
        )
    con.execute(
        f"create or replace table {meta}.omop_unmapped (source_table varchar, target_table varchar, reason varchar,"
        " consequence varchar, count bigint, example_source_values varchar[])"
    )
    if report.unmapped:
        con.executemany(
            f"insert into {meta}.omop_unmapped values (?, ?, ?, ?, ?, ?)",
            [
                (u.source_table, u.target_table, u.reason, u.consequence, u.rows, list(u.example_source_values))
                for u in report.unmapped
            ],
        )
    con.execute(
        f"create or replace table {meta}.omop_not_used (source_table varchar, concept_id bigint,"
        " vocabulary_id varchar, concept_code varchar, concept_name varchar, rows bigint,"
        " example_source_values varchar[])"
    )
    insert_rows(
        con,
        f"{meta}.omop_not_used",
        [(*dataclasses.astuple(c)[:-1], list(c.example_source_values)) for c in report.not_used_concepts],
    )


def load_omop(
    source: str | Path,
    db_path: str | Path,
    *,
    report_path: str | Path | None = None,
    progress: bool = False,
    cdm_schema: str | None = None,
    work_dir: str | Path | None = None,
    today: date | None = None,
    spec: StudySpec | None = None,
    reference_date: date | None = None,
    allow_identifiers: bool = False,
    memory_limit: str | None = None,
    threads: int | None = None,
) -> OmopLoadSummary:
    """Map an OMOP CDM instance into the input contract and load it like any extract.

    The mapped extract is written to ``work_dir`` (kept, for inspection) or a temporary folder, then
    :func:`ipm_outcomes.ingest.load_extract` validates and loads it into ``db_path``; the mapping report
    goes to ``meta.omop_*`` in the same database and, when ``report_path`` is given, into the report file
    under ``"omop"``. The CDM schema of a DuckDB source with several is chosen with ``cdm_schema``;
    ``spec`` is the study whose value sets say which standard concepts count (default: the packaged
    study). ``today``, ``reference_date`` (a date-shifted CDM), ``allow_identifiers``, ``memory_limit``
    and ``threads`` mean what they mean for :func:`ipm_outcomes.ingest.load_extract`, which receives them.

    A source with nothing to put in ``medical_claim`` is refused before ingest, saying why in one line;
    an error found by ingest names the mapped table, never the temporary folder it was written to.

    Returns
    -------
    OmopLoadSummary
        The ingest :class:`~ipm_outcomes.ingest.LoadSummary` plus ``mapping``, the
        :class:`OmopMappingReport`.
    """
    from . import ingest

    with tempfile.TemporaryDirectory(prefix="ipm-omop-") as tmp:
        extract_dir = Path(work_dir) if work_dir is not None else Path(tmp) / "extract"
        mapping = map_omop_to_extract(source, extract_dir, cdm_schema=cdm_schema, progress=progress, spec=spec)
        try:
            unloadable = mapping.unloadable_reason()
            if unloadable is not None:
                raise IpmError(unloadable + " (the --report file lists every reason)")
            load = ingest.load_extract(
                extract_dir,
                db_path,
                report_path=report_path,
                progress=progress,
                today=today,
                reference_date=reference_date,
                allow_identifiers=allow_identifiers,
                memory_limit=memory_limit,
                threads=threads,
                source_name=f"OMOP {Path(source).resolve()}",
            )
        except IpmError as exc:
            if work_dir is not None:
                raise
            raise _without_folder(exc, extract_dir, f"OMOP {source}") from None
        finally:
            # A failed load still says what could not be mapped, next to what broke the contract.
            if report_path is not None:
                _add_to_report_file(Path(report_path), mapping)
    con = db.connect(db_path)
    try:
        loaded_at = con.execute(f"select max(loaded_at) from {contract.META_SCHEMA}.load").fetchall()[0][0]
        con.execute("begin transaction")
        write_mapping_report(con, mapping, loaded_at)
        con.execute("commit")
    finally:
        con.close()
    fields = {f.name: getattr(load, f.name) for f in dataclasses.fields(LoadSummary)}
    if work_dir is None:
        # The temporary folder is gone once this returns: the summary names the OMOP source instead.
        fields["extract_dir"] = Path(source)
    return OmopLoadSummary(**fields, mapping=mapping)


def _without_folder(exc: IpmError, folder: Path, source: str) -> IpmError:
    """The same error naming the OMOP source instead of the temporary folder (gone when the user reads it)."""
    message = str(exc).replace(f"{folder}/", f"{source} mapped to ").replace(str(folder), f"{source} (mapped)")
    if isinstance(exc, ValidationFailed):
        return ValidationFailed(message, exc.problems)
    return type(exc)(message)


def _add_to_report_file(path: Path, mapping: OmopMappingReport) -> None:
    content = json.loads(path.read_text()) if path.exists() and path.stat().st_size else {}
    if not isinstance(content, dict):
        content = {"ingest": content}
    content["omop"] = mapping.to_dict()
    path.write_text(json.dumps(content, indent=2, default=str))
