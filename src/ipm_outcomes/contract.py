"""The input data contract: every table and column an extract may hold, declared once.

Ingest enforces it, the synthetic generator writes it, the OMOP adapter maps into it, and
``data/README.md`` documents it (a test keeps the two in step). Column names follow the Tuva
Project claims input layer where one exists.

An extract is a folder with one file per table: ``<table>.csv``, ``<table>.csv.gz``,
``<table>.parquet`` or a folder ``<table>/`` of parquet parts. Loaded tables live in the
``raw`` schema of the DuckDB file, typed and normalised (the SQL layers staging -> intermediate
-> marts read from there). ``raw.medical_claim`` keeps the extract's diagnosis columns as they
come (``diagnosis_code_1`` .. ``diagnosis_code_N``); the view ``raw.medical_claim_diagnosis``
unpivots them (one row per claim line per diagnosis), so the load writes each code once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

from .vocabulary import INSTRUMENTS

RAW_SCHEMA = "raw"
META_SCHEMA = "meta"

#: File forms an extract table may take, in the order they are looked for.
TABLE_FILE_SUFFIXES = (".parquet", ".csv", ".csv.gz")

#: Longest CSV line (one row, in bytes) ingest reads; a longer line is refused as malformed (DuckDB's
#: own limit, which bounds the memory of each reader thread).
CSV_MAX_LINE_BYTES = 2_000_000

#: Earliest plausible date in any date column (service, enrollment, death): earlier dates are
#: placeholders for unknown dates (1800-01-01, 0001-01-01) and are refused.
EARLIEST_DATE = date(1900, 1, 1)

#: Medical claims carry ``diagnosis_code_1`` .. ``diagnosis_code_N`` for any N >= 1.
DIAGNOSIS_COLUMN_PREFIX = "diagnosis_code_"

#: A record coded only in a standard OMOP concept that none of the study's value sets lists is carried as
#: ``OMOP<concept_id>`` (see :mod:`ipm_outcomes.omop`): no value set matches it, but the claim, its date and
#: its cost still count. An ICD-10-CM or CPT/HCPCS code never has this shape.
STANDARD_CONCEPT_CODE = r"OMOP[0-9]{1,12}"

#: Regular expressions for code shapes, applied after normalisation (upper case; no dots, dashes or spaces).
CODE_SHAPES: dict[str, str] = {
    # ICD-10-CM: letter, digit, then 1-5 alphanumerics (3 to 7 characters; U for the emergency-use codes)
    "icd10cm": rf"^([A-Z][0-9][0-9A-Z]{{1,5}}|{STANDARD_CONCEPT_CODE})$",
    # CPT (5 digits; Category II/III end in F/T) or HCPCS Level II (letter + 4 digits)
    "hcpcs": rf"^([0-9]{{4}}[0-9A-Z]|[A-Z][0-9]{{4}}|{STANDARD_CONCEPT_CODE})$",
    # NUCC Health Care Provider Taxonomy: 10 characters ending in X
    "nucc": r"^[0-9]{3}[0-9A-Z]{6}X$",
    # NDC in the 11-digit 5-4-2 billing form; a drug record without one (an OMOP drug_exposure coded only in
    # RxNorm) is keyed by its RxNorm code as RXNORM<rxcui>, described in ndc_reference like an NDC
    "ndc": rf"^([0-9]{{11}}|RXNORM[0-9]{{1,10}}|{STANDARD_CONCEPT_CODE})$",
    # National Provider Identifier
    "npi": r"^[0-9]{10}$",
    # CMS place of service
    "pos": r"^[0-9]{2}$",
}

#: Valid score ranges per patient-reported instrument (inclusive), from :mod:`ipm_outcomes.vocabulary`.
#: Other instruments are kept unchecked.
PRO_RANGES: dict[str, tuple[float, float]] = {name: i.range for name, i in INSTRUMENTS.items()}

GENDERS = ("male", "female", "unknown")
PAYER_TYPES = ("commercial", "medicare", "medicaid", "workers_comp", "other")
CLAIM_TYPES = ("professional", "institutional")
ENCOUNTER_TYPES = ("office", "telehealth", "procedure", "ed", "inpatient", "other")
WORK_STATUSES = (
    "working",
    "modified_duty",
    "off_work",
    "disability_short_term",
    "disability_long_term",
    "retired",
    "unemployed",
)


@dataclass(frozen=True)
class Column:
    """One declared column.

    ``type`` is the DuckDB type in the raw schema. ``nullable`` says whether empty values are allowed;
    ``allowed`` lists enumerated values; ``code_system`` names a shape in :data:`CODE_SHAPES`
    (values are normalised before the shape is checked).
    """

    name: str
    type: str
    description: str
    nullable: bool = False
    allowed: tuple[str, ...] | None = None
    code_system: str | None = None


@dataclass(frozen=True)
class Table:
    """One declared table of an extract.

    ``key`` columns must be unique together; ``ordered_dates`` pairs (start, end) must satisfy
    end >= start; ``source`` is ``claims`` or ``ehr``.
    """

    name: str
    grain: str
    source: str
    required: bool
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()
    ordered_dates: tuple[tuple[str, str], ...] = ()
    has_diagnosis_columns: bool = False
    description: str = ""
    unavailable_without: str = field(default="")

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"{self.name} has no column {name!r}")

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(col.name for col in self.columns)


def _c(name, type_, description, **kw) -> Column:
    return Column(name=name, type=type_, description=description, **kw)


ELIGIBILITY = Table(
    name="eligibility",
    grain="one row per person per enrollment span",
    source="claims",
    required=True,
    key=("person_id", "enrollment_start_date"),
    ordered_dates=(("enrollment_start_date", "enrollment_end_date"),),
    columns=(
        _c("person_id", "VARCHAR", "De-identified person token, shared by claims and EHR tables"),
        _c("gender", "VARCHAR", "Administrative gender", allowed=GENDERS),
        _c("birth_year", "INTEGER", "Year of birth (a full date of birth is a direct identifier and is refused)"),
        _c("death_date", "DATE", "Date of death, if known", nullable=True),
        _c("enrollment_start_date", "DATE", "First day of the enrollment span"),
        _c("enrollment_end_date", "DATE", "Last day of the enrollment span"),
        _c("payer_type", "VARCHAR", "Line of business", allowed=PAYER_TYPES),
        _c("state", "VARCHAR", "Two-letter US state of residence", nullable=True),
    ),
)

MEDICAL_CLAIM = Table(
    name="medical_claim",
    grain="one row per claim line",
    source="claims",
    required=True,
    key=("claim_id", "claim_line_number"),
    ordered_dates=(("claim_start_date", "claim_end_date"),),
    has_diagnosis_columns=True,
    columns=(
        _c("claim_id", "VARCHAR", "Claim identifier"),
        _c("claim_line_number", "INTEGER", "Line number within the claim"),
        _c("person_id", "VARCHAR", "De-identified person token"),
        _c("claim_type", "VARCHAR", "Professional (CMS-1500) or institutional (UB-04) claim", allowed=CLAIM_TYPES),
        _c("claim_start_date", "DATE", "First date of service"),
        _c("claim_end_date", "DATE", "Last date of service"),
        _c("place_of_service_code", "VARCHAR", "CMS place-of-service code", nullable=True, code_system="pos"),
        _c("rendering_npi", "VARCHAR", "Rendering provider NPI", nullable=True, code_system="npi"),
        _c(
            "rendering_taxonomy_code",
            "VARCHAR",
            "Rendering provider NUCC taxonomy code",
            nullable=True,
            code_system="nucc",
        ),
        _c("hcpcs_code", "VARCHAR", "CPT/HCPCS procedure code of the line", nullable=True, code_system="hcpcs"),
        _c("hcpcs_modifier_1", "VARCHAR", "First procedure modifier", nullable=True),
        _c("allowed_amount", "DOUBLE", "Allowed amount, USD", nullable=True),
        _c("paid_amount", "DOUBLE", "Paid amount, USD", nullable=True),
    ),
    description=(
        "Diagnosis columns diagnosis_code_1 .. diagnosis_code_N (N >= 1, ICD-10-CM with or without the dot; "
        "diagnosis_code_1 required unless the line has a hcpcs_code, later ones nullable) are kept in "
        "raw.medical_claim as they come and unpivoted by the view raw.medical_claim_diagnosis."
    ),
)

PHARMACY_CLAIM = Table(
    name="pharmacy_claim",
    grain="one row per pharmacy claim line",
    source="claims",
    required=False,
    key=("claim_id", "claim_line_number"),
    unavailable_without="opioid use and morphine milligram equivalents",
    columns=(
        _c("claim_id", "VARCHAR", "Claim identifier"),
        _c("claim_line_number", "INTEGER", "Line number within the claim"),
        _c("person_id", "VARCHAR", "De-identified person token"),
        _c("dispensing_date", "DATE", "Date dispensed"),
        _c(
            "ndc_code",
            "VARCHAR",
            "National Drug Code (11-digit, or hyphenated 10-digit); RXNORM<rxcui> for a record coded only in RxNorm",
            code_system="ndc",
        ),
        _c("quantity", "DOUBLE", "Units dispensed"),
        _c("days_supply", "INTEGER", "Days supplied"),
        _c("allowed_amount", "DOUBLE", "Allowed amount, USD", nullable=True),
        _c("paid_amount", "DOUBLE", "Paid amount, USD", nullable=True),
    ),
)

NDC_REFERENCE = Table(
    name="ndc_reference",
    grain="one row per NDC",
    source="claims",
    required=False,
    key=("ndc_code",),
    unavailable_without="opioid use and morphine milligram equivalents",
    columns=(
        _c("ndc_code", "VARCHAR", "National Drug Code, or RXNORM<rxcui>", code_system="ndc"),
        _c("ingredient", "VARCHAR", "Active ingredient"),
        _c(
            "strength_per_unit",
            "DOUBLE",
            "Strength per dispensed unit (empty when unknown: an opioid then counts as use with 0 MME)",
            nullable=True,
        ),
        _c("strength_unit", "VARCHAR", "Unit of strength_per_unit (e.g. mg)", nullable=True),
        _c("is_opioid", "BOOLEAN", "Whether the product is an opioid analgesic"),
        _c("mme_conversion_factor", "DOUBLE", "CDC morphine milligram equivalent conversion factor", nullable=True),
    ),
)

EHR_ENCOUNTER = Table(
    name="ehr_encounter",
    grain="one row per encounter",
    source="ehr",
    required=False,
    key=("encounter_id",),
    unavailable_without="IPM referral from EHR encounters (claims-based referral still used)",
    columns=(
        _c("person_id", "VARCHAR", "De-identified person token"),
        _c("encounter_id", "VARCHAR", "Encounter identifier"),
        _c("encounter_date", "DATE", "Date of the encounter"),
        _c("encounter_type", "VARCHAR", "Setting of the encounter", allowed=ENCOUNTER_TYPES),
        _c("provider_taxonomy_code", "VARCHAR", "NUCC taxonomy of the provider", nullable=True, code_system="nucc"),
        _c("primary_diagnosis_code", "VARCHAR", "Primary ICD-10-CM diagnosis", nullable=True, code_system="icd10cm"),
    ),
)

EHR_PRO = Table(
    name="ehr_pro",
    grain="one row per person per assessment per instrument",
    source="ehr",
    required=False,
    unavailable_without="quality-of-life outcomes",
    columns=(
        _c("person_id", "VARCHAR", "De-identified person token"),
        _c("assessment_date", "DATE", "Date the instrument was completed"),
        _c(
            "instrument",
            "VARCHAR",
            "promis_pf, promis_pi, odi, eq5d_index, nrs_pain, phq9 (others are kept, unchecked)",
        ),
        _c("score", "DOUBLE", "Score on the instrument's own scale"),
    ),
)

EHR_WORK_STATUS = Table(
    name="ehr_work_status",
    grain="one row per person per recorded work status",
    source="ehr",
    required=False,
    unavailable_without="return to work",
    columns=(
        _c("person_id", "VARCHAR", "De-identified person token"),
        _c("status_date", "DATE", "Date the status was recorded"),
        _c("work_status", "VARCHAR", "Work status", allowed=WORK_STATUSES),
    ),
)

TABLES: tuple[Table, ...] = (
    ELIGIBILITY,
    MEDICAL_CLAIM,
    PHARMACY_CLAIM,
    NDC_REFERENCE,
    EHR_ENCOUNTER,
    EHR_PRO,
    EHR_WORK_STATUS,
)

TABLES_BY_NAME: dict[str, Table] = {t.name: t for t in TABLES}

#: Columns of the view ``raw.medical_claim_diagnosis``: one row per claim line per non-empty diagnosis column.
MEDICAL_CLAIM_DIAGNOSIS_COLUMNS: tuple[Column, ...] = (
    _c("claim_id", "VARCHAR", "Claim identifier"),
    _c("claim_line_number", "INTEGER", "Line number within the claim"),
    _c("person_id", "VARCHAR", "De-identified person token"),
    _c("claim_type", "VARCHAR", "professional or institutional"),
    _c("claim_start_date", "DATE", "First date of service"),
    _c("diagnosis_position", "INTEGER", "N of the diagnosis_code_N column"),
    _c("diagnosis_code", "VARCHAR", "ICD-10-CM, normalised: upper case, no dot"),
)

#: Diagnosis columns of ``raw.medical_claim`` when no extract says otherwise (tests, empty tables).
DEFAULT_DIAGNOSIS_POSITIONS: tuple[int, ...] = (1, 2, 3, 4)


def diagnosis_column(position: int) -> str:
    return f"{DIAGNOSIS_COLUMN_PREFIX}{position}"


#: Text columns that identify one row: nearly every value is distinct, so DuckDB's default
#: dictionary compression cannot shrink them and only costs time (zstd writes 25.8M claim ids
#: about a second faster, at the same size).
_ROW_IDENTIFIERS = frozenset({"claim_id", "encounter_id"})


def raw_table_ddl(table: Table, diagnosis_positions: Sequence[int] = DEFAULT_DIAGNOSIS_POSITIONS) -> str:
    """CREATE TABLE statement for a contract table in the raw schema.

    ``medical_claim`` also gets ``diagnosis_code_<N>`` for each N of ``diagnosis_positions`` (an
    extract's own diagnosis columns).
    """
    cols = [
        f"{c.name} {c.type}" + (" using compression zstd" if c.name in _ROW_IDENTIFIERS else "")
        for c in table.columns
    ]
    if table.has_diagnosis_columns:
        cols += [f"{diagnosis_column(n)} VARCHAR" for n in diagnosis_positions]
    return f"create table {RAW_SCHEMA}.{table.name} (\n    " + ",\n    ".join(cols) + "\n)"


def medical_claim_diagnosis_view_ddl(diagnosis_positions: Sequence[int]) -> str:
    """CREATE VIEW ``raw.medical_claim_diagnosis``: the diagnosis columns of ``raw.medical_claim`` unpivoted.

    A union of one SELECT per position (plain SQL any engine runs); each reads two columns more
    than the claim keys, so scanning the view costs about what scanning a stored copy would,
    without writing tens of millions of repeated claim keys at load time.
    """
    keys = "claim_id, claim_line_number, person_id, claim_type, claim_start_date"
    parts = [
        f"select {keys}, {int(n)} as diagnosis_position, {diagnosis_column(n)} as diagnosis_code\n"
        f"from {RAW_SCHEMA}.medical_claim where {diagnosis_column(n)} is not null"
        for n in diagnosis_positions
    ]
    if not parts:
        raise ValueError("medical_claim needs at least one diagnosis column")
    return f"create view {RAW_SCHEMA}.medical_claim_diagnosis as\n" + "\nunion all\n".join(parts)


def drop_raw_relation(con, name: str) -> None:
    """Drop ``raw.<name>`` whether it is a table or a view (databases loaded by older versions
    stored the diagnoses as a table)."""
    found = con.execute(
        "select table_type from information_schema.tables where table_schema = ? and table_name = ?",
        [RAW_SCHEMA, name],
    ).fetchall()
    if found:
        kind = "view" if found[0][0] == "VIEW" else "table"
        con.execute(f"drop {kind} {RAW_SCHEMA}.{name}")


def create_empty_raw_tables(con, diagnosis_positions: Sequence[int] = DEFAULT_DIAGNOSIS_POSITIONS) -> None:
    """Create every raw table, empty, replacing any that exist, and the diagnosis view.

    For tests and tools that write hand-made rows straight into raw (ingest writes its own tables
    with the extract's diagnosis columns).
    """
    con.execute(f"create schema if not exists {RAW_SCHEMA}")
    drop_raw_relation(con, "medical_claim_diagnosis")
    for table in TABLES:
        con.execute(f"drop table if exists {RAW_SCHEMA}.{table.name}")
        con.execute(raw_table_ddl(table, diagnosis_positions))
    con.execute(medical_claim_diagnosis_view_ddl(diagnosis_positions))


#: Markers around the generated part of ``data/README.md``.
DATA_DICTIONARY_BEGIN = "<!-- BEGIN data dictionary: generated by ipm_outcomes.contract.render_data_dictionary() -->"
DATA_DICTIONARY_END = "<!-- END data dictionary -->"


def _md(text: str) -> str:
    return str(text).replace("|", "\\|")


def _column_rows(columns) -> list[str]:
    rows = ["| column | type | empty allowed | values | description |", "|---|---|---|---|---|"]
    for col in columns:
        if col.allowed is not None:
            values = ", ".join(f"`{v}`" for v in col.allowed)
        elif col.code_system is not None:
            values = f"code shape `{col.code_system}`"
        else:
            values = ""
        rows.append(
            f"| `{col.name}` | {col.type} | {'yes' if col.nullable else 'no'} | {_md(values)} | {_md(col.description)} |"
        )
    return rows


def render_data_dictionary() -> str:
    """The data dictionary of the contract as markdown (the generated section of ``data/README.md``).

    One section per table (grain, required or optional, what is unavailable without it, key, date
    order, columns), then the derived diagnosis table, the code shapes and the PRO score ranges.
    """
    out = [DATA_DICTIONARY_BEGIN, ""]
    for table in TABLES:
        status = "required" if table.required else "optional"
        out.append(f"### `{table.name}` ({status}, {table.source})")
        out.append("")
        out.append(f"Grain: {table.grain}.")
        if table.key:
            out.append(f"Key (unique together): {', '.join(f'`{k}`' for k in table.key)}.")
        for start, end in table.ordered_dates:
            out.append(f"Dates: `{end}` on or after `{start}`.")
        if not table.required:
            out.append(f"Without it: no {table.unavailable_without}.")
        if table.description:
            out.append(_md(table.description))
        out.append("")
        out.extend(_column_rows(table.columns))
        if table.has_diagnosis_columns:
            out.append(
                f"| `{DIAGNOSIS_COLUMN_PREFIX}1` .. `{DIAGNOSIS_COLUMN_PREFIX}N` | VARCHAR | no for N = 1, yes after"
                " | code shape `icd10cm` | Diagnoses of the claim line, in billed order (any N >= 1) |"
            )
        out.append("")
    out.append(f"### `medical_claim_diagnosis` (a view in `{RAW_SCHEMA}`, made by ingest)")
    out.append("")
    out.append(
        "Grain: one row per claim line per non-empty diagnosis column (unpivoted from `medical_claim`,"
        " which keeps the extract's diagnosis columns as they come)."
    )
    out.append("")
    out.extend(_column_rows(MEDICAL_CLAIM_DIAGNOSIS_COLUMNS))
    out.append("")
    out.append("### Code shapes")
    out.append("")
    out.append("Checked after normalisation (see above).")
    out.append("")
    out.append("| code shape | regular expression |")
    out.append("|---|---|")
    for name, pattern in CODE_SHAPES.items():
        out.append(f"| `{name}` | `{_md(pattern)}` |")
    out.append("")
    out.append("### Patient-reported outcome score ranges (`ehr_pro.score`)")
    out.append("")
    out.append("| instrument | lowest | highest |")
    out.append("|---|---|---|")
    for name, (lo, hi) in PRO_RANGES.items():
        out.append(f"| `{name}` | {lo:g} | {hi:g} |")
    out.append("")
    out.append("Other instruments are loaded unchecked.")
    out.append("")
    out.append("### Limits")
    out.append("")
    out.append(
        f"- A CSV line (one row) may hold at most {CSV_MAX_LINE_BYTES:,} bytes; a longer line is refused"
        " (rule `malformed_row`). Parquet has no such limit."
    )
    out.append(
        f"- Dates before {EARLIEST_DATE.isoformat()} are refused in every date column (rule `early_date`):"
        " they are placeholders for unknown dates, not dates of service."
    )
    out.append("")
    out.append(DATA_DICTIONARY_END)
    return "\n".join(out) + "\n"
