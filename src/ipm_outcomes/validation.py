"""The rules an extract must meet, written as SQL expressions over one table's normalised view.

Ingest (:mod:`ipm_outcomes.ingest`) puts a view over each file whose columns are the contract
columns, trimmed and normalised (empty -> NULL, codes upper case, ICD-10-CM without the dot, NDC in
11 digits), plus a typed twin ``<column>__t`` of every non-text column. A rule here is
a boolean SQL condition over that view that is true on a *bad* row, so every rule of a table is
counted in a single scan (``count(*) filter (where <condition>)``, or for a rule on one
low-cardinality column, over the column's histogram) and examples are fetched only for the rules
that fail.

Rule names (the ``rule`` of a :class:`Problem`) are listed in :data:`RULES` and documented in
``data/README.md``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import date

from .contract import CODE_SHAPES, DIAGNOSIS_COLUMN_PREFIX, EARLIEST_DATE, PRO_RANGES, Column, Table
from .disclosure import DisclosurePolicy

ERROR = "error"
WARNING = "warning"

#: Every rule a problem can name (documented in data/README.md, which a test keeps in step).
RULES = (
    "load_failed",
    "missing_table",
    "ambiguous_table",
    "unknown_file",
    "unreadable_file",
    "malformed_row",
    "missing_column",
    "duplicate_column",
    "blank_column_name",
    "extra_columns",
    "no_rows",
    "part_schema",
    "identifier_column",
    "identifier_value",
    "null",
    "type",
    "non_finite",
    "allowed_values",
    "code_shape",
    "future_date",
    "early_date",
    "date_order",
    "birth_year_range",
    "pro_range",
    "duplicate_key",
    "orphan_person",
)

#: Oldest plausible age in years: birth years from this many years before the load's "today" (the
#: calendar day, or a date-shifted extract's reference date) up to that year are accepted; 126 years
#: before 2026 is 1900, and the oldest recorded person lived to 122.
MAX_AGE_YEARS = 126

#: Accepted spellings of booleans in text files (case-insensitive).
BOOLEAN_SPELLINGS = ("true", "false", "t", "f", "1", "0")

_CODE_SYSTEM_NAMES = {
    "icd10cm": "ICD-10-CM",
    "hcpcs": "CPT/HCPCS",
    "nucc": "NUCC taxonomy",
    "ndc": "11-digit NDC",
    "npi": "10-digit NPI",
    "pos": "2-digit place-of-service",
}

_TYPE_NAMES = {
    "INTEGER": "a whole number",
    "DOUBLE": "a number",
    "BOOLEAN": "a boolean (true/false)",
    "DATE": "an ISO date (YYYY-MM-DD)",
}


@dataclass(frozen=True)
class Problem:
    """One broken rule of the input contract, with where it happened and the first examples.

    ``rows`` are data row numbers in ``file`` (1 = first row after the header; for parquet the
    row within that part file), ``examples`` the offending values of those rows (identifier-shaped
    values are masked), ``count`` how many rows (or, for ``orphan_person``, distinct persons) break
    the rule in the whole table.
    """

    severity: str
    file: str
    table: str | None
    column: str | None
    rule: str
    message: str
    rows: tuple[int, ...] = ()
    examples: tuple[str, ...] = ()
    count: int = 1

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR

    def location(self) -> str:
        """``file, column c, row r`` as far as known."""
        parts = [self.file]
        if self.column:
            parts.append(f"column {self.column}")
        if self.rows:
            parts.append(f"row {self.rows[0]}")
        return ", ".join(parts)

    def one_line(self) -> str:
        """The problem as one line: where, what, an example, and the rule name."""
        example = f" (e.g. {self.examples[0]!r})" if self.examples else ""
        return f"{self.location()}: {self.message}{example} (rule {self.rule})"

    def to_dict(self) -> dict:
        out = asdict(self)
        out["rows"] = list(self.rows)
        out["examples"] = list(self.examples)
        return out


@dataclass(frozen=True)
class Check:
    """A row-level rule: ``condition`` is true on a bad row of the table's view.

    ``message`` turns the count of bad rows into the problem's text; ``example`` is the SQL
    expression shown as the example value (None: nothing worth showing, as for empty values).
    ``columns_needed`` must name every column the condition reads: a rule on one column is
    evaluated once per distinct value of that column (and its typed twin), so it may not depend on
    anything else of the row. ``screen``, when given, is a cheaper condition true on every row
    where ``condition`` is (a rule over free text evaluates a regular expression per row): a scan
    may count the screen first and evaluate ``condition`` only when some row passes it.
    """

    rule: str
    column: str | None
    condition: str
    message: Callable[[int], str]
    example: str | None
    columns_needed: tuple[str, ...]
    severity: str = ERROR
    screen: str | None = None


def quote_ident(name: str) -> str:
    """A SQL identifier, double-quoted."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """A SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def typed_name(column: str) -> str:
    """Name of the typed twin of a column in the validation view."""
    return f"{column}__t"


def _is(n: int, noun: str = "value") -> str:
    """``1 value is`` / ``2 values are``."""
    return f"{n:,} {noun} is" if n == 1 else f"{n:,} {noun}s are"


# --- normalisation -------------------------------------------------------------------------


def clean_text(expr: str) -> str:
    """Trim and turn empty strings into NULL.

    Most values need neither, and trimming copies every string (about a second per 25 million
    identifiers), so only values that could change are trimmed: empty, starting or ending with a
    space, or holding any non-ASCII character (DuckDB's trim also removes Unicode spaces; the
    only ASCII character it removes is the space).
    """
    return (
        f"case when {expr} = '' or starts_with({expr}, ' ') or ends_with({expr}, ' ')"
        f" or strlen({expr}) <> length({expr}) then nullif(trim({expr}), '') else {expr} end"
    )


def ndc_to_11_digits(expr: str) -> str:
    """Hyphenated 10-digit NDCs (4-4-2, 5-3-2, 5-4-1) to the 11-digit 5-4-2 billing form.

    The zero goes in front of the short segment (FDA's conversion); other hyphenated forms just lose
    their hyphens, and the shape rule then reports them.
    """
    p1, p2, p3 = (f"length(split_part({expr}, '-', {i}))" for i in (1, 2, 3))
    seg = [f"split_part({expr}, '-', {i})" for i in (1, 2, 3)]
    three_parts = f"(length({expr}) - length(replace({expr}, '-', '')) = 2)"
    return (
        f"case when {expr} is null or not contains({expr}, '-') then {expr}"
        f" when {three_parts} and {p1} = 4 and {p2} = 4 and {p3} = 2 then '0' || {seg[0]} || {seg[1]} || {seg[2]}"
        f" when {three_parts} and {p1} = 5 and {p2} = 3 and {p3} = 2 then {seg[0]} || '0' || {seg[1]} || {seg[2]}"
        f" when {three_parts} and {p1} = 5 and {p2} = 4 and {p3} = 1 then {seg[0]} || {seg[1]} || '0' || {seg[2]}"
        f" else replace({expr}, '-', '') end"
    )


def normalise_expr(column: Column | None, source_type: str, ref: str) -> str:
    """SQL that turns the file's value into the view's value for a contract (or diagnosis) column.

    ``column=None`` means a diagnosis column (ICD-10-CM). Text is trimmed and empty strings become
    NULL; enumerations are lower-cased; codes are upper-cased (ICD-10-CM also loses its dot, NDC its
    hyphens). Non-text parquet columns pass through unchanged unless the contract wants text.
    """
    code_system = "icd10cm" if column is None else column.code_system
    target = "VARCHAR" if column is None else column.type
    if source_type != "VARCHAR":
        if target != "VARCHAR":
            return ref
        ref = f"cast({ref} as VARCHAR)"
    text = clean_text(ref)
    if code_system == "icd10cm":
        return f"nullif(replace(upper({text}), '.', ''), '')"
    if code_system == "ndc":
        return ndc_to_11_digits(text)
    if code_system is not None:
        return f"upper({text})"
    if column is not None and (column.allowed is not None or column.name == "instrument"):
        return f"lower({text})"
    return text


def typed_expr(column: Column, source_type: str, ref: str) -> str:
    """SQL for the typed twin of a normalised column (NULL when the value cannot be read)."""
    if column.type == "BOOLEAN" and source_type == "VARCHAR":
        return f"try_cast(lower({ref}) as BOOLEAN)"
    return f"try_cast({ref} as {column.type})"


def ill_formed_text(column: Column, ref: str, cast: str | None = None) -> str:
    """SQL true when non-empty text is not a value of the (non-text) column's type as the contract spells it.

    ``cast`` names the text's typed value (:func:`typed_expr`) when it is already computed, so the
    cast is not repeated.
    """
    return f"{cast or typed_expr(column, 'VARCHAR', ref)} is null or {_strict_text_form(column, ref)}"


def _strict_text_form(column: Column, ref: str) -> str | None:
    """Extra condition that a text value is in the contract's spelling (DuckDB's casts are lenient)."""
    if column.type == "DATE":
        return f"length({ref}) <> 10 or substr({ref}, 5, 1) <> '-' or substr({ref}, 8, 1) <> '-'"
    if column.type == "INTEGER":
        return f"not regexp_full_match({ref}, '[+-]?[0-9]+')"
    if column.type == "DOUBLE":
        return f"not regexp_full_match({ref}, '[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][+-]?[0-9]+)?')"
    if column.type == "BOOLEAN":
        allowed = ", ".join(quote_literal(v) for v in BOOLEAN_SPELLINGS)
        return f"lower({ref}) not in ({allowed})"
    return None


# --- row-level rules ------------------------------------------------------------------------


def column_checks(table: Table, column: Column, source_type: str, today: date) -> list[Check]:
    """The row-level rules of one contract column, given its type in the file."""
    ref = quote_ident(column.name)
    typed = quote_ident(typed_name(column.name))
    checks: list[Check] = []
    if not column.nullable:
        checks.append(
            Check(
                "null",
                column.name,
                f"{ref} is null",
                lambda n: f"{_is(n, 'row')} empty; {column.name} must have a value",
                None,
                (column.name,),
            )
        )
    if column.type != "VARCHAR":
        bad = f"{typed} is null"
        if source_type == "VARCHAR":
            bad = ill_formed_text(column, ref)
        elif column.type == "INTEGER" and (source_type in ("FLOAT", "DOUBLE") or source_type.startswith("DECIMAL")):
            bad = f"{bad} or {ref} <> trunc({ref})"
        what = _TYPE_NAMES[column.type]
        checks.append(
            Check(
                "type",
                column.name,
                f"{ref} is not null and ({bad})",
                lambda n, what=what: f"{_is(n)} not {what}",
                f"cast({ref} as VARCHAR)",
                (column.name,),
            )
        )
    if column.type == "DOUBLE" and (source_type == "VARCHAR" or source_type in ("FLOAT", "DOUBLE")):
        # '1e400' is well-formed text that casts to inf, and a parquet double may hold inf or NaN:
        # one such value makes every sum over the column infinite. (Text spelled 'nan' or 'inf' is
        # not a well-formed number: the type rule reports it.)
        non_finite = f"isinf({typed})" if source_type == "VARCHAR" else f"not isfinite({typed})"
        checks.append(
            Check(
                "non_finite",
                column.name,
                f"{ref} is not null and {non_finite}",
                lambda n: f"{_is(n)} not a finite number (too large, infinite or NaN); amounts, quantities and "
                "scores must be finite",
                f"cast({ref} as VARCHAR)",
                (column.name,),
            )
        )
    if column.allowed is not None:
        allowed = ", ".join(quote_literal(v) for v in column.allowed)
        checks.append(
            Check(
                "allowed_values",
                column.name,
                f"{ref} not in ({allowed})",
                lambda n: f"{_is(n)} not one of {', '.join(column.allowed)}",
                ref,
                (column.name,),
            )
        )
    if column.code_system is not None:
        pattern = CODE_SHAPES[column.code_system]
        checks.append(code_shape_check(column.name, column.code_system, pattern))
    if column.type == "DATE":
        checks.append(
            Check(
                "future_date",
                column.name,
                f"{typed} > DATE {quote_literal(today.isoformat())}",
                lambda n: f"{_is(n, 'date')} after today ({today.isoformat()})",
                f"cast({ref} as VARCHAR)",
                (column.name,),
            )
        )
    if column.type == "DATE":
        earliest = EARLIEST_DATE.isoformat()
        checks.append(
            Check(
                "early_date",
                column.name,
                f"{typed} < DATE {quote_literal(earliest)}",
                lambda n: f"{_is(n, 'date')} before {earliest}, too early to be real (a placeholder for an unknown date?)",
                f"cast({ref} as VARCHAR)",
                (column.name,),
            )
        )
    if table.name == "eligibility" and column.name == "birth_year":
        checks.append(
            Check(
                "birth_year_range",
                column.name,
                f"{typed} not between {today.year - MAX_AGE_YEARS} and {today.year}",
                lambda n: f"{_is(n)} outside {today.year - MAX_AGE_YEARS}..{today.year}",
                f"cast({ref} as VARCHAR)",
                (column.name,),
            )
        )
    return checks


def staged_type_check(column: Column, text_column: str) -> Check:
    """The type rule over a typed copy of a text file, whose ill-formed values kept their text in ``text_column``."""
    what = _TYPE_NAMES[column.type]
    ref = quote_ident(text_column)
    return Check(
        "type",
        column.name,
        f"{ref} is not null",
        lambda n: f"{_is(n)} not {what}",
        ref,
        (text_column,),
    )


def code_shape_check(column: str, code_system: str, pattern: str) -> Check:
    ref = quote_ident(column)
    name = _CODE_SYSTEM_NAMES[code_system]
    return Check(
        "code_shape",
        column,
        f"not regexp_full_match({ref}, {quote_literal(pattern)})",
        lambda n: f"{_is(n)} not a well-formed {name} code (checked after normalisation)",
        ref,
        (column,),
    )


def diagnosis_checks(column: str) -> list[Check]:
    """Rules of one ``diagnosis_code_N`` column: ICD-10-CM shape; the first one must be present."""
    checks = [code_shape_check(column, "icd10cm", CODE_SHAPES["icd10cm"])]
    if column == f"{DIAGNOSIS_COLUMN_PREFIX}1":
        ref = quote_ident(column)
        checks.insert(
            0,
            Check(
                "null",
                column,
                # A procedure line may carry no diagnosis (an OMOP procedure on a visit without one).
                f"{ref} is null and hcpcs_code is null",
                lambda n: f"{_is(n, 'row')} without a first diagnosis or a procedure code; {column} must have a value",
                None,
                (column, "hcpcs_code"),
            ),
        )
    return checks


def table_checks(table: Table) -> list[Check]:
    """Row-level rules across columns of one table: date order and PRO score ranges."""
    checks: list[Check] = []
    for start, end in table.ordered_dates:
        s, e = quote_ident(typed_name(start)), quote_ident(typed_name(end))
        checks.append(
            Check(
                "date_order",
                end,
                f"{e} < {s}",
                lambda n, start=start, end=end: f"{n:,} row{'' if n == 1 else 's'} with {end} before {start}",
                # as written in the file (the typed twins are the values compared)
                f"cast({quote_ident(start)} as VARCHAR) || ' > ' || cast({quote_ident(end)} as VARCHAR)",
                (start, end),
            )
        )
    if table.name == "ehr_pro":
        score = quote_ident(typed_name("score"))
        for instrument, (lo, hi) in PRO_RANGES.items():
            checks.append(
                Check(
                    "pro_range",
                    "score",
                    # inf and NaN are left to the non_finite rule
                    f"instrument = {quote_literal(instrument)} and isfinite({score})"
                    f" and not ({score} between {lo!r} and {hi!r})",
                    lambda n, i=instrument, lo=lo, hi=hi: f"{_is(n, i + ' score')} outside {lo:g}..{hi:g}",
                    "cast(score as VARCHAR)",
                    ("instrument", "score"),
                )
            )
    return checks


ORPHAN_JOIN_COLUMN = "_eligible_person_id"


def orphan_check(table: Table) -> Check:
    """person_id with no eligibility row (a warning: those rows can never enter the cohort)."""
    return Check(
        "orphan_person",
        "person_id",
        f"person_id is not null and {ORPHAN_JOIN_COLUMN} is null",
        lambda n: (
            f"{n:,} person{'' if n == 1 else 's'} with no eligibility row; their {table.name} rows cannot enter the cohort"
        ),
        "person_id",
        ("person_id",),
        severity=WARNING,
    )


# --- de-identification ----------------------------------------------------------------------

#: Column names that name a direct identifier (HIPAA Safe Harbor), matched on a name's words joined
#: by ``_`` and on its words run together (so ``_`` between words is optional in every pattern).
IDENTIFIER_COLUMN_PATTERNS: tuple[tuple[str, str], ...] = (
    (
        r"^(name|surname|full_?name)$|(^|_)(first|last|middle|full|given|family|patient|member|person|subscriber)_?name(_|$)",
        "a person's name",
    ),
    (r"(^|_)(ssn|social_?security(_?number|_?no|_?num)?|soc_?sec)[0-9]*(_|$)", "a social security number"),
    (r"(^|_)(phone|tele_?phone|phone_?number|mobile|cell_?phone|fax)[0-9]*(_|$)", "a telephone number"),
    (r"(^|_)(e_?mail|e_?mail_?address)[0-9]*(_|$)", "an e-mail address"),
    (r"(^|_)(address|street|street_?address|addr|address_?line_?[0-9]*)[0-9]*(_|$)", "a street address"),
    (r"(^|_)(zip|zip_?5|zip_?code|postal_?code|post_?code)(_|$)", "a 5-digit ZIP code"),
    (r"(^|_)(mrn|medical_?record(_?number|_?no|_?num)?)[0-9]*(_|$)", "a medical record number"),
    (r"(^|_)(dob|date_?of_?birth|birth_?date)(_|$)", "a full date of birth"),
)

#: Values that look like direct identifiers, found anywhere in a text value (RE2 syntax), each with
#: characters one of which any match contains (a cheap test that spares most values the pattern).
IDENTIFIER_VALUE_PATTERNS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("a social security number", r"(^|[^0-9])[0-9]{3}-[0-9]{2}-[0-9]{4}([^0-9]|$)", ("-",)),
    ("an e-mail address", r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}", ("@",)),
    (
        "a US telephone number",
        r"(^|[^0-9])(\+?1[ .-]?)?(\([0-9]{3}\) ?|[0-9]{3}[ .-])[0-9]{3}[ .-][0-9]{4}([^0-9]|$)",
        ("-", ".", " "),
    ),
)


def name_words(name: str) -> list[str]:
    """The words of a column name, lower case: camelCase and PascalCase split, separators dropped.

    ``SocialSecurityNumber``, ``social-security number`` and ``SOCIAL_SECURITY_NUMBER`` all give
    ``['social', 'security', 'number']``; digits stay with their word (``Address1``, ``zip3``).
    """
    split = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name.strip())
    split = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", split)
    return [w for w in re.split(r"[^a-z0-9]+", split.lower()) if w]


def identifier_column_reason(name: str) -> str | None:
    """Why a column name looks like a direct identifier, or None (any case, any separators)."""
    words = name_words(name)
    forms = ("_".join(words), "".join(words))
    for pattern, what in IDENTIFIER_COLUMN_PATTERNS:
        if any(re.search(pattern, form) for form in forms):
            return what
    return None


def identifier_value_checks(columns: dict[str, str], allow: bool, scanned: Callable[[], int]) -> list[Check]:
    """Rules that values of free-text columns do not look like direct identifiers.

    ``columns`` maps a column's name as reported to its name in the view (trimmed text, empty as
    NULL); ``scanned()`` gives the number of rows scanned once the table has been read (every row).
    """
    todo = "loaded anyway: --allow-identifiers" if allow else "remove or mask them, or use --allow-identifiers"
    checks = []
    for column, name in columns.items():
        ref = quote_ident(name)
        for what, pattern, needs in IDENTIFIER_VALUE_PATTERNS:
            cheap = f"({' or '.join(f'contains({ref}, {quote_literal(c)})' for c in needs)})"
            checks.append(
                Check(
                    "identifier_value",
                    column,
                    f"{cheap} and regexp_matches({ref}, {quote_literal(pattern)})",
                    lambda n, what=what: (
                        f"{n:,} {'value' if n == 1 else 'values'} in all {scanned():,} rows "
                        f"{'looks' if n == 1 else 'look'} like {what}, a direct identifier; {todo}"
                    ),
                    mask_sql(ref),
                    (name,),
                    severity=WARNING if allow else ERROR,
                    screen=cheap,
                )
            )
    return checks


def mask_sql(ref: str) -> str:
    """Shape of a value with digits as # and letters as x, so reports do not repeat an identifier."""
    return f"regexp_replace(regexp_replace({ref}, '[0-9]', '#', 'g'), '[A-Za-z]', 'x', 'g')"


# --- presentation ---------------------------------------------------------------------------


def count_by_severity(problems: list[Problem]) -> tuple[int, int]:
    errors = sum(p.is_error for p in problems)
    return errors, len(problems) - errors


#: Rules whose ``Problem.count`` counts persons (the others count rows or values).
PERSON_COUNT_RULES = frozenset({"orphan_person"})


def gated(problem: Problem, policy: DisclosurePolicy | None) -> Problem:
    """The problem as it may be printed: a count of 1 to min_cell_size - 1 persons becomes ``<11``, without
    the example identifiers and row numbers that would tell it (``policy=None``: as found)."""
    if policy is None or problem.rule not in PERSON_COUNT_RULES or not policy.is_small(problem.count):
        return problem
    what = {"orphan_person": f"persons with no eligibility row; their {problem.table or 'table'} rows cannot enter the cohort"}
    return replace(problem, message=f"{policy.small_label} {what[problem.rule]}", rows=(), examples=(), count=0)


def problems_table(problems: list[Problem], policy: DisclosurePolicy | None = DisclosurePolicy(), width: int = 80):
    """Every problem as a block of lines readable at ``width`` columns, errors first.

    A table with eight columns wrapped file names into "eligibil ity.csv" at 80 columns; here each problem
    is a heading line (severity, file, column, row, rule) and its message indented below, wrapped between
    words. Person counts pass the disclosure gate (:func:`gated`).
    """
    import textwrap

    from rich.text import Text

    errors, warnings = count_by_severity(problems)
    out = Text(f"{errors} error{'s' if errors != 1 else ''}, {warnings} warning{'s' if warnings != 1 else ''}\n",
               style="bold")
    indent = " " * 9
    for p in sorted((gated(p, policy) for p in problems), key=lambda p: not p.is_error):
        rows = "" if p.rule in PERSON_COUNT_RULES or p.count <= 1 else f", {p.count:,} rows"
        head = f"{p.location()} (rule {p.rule}{rows})"
        out.append(f"{p.severity:<8} ", style="bold red" if p.is_error else "yellow")
        out.append("\n".join(textwrap.wrap(head, width - 9, subsequent_indent=indent, break_on_hyphens=False,
                                            break_long_words=False)) + "\n")
        body = p.message + (f" (e.g. {', '.join(repr(e) for e in p.examples)})" if p.examples else "")
        out.append("\n".join(textwrap.wrap(body, width, initial_indent=indent, subsequent_indent=indent,
                                            break_on_hyphens=False, break_long_words=False)) + "\n")
    return out


@dataclass
class ProblemList:
    """Problems in the order found."""

    items: list[Problem] = field(default_factory=list)

    def add(self, severity, file, table, column, rule, message, rows=(), examples=(), count=1) -> Problem:
        assert rule in RULES and severity in (ERROR, WARNING), (rule, severity)
        problem = Problem(severity, file, table, column, rule, message, tuple(rows), tuple(examples), count)
        self.items.append(problem)
        return problem
