"""What each stage was built from, and the check a stage makes before it trusts an earlier one's outputs.

``ingest`` records its load in ``meta.load`` and ``meta.load_provenance``. ``cohort`` records in
``meta.cohort_build`` the load it read, the spec sections it used (:func:`ipm_outcomes.study.stage_spec`,
value sets by content) and the package version. ``analyze`` compares that record with the load the
database holds now and with the spec it is given, and refuses a mismatch with one line that names
the difference and the command that fixes it: a result never mixes two versions of anything.

Which spec sections a stage may see changed without a rebuild is not listed here: it follows from
:data:`ipm_outcomes.study.STAGE_SECTIONS`, the declaration ``run``'s cache keys use too.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .contract import META_SCHEMA
from .errors import IpmError
from .fingerprint import sha256_json
from .study import stage_spec

if TYPE_CHECKING:
    import duckdb

    from .spec import StudySpec

COHORT_BUILD_TABLE = f"{META_SCHEMA}.cohort_build"
#: How many differing spec keys a refusal names before it says "and N more".
_NAMED_DIFFERENCES = 3


@dataclass(frozen=True)
class LoadRecord:
    """One load of an extract into a study database (``meta.load`` and ``meta.load_provenance``)."""

    extract_path: str
    loaded_at: str
    data_sha256: str | None
    files: list[dict[str, Any]] = field(default_factory=list)
    absent_tables: list[str] = field(default_factory=list)
    package_version: str | None = None
    reference_date: str | None = None
    date_shift_days: int = 0

    @property
    def dates_shifted(self) -> bool:
        """True when the extract was loaded as date-shifted (``ingest --reference-date``)."""
        return self.reference_date is not None

    def describe(self) -> str:
        if not self.loaded_at:
            return self.extract_path
        return f"the extract {self.extract_path} loaded at {self.loaded_at}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoadRecord:
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**known)


#: The load of raw tables written by other means than ``ingest`` (test miniatures, tools): nothing is
#: known of them but that they carry no record, and a later ``ingest`` replaces them with one.
UNRECORDED_LOAD = LoadRecord(extract_path="raw tables written without ingest", loaded_at="", data_sha256=None)


def write_load(
    con: duckdb.DuckDBPyConnection,
    source: str,
    loaded_at: Any,
    files: list[dict[str, Any]],
    absent_tables: list[str],
    *,
    allow_identifiers: bool = False,
    warnings: int = 0,
    reference_date: Any = None,
    date_shift_days: int = 0,
) -> None:
    """(Re)write the record of a load: ``meta.load_provenance`` (one row per file read: table, file,
    sha256, rows, columns) and ``meta.load`` (one row: this load). Call it inside the load's transaction."""
    con.execute(f"create schema if not exists {META_SCHEMA}")
    con.execute(f"drop table if exists {META_SCHEMA}.load_provenance")
    con.execute(
        f"create table {META_SCHEMA}.load_provenance (table_name VARCHAR, file VARCHAR, sha256 VARCHAR,"
        " rows BIGINT, columns VARCHAR[], loaded_at TIMESTAMP)"
    )
    for f in files:
        con.execute(
            f"insert into {META_SCHEMA}.load_provenance values (?, ?, ?, ?, ?, ?)",
            [f["table"], f["file"], f["sha256"], f.get("rows"), f.get("columns"), loaded_at],
        )
    con.execute(f"drop table if exists {META_SCHEMA}.load")
    con.execute(
        f"create table {META_SCHEMA}.load (extract_path VARCHAR, loaded_at TIMESTAMP, package_version VARCHAR,"
        " absent_tables VARCHAR[], allow_identifiers BOOLEAN, warnings INTEGER, reference_date DATE,"
        " date_shift_days INTEGER)"
    )
    con.execute(
        f"insert into {META_SCHEMA}.load values (?, ?, ?, ?, ?, ?, ?, ?)",
        [source, loaded_at, __version__, absent_tables, allow_identifiers, warnings, reference_date, date_shift_days],
    )


def data_sha256(files: list[dict[str, Any]]) -> str | None:
    """One fingerprint of a load's bytes: every file's table, name and sha256 (None when nothing was loaded)."""
    if not files:
        return None
    return sha256_json(sorted([str(f["table"]), str(f["file"]), str(f["sha256"])] for f in files))


def _relations(con: duckdb.DuckDBPyConnection) -> set[tuple[str, str]]:
    return {
        (schema, name)
        for schema, name in con.execute("select table_schema, table_name from information_schema.tables").fetchall()
    }


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def read_load(con: duckdb.DuckDBPyConnection) -> LoadRecord | None:
    """The load the database holds now, or None when nothing was loaded."""
    have = _relations(con)
    if (META_SCHEMA, "load") not in have:
        return None
    loads = _rows(con, f"select * from {META_SCHEMA}.load")
    if not loads:
        return None
    load = loads[-1]
    files = []
    if (META_SCHEMA, "load_provenance") in have:
        files = [
            {"table": r["table_name"], "file": r["file"], "sha256": r["sha256"], "rows": r["rows"]}
            for r in _rows(
                con, f"select table_name, file, sha256, rows from {META_SCHEMA}.load_provenance order by table_name, file"
            )
        ]
    reference = load.get("reference_date")
    return LoadRecord(
        extract_path=str(load["extract_path"]),
        loaded_at=load["loaded_at"].isoformat(sep=" ", timespec="seconds") if load["loaded_at"] else "",
        data_sha256=data_sha256(files),
        files=files,
        absent_tables=list(load.get("absent_tables") or []),
        package_version=load.get("package_version"),
        reference_date=reference.isoformat() if reference is not None else None,
        date_shift_days=int(load.get("date_shift_days") or 0),
    )


@dataclass(frozen=True)
class CohortBuild:
    """What the cohort in a database was built from (``meta.cohort_build``)."""

    spec: dict[str, Any]
    load: LoadRecord
    package_version: str
    built_at: str


def record_cohort_build(
    con: duckdb.DuckDBPyConnection, spec: StudySpec, load: LoadRecord, spec_fingerprint: str
) -> None:
    """Write ``meta.cohort_build`` (one row: this build) inside the build's transaction."""
    inputs = {
        "spec": stage_spec(spec, "build_cohort"),
        "load": load.to_dict(),
        "package_version": __version__,
    }
    con.execute(f"create schema if not exists {META_SCHEMA}")
    con.execute(
        f"create or replace table {COHORT_BUILD_TABLE} ("
        "study varchar, spec_sha256 varchar, spec_json varchar, spec_file varchar, "
        "package_version varchar, built_at timestamp, inputs_json varchar)"
    )
    con.execute(
        f"insert into {COHORT_BUILD_TABLE} values (?, ?, ?, ?, ?, current_timestamp, ?)",
        [
            spec.study.name,
            spec_fingerprint,
            json.dumps(spec.to_toml_dict(), sort_keys=True),
            str(spec.source_path) if spec.source_path else None,
            __version__,
            json.dumps(inputs, sort_keys=True, default=str),
        ],
    )


def read_cohort_build(con: duckdb.DuckDBPyConnection) -> CohortBuild | None:
    """The record of the cohort build, or None for a database whose build recorded no inputs."""
    if (META_SCHEMA, "cohort_build") not in _relations(con):
        return None
    rows = _rows(con, f"select * from {COHORT_BUILD_TABLE}")
    if not rows or not rows[-1].get("inputs_json"):
        return None
    row = rows[-1]
    inputs = json.loads(row["inputs_json"])
    return CohortBuild(
        spec=inputs["spec"],
        load=LoadRecord.from_dict(inputs["load"]),
        package_version=inputs["package_version"],
        built_at=row["built_at"].isoformat(sep=" ", timespec="seconds") if row["built_at"] else "",
    )


def write_build_record(con: duckdb.DuckDBPyConnection, folder: Path) -> Path:
    """Write the cohort's build record beside its exported marts (``folder/cohort_build.json``)."""
    build = read_cohort_build(con)
    path = Path(folder) / "cohort_build.json"
    record = {**asdict(build), "load": build.load.to_dict()} if build is not None else None
    path.write_text(json.dumps(record, indent=1, sort_keys=True, default=str) + "\n")
    return path


def spec_differences(built: Any, now: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """Every dotted key whose value differs between two spec documents, as (key, built, now)."""
    if isinstance(built, dict) and isinstance(now, dict):
        out: list[tuple[str, Any, Any]] = []
        for name in sorted(set(built) | set(now), key=str):
            key = f"{prefix}.{name}" if prefix else str(name)
            out.extend(spec_differences(built.get(name), now.get(name), key))
        return out
    return [] if built == now else [(prefix, built, now)]


def _shown(key: str, value: Any) -> str:
    if key.startswith("valuesets."):
        return "(another file content)" if value is not None else "(none)"
    return json.dumps(value)


def rebuild_command(spec: StudySpec, db_path: str | Path) -> str:
    """The command that rebuilds the cohort for this spec."""
    spec_arg = f" --spec {spec.source_path}" if spec.source_path and not _is_packaged(spec.source_path) else ""
    return f"`ipm-outcomes cohort --db {db_path}{spec_arg}`"


def _is_packaged(path: Path) -> bool:
    from .spec import packaged_spec_path

    try:
        return Path(path).resolve() == packaged_spec_path().resolve()
    except IpmError:
        return False


def _stale_load(build: CohortBuild, load: LoadRecord) -> str | None:
    # By content: reloading the same bytes with the same dates keeps the cohort valid.
    if (load.data_sha256, load.date_shift_days) == (build.load.data_sha256, build.load.date_shift_days):
        return None
    return f"the cohort was built from {build.load.describe()}, but the database now holds {load.describe()}"


def _other_version(build: CohortBuild) -> str | None:
    if build.package_version == __version__:
        return None
    return f"the cohort was built by ipm-outcomes {build.package_version}, this is {__version__}"


_NO_RECORD = "the cohort here does not record what it was built from (built by an older version)"


def check_cohort(con: duckdb.DuckDBPyConnection, spec: StudySpec, db_path: str | Path) -> CohortBuild:
    """The cohort's build record, after checking it belongs with ``spec`` and the database's load.

    Raises
    ------
    IpmError
        One line naming what differs (the build's record missing, the extract reloaded since the
        build, a cohort-affecting spec key, the package version) and the command that rebuilds it.
    """
    fix = f"rebuild it with {rebuild_command(spec, db_path)}"
    build = read_cohort_build(con)
    if build is None:
        raise IpmError(f"{db_path}: {_NO_RECORD}; {fix}")
    stale = _stale_load(build, read_load(con) or UNRECORDED_LOAD)
    if stale:
        raise IpmError(f"{db_path}: {stale}; {fix}")
    differences = spec_differences(build.spec, stage_spec(spec, "build_cohort"))
    if differences:
        named = "; ".join(
            f"{key} = {_shown(key, old)}, this spec says {_shown(key, new)}"
            for key, old, new in differences[:_NAMED_DIFFERENCES]
        )
        more = len(differences) - _NAMED_DIFFERENCES
        tail = f" (and {more} more key{'s' if more > 1 else ''})" if more > 0 else ""
        raise IpmError(f"{db_path}: the cohort was built with {named}{tail}: {fix}")
    other = _other_version(build)
    if other:
        raise IpmError(f"{db_path}: {other}; {fix}")
    return build


def inconsistencies(con: duckdb.DuckDBPyConnection, provenance: dict[str, Any] | None = None) -> list[str]:
    """What does not belong together in a study database and, when given, the results read beside it.

    For readers that cannot refuse to run (the analyst notebooks show these as warnings): a cohort
    left from an earlier load or package version, and results computed from another build of the
    cohort than the one the database holds (``provenance`` is ``results.json``'s).
    """
    build = read_cohort_build(con)
    if build is None:
        return [f"{_NO_RECORD}: rebuild it with `ipm-outcomes cohort`"]
    problems = [
        f"{problem}: rebuild it with `ipm-outcomes cohort`"
        for problem in (_stale_load(build, read_load(con) or UNRECORDED_LOAD), _other_version(build))
        if problem
    ]
    if provenance is not None:
        built_then = provenance.get("cohort_built_at")
        loaded_then = (provenance.get("cohort_load") or {}).get("data_sha256")
        if (built_then, loaded_then) != (build.built_at, build.load.data_sha256):
            problems.append(
                f"the results were computed from the cohort built at {built_then or 'an unrecorded time'}, but the "
                f"database holds the one built at {build.built_at}: re-run `ipm-outcomes analyze`"
            )
    return problems
