"""Build the study cohort and its outcome tables in DuckDB, and export them.

:func:`build` loads the study's reference data (value sets, delay bands, horizons, work-status roles,
Charlson weights, attrition steps) into schema ``ref``, runs the packaged SQL layers
staging -> intermediate -> marts in one transaction, records provenance in ``meta.cohort_build`` and,
when asked, writes the marts to Parquet. The marts are the contract for the models:

``marts.cohort``
    one row per cohort person (first eligible new episode of low back pain): baseline covariates,
    referral timing, exposure, delay category, RTW-population flag, follow-up end.
``marts.rtw_outcome``
    one row per person in the return-to-work population: ``time_days``, ``event`` (0 censored,
    1 return to work, 2 competing), ``event_type``, ``referral_day``, ``censor_day``.
``marts.qol_outcome``
    one row per cohort person per instrument per horizon: baseline and follow-up score (null = missing).
``marts.attrition``
    one row per population ('cohort', 'rtw') per step: persons remaining and excluded, in order.
``marts.outcome_availability``
    one row per secondary outcome of the spec: ``kind``, ``available``, ``detail`` (why not, or a caveat).
``marts.secondary_outcome``
    one row per cohort person per available time-to-event secondary outcome: ``in_population``,
    ``time_days``, ``event`` (0 censored, 1 outcome, 2 death), ``event_type``, ``censor_day``,
    ``censor_reason``, ``opioid_naive``.
``marts.negative_control_outcome``
    one row per cohort person per negative-control outcome, with the same columns (no ``opioid_naive``).
``marts.cost_outcome``
    one row per cohort person per available cost outcome: ``allowed_amount`` over days 0..``observed_day``,
    ``complete`` (followed to the horizon or died), ``end_reason``, ``censor_day``.
``marts.cost_daily``
    one row per cohort person per available cost outcome per day (0..``observed_day``) with an allowed
    amount: the history behind ``cost_outcome`` (for the partitioned and clone-censor-weight cost estimators).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from . import db, lineage
from .contract import RAW_SCHEMA, TABLES
from .errors import IpmError
from .portable_sql import build_order
from .progress import StageProgress
from .disclosure import COMPLEMENT_LABEL, CountLedger, DisclosurePolicy, merge_attrition_steps
from .marts import CHARLSON_COMPONENTS, MART_KEYS
from .spec import COST_OUTCOMES, EVENT_OUTCOMES, StudySpec, spec_sha256
from .valuesets import insert_rows, load_valuesets, write_valueset_table

#: The attrition rules of the cohort, in order (step_order = position; 0 is everyone enrolled).
COHORT_RULES: tuple[str, ...] = (
    "enrolled_person",
    "lbp_claim",
    "new_episode",
    "enrollment",
    "age",
    "red_flags",
    "prior_ipm",
)
RTW_RULES: tuple[str, ...] = ("cohort", "off_work_at_index")

_REQUIRED_RAW = tuple(t.name for t in TABLES) + ("medical_claim_diagnosis",)


@dataclass(frozen=True)
class CohortSummary:
    """What a cohort build produced: counts, attrition and provenance.

    ``attrition`` holds one dict per population per step (population, step_order, rule, step,
    remaining, excluded); ``qol_observed`` one dict per instrument per horizon (instrument,
    horizon_days, observed, missing).
    """

    db_path: Path
    study: str
    spec_sha256: str
    persons: int
    lbp_persons: int
    cohort: int
    early: int
    delayed: int
    never_referred: int
    delay_categories: dict[str, int]
    rtw_population: int
    rtw_events: dict[str, int]
    qol_observed: list[dict]
    attrition: list[dict]
    pharmacy_available: bool
    work_status_available: bool
    pro_available: bool
    data_end_date: str | None
    seconds: float
    exported: list[Path] = field(default_factory=list)
    #: secondary outcome -> why it is unavailable (marts.outcome_availability); empty when all are available
    secondary_unavailable: dict[str, str] = field(default_factory=dict)

    def describe(self, policy: DisclosurePolicy | None = DisclosurePolicy()) -> str:
        """A short plain-text report of the build (for the CLI and logs).

        Every count of persons passes the disclosure gate of ``policy`` (the spec's
        ``report.min_cell_size``): counts of 1 to min_cell_size - 1 show as ``<11``, complementary
        counts as ``*``, and attrition steps excluding a small number are merged, exactly as in the
        report, so that what reaches a terminal, a log file or a Prefect run history discloses no small
        count. ``policy=None`` shows the true numbers (``--show-small-counts``: the analyst's own terminal).
        """
        c = self._console_counts(policy)
        lines = [f"Cohort built for study {self.study!r} in {self.seconds:.1f} s -> {self.db_path}"]
        lines.append(f"  data end date: {self.data_end_date or 'unknown (no events)'}")
        lines.append("  attrition (cohort):")
        for step in c["attrition"]:
            excluded = "" if step["excluded"] is None else f"(-{step['excluded']})"
            lines.append(f"    {step['remaining']:>10}  {excluded:<8} {step['step']}")
        if self.cohort == 0:
            lines.append("  the cohort is empty: no person met every rule (see the attrition above)")
        else:
            lines.append(
                f"  exposure: {c['early']} early, {c['delayed']} delayed "
                f"({c['never']} never referred within follow-up)"
            )
            bands = ", ".join(f"{label}: {c[('band', label)]}" for label in self.delay_categories)
            lines.append(f"  days to referral: {bands}")
        if not self.work_status_available:
            lines.append("  return to work: unavailable (the extract has no ehr_work_status rows)")
        else:
            events = ", ".join(f"{k}: {c[('event', k)]}" for k in self.rtw_events)
            lines.append(f"  return-to-work population: {c['rtw']} ({events})")
        if not self.pro_available:
            lines.append("  quality of life: unavailable (the extract has no ehr_pro rows)")
        elif self.cohort:
            parts = [
                f"{r['instrument']}@{r['horizon_days']}d {c[('missing', r['instrument'], r['horizon_days'])]}"
                for r in self.qol_observed
            ]
            lines.append("  quality-of-life follow-up missing: " + ", ".join(parts))
        if policy is not None:
            lines.append(
                f"  counts below {policy.min_cell_size} shown as {policy.small_label}, {COMPLEMENT_LABEL} withheld "
                "so they cannot be worked out (--show-small-counts shows them on your own terminal)"
            )
        if not self.pharmacy_available:
            lines.append("  opioid use / MME: unavailable (no pharmacy_claim or ndc_reference rows)")
        for outcome, reason in self.secondary_unavailable.items():
            lines.append(f"  {outcome}: unavailable ({reason})")
        for path in self.exported:
            lines.append(f"  wrote {path}")
        return "\n".join(lines)

    def _console_counts(self, policy: DisclosurePolicy | None) -> dict:
        """Every count :meth:`describe` prints, as displayed: through one :class:`CountLedger` with the
        identities a reader of the lines can use (steps, early + delayed, bands, events, observed + missing)."""
        steps = [
            {"step": r["step"], "remaining": int(r["remaining"]), "excluded": int(r["excluded"] or 0)}
            for r in self.attrition
            if r["population"] == "cohort"
        ]
        if policy is None:
            shown = {k: f"{v:,}" for k, v in self._counts().items()}
            shown["attrition"] = [
                {"step": s["step"], "remaining": f"{s['remaining']:,}", "excluded": None if i == 0 else f"{s['excluded']:,}"}
                for i, s in enumerate(steps)
            ]
            return shown
        ledger = CountLedger(policy)
        counts = self._counts()
        for key, value in counts.items():
            ledger.add(key, value, priority=2 if key in ("cohort", "early", "delayed", "rtw") else 0)
        ledger.add_identity("cohort", ["early", "delayed"], only_if_holds=True)
        bands = [("band", label) for label in self.delay_categories]
        ledger.add_identity("cohort", bands, only_if_holds=True)
        if ("band", "never") in ledger.cells:
            ledger.add_identity("never", [("band", "never")], only_if_holds=True)
            later = ledger.add("referred_later", self.delayed - self.never_referred, displayed=False)
            ledger.add_identity("delayed", [later, "never"], only_if_holds=True)
        ledger.add_identity("rtw", [("event", k) for k in self.rtw_events], only_if_holds=True)
        for r in self.qol_observed:
            obs = ledger.add(("observed", r["instrument"], r["horizon_days"]), int(r["observed"]), displayed=False)
            ledger.add_identity("cohort", [obs, ("missing", r["instrument"], r["horizon_days"])], only_if_holds=True)
        merged = merge_attrition_steps(steps, policy) if steps else []
        prev = None
        for i, s in enumerate(merged):
            rk = ledger.add(("attr", i, "remaining"), s["remaining"], priority=1)
            if i == len(merged) - 1:
                ledger.add_identity(rk, ["cohort"], only_if_holds=True)
            if prev is not None:
                ek = ledger.add(("attr", i, "excluded"), s["excluded"])
                ledger.add_identity(prev, [rk, ek], only_if_holds=True)
            prev = rk
        ledger.protect()
        shown = {k: ledger.display(k) for k in counts}
        shown["attrition"] = [
            {
                "step": s["step"],
                "remaining": ledger.display(("attr", i, "remaining")),
                "excluded": None if i == 0 else ledger.display(("attr", i, "excluded")),
            }
            for i, s in enumerate(merged)
        ]
        return shown

    def _counts(self) -> dict:
        out = {
            "cohort": self.cohort,
            "early": self.early,
            "delayed": self.delayed,
            "never": self.never_referred,
            "rtw": self.rtw_population,
        }
        out.update({("band", label): n for label, n in self.delay_categories.items()})
        out.update({("event", k): v for k, v in self.rtw_events.items()})
        out.update({("missing", r["instrument"], r["horizon_days"]): int(r["missing"]) for r in self.qol_observed})
        return out


def reference_rows(spec: StudySpec) -> dict[str, tuple[str, list[tuple]]]:
    """The spec-derived reference tables: name -> (DDL columns, rows).

    Lists in the spec become small tables so the SQL joins them instead of formatting them in.
    """
    rtw = spec.outcomes.rtw
    cohort = spec.cohort
    weights = spec.covariates.charlson_weights.model_dump()
    hierarchy = spec.covariates.charlson_hierarchy
    bands = [b for b in spec.delay_categories() if b[0] != "never"]
    statuses = ", ".join(rtw.population_statuses)
    lo, hi = rtw.population_window_days
    steps = [
        ("cohort", 0, COHORT_RULES[0], "Persons with an enrollment record"),
        ("cohort", 1, COHORT_RULES[1], "At least one medical claim with a low back pain diagnosis (any position)"),
        (
            "cohort",
            2,
            COHORT_RULES[2],
            f"New episode: no low back pain diagnosis in the {cohort.washout_days} days before",
        ),
        (
            "cohort",
            3,
            COHORT_RULES[3],
            f"Enrolled from {cohort.baseline_enrollment_days} days before index through index "
            f"(gaps of up to {cohort.enrollment_gap_days} days bridged)",
        ),
        ("cohort", 4, COHORT_RULES[4], f"Aged {cohort.age_min} to {cohort.age_max} at index"),
        (
            "cohort",
            5,
            COHORT_RULES[5],
            f"No red-flag diagnosis from {cohort.red_flag_lookback_days} days before index through index",
        ),
        ("cohort", 6, COHORT_RULES[6], f"No IPM contact in the {cohort.ipm_washout_days} days before index"),
        ("rtw", 0, RTW_RULES[0], "Persons in the cohort"),
        ("rtw", 1, RTW_RULES[1], f"Off work at index: {statuses} recorded from day {lo} to day {hi}"),
    ]
    roles = (
        [(s, "population") for s in rtw.population_statuses]
        + [(s, "event") for s in rtw.event_statuses]
        + [(s, "competing") for s in rtw.competing_statuses]
    )
    return {
        "delay_category": (
            "category_order integer, label varchar, first_day integer, last_day integer",
            [(i, label, first, last) for i, (label, first, last) in enumerate(bands)],
        ),
        "qol_instrument": ("instrument varchar", [(name,) for name in spec.outcomes.qol.instruments]),
        "qol_horizon": ("horizon_days integer", [(h,) for h in spec.outcomes.qol.horizons_days]),
        "work_status_role": ("work_status varchar, role varchar", roles),
        "charlson_weight": (
            "component varchar, weight integer, superseded_by varchar",
            [(name, weights[name], hierarchy.get(name)) for name in CHARLSON_COMPONENTS],
        ),
        "attrition_step": ("population varchar, step_order integer, rule varchar, step varchar", steps),
        **secondary_outcome_rows(spec),
    }


def secondary_outcome_rows(spec: StudySpec) -> dict[str, tuple[str, list[tuple]]]:
    """The secondary outcomes of the spec as reference tables (see :func:`reference_rows`).

    ``secondary_outcome``: one row per outcome (the negative controls as one row of kind
    ``negative_control``); ``outcome_valueset``: the value sets each outcome reads, by role
    (diagnosis, procedure, negative_control); ``outcome_setting``: the ED outcome's places of service
    and encounter types.
    """
    out = spec.outcomes
    outcomes: list[tuple] = []
    valuesets: list[tuple] = []
    settings: list[tuple] = []
    for name, kind in EVENT_OUTCOMES.items():
        section = getattr(out, name)
        outcomes.append((name, kind, getattr(section, "new_lookback_days", None), None))
        valuesets += [(name, "diagnosis", v) for v in getattr(section, "diagnosis_valuesets", [])]
        valuesets += [(name, "procedure", v) for v in getattr(section, "procedure_valuesets", [])]
        settings += [(name, "place_of_service", v) for v in getattr(section, "places_of_service", [])]
        settings += [(name, "encounter_type", v) for v in getattr(section, "encounter_types", [])]
    for name in COST_OUTCOMES:
        section = getattr(out, name)
        outcomes.append((name, "cost", None, section.related_only))
        valuesets += [(name, "diagnosis", v) for v in section.diagnosis_valuesets]
        valuesets += [(name, "procedure", v) for v in section.procedure_valuesets]
    controls = out.negative_controls
    outcomes.append(("negative_controls", "negative_control", controls.new_lookback_days, None))
    valuesets.append(("negative_controls", "negative_control", controls.valueset))
    return {
        "secondary_outcome": (
            "outcome varchar, kind varchar, new_lookback_days integer, related_only boolean",
            outcomes,
        ),
        "outcome_valueset": ("outcome varchar, role varchar, valueset varchar", valuesets),
        "outcome_setting": ("outcome varchar, setting varchar, value varchar", settings),
    }


def check_negative_controls(spec: StudySpec, valuesets: dict) -> None:
    """Every code of the negative-control value set names its outcome in column ``group``.

    Raises :class:`IpmError` naming the file and the first code without one.
    """
    vs = valuesets[spec.outcomes.negative_controls.valueset]
    for entry in vs.entries:
        if entry.group is None:
            raise IpmError(
                f"{vs.path}: code {entry.code} has no group; every negative-control code needs the outcome "
                "it belongs to in column group"
            )


def write_reference_tables(
    con: duckdb.DuckDBPyConnection, spec: StudySpec, valuesets: dict | None = None, date_shift_days: int = 0
) -> None:
    """Create schema ``ref``: the value sets and the spec-derived tables (see :func:`reference_rows`).

    ``date_shift_days`` is the loaded extract's date shift (``ingest --reference-date``): code
    validity windows move with it.
    """
    write_valueset_table(con, valuesets if valuesets is not None else load_valuesets(spec), date_shift_days)
    for name, (columns, rows) in reference_rows(spec).items():
        con.execute(f"create or replace table ref.{name} ({columns})")
        insert_rows(con, f"ref.{name}", rows)


def _check_raw(con: duckdb.DuckDBPyConnection, db_path: Path) -> None:
    present = {
        row[0]
        for row in con.execute(
            "select table_name from information_schema.tables where table_schema = ?", [RAW_SCHEMA]
        ).fetchall()
    }
    missing = [name for name in _REQUIRED_RAW if name not in present]
    if missing:
        raise IpmError(
            f"{db_path}: no loaded extract (missing {RAW_SCHEMA}.{', '.join(missing)}); "
            "run `ipm-outcomes ingest --db PATH --extract DIR` first"
        )


def _has_rows(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return con.execute(f"select exists (select 1 from {RAW_SCHEMA}.{table})").fetchone()[0]


def build(
    spec: StudySpec,
    db_path: str | Path,
    export_dir: str | Path | None = None,
    progress: bool = False,
) -> CohortSummary:
    """Build the cohort marts in a DuckDB database that holds a loaded extract.

    Parameters
    ----------
    spec
        The validated study spec (:func:`ipm_outcomes.spec.load_spec`).
    db_path
        DuckDB file written by ``ipm-outcomes ingest`` (schema ``raw``).
    export_dir
        When given, the marts are also written there as ``cohort.parquet``, ``rtw_outcome.parquet``,
        ``qol_outcome.parquet`` and ``attrition.parquet`` (the folder is created), with
        ``cohort_build.json``: the load, spec sections and version they were built from.
    progress
        Show a progress bar over the SQL tables.

    Returns
    -------
    CohortSummary
        Counts, attrition and provenance of the build. The tables themselves are in the database:
        ``marts.cohort`` (one row per cohort person), ``marts.rtw_outcome`` (one row per person in the
        return-to-work population), ``marts.qol_outcome`` (one row per cohort person per instrument per
        horizon) and ``marts.attrition`` (one row per population per step).

    Raises
    ------
    IpmError
        When the database holds no loaded extract, a value set is invalid, or the database is in use.
    """
    started = time.perf_counter()
    db_path = Path(db_path)
    if not db_path.exists():
        raise IpmError(f"{db_path}: no such database; run `ipm-outcomes ingest --db PATH --extract DIR` first")
    valuesets = load_valuesets(spec)  # read and validated before the database is touched
    check_negative_controls(spec, valuesets)
    fingerprint = spec_sha256(spec)
    con = db.connect(db_path)
    try:
        _check_raw(con, db_path)
        load = lineage.read_load(con) or lineage.UNRECORDED_LOAD
        # Marts are exported sorted by key, so row order inside tables is never relied on; letting
        # DuckDB drop it lowers the memory of large create-table-as statements.
        con.execute("set preserve_insertion_order = false")
        available = {t: _has_rows(con, t) for t in ("pharmacy_claim", "ndc_reference", "ehr_work_status", "ehr_pro")}
        params = dict(spec.sql_params())
        params["pharmacy_available"] = available["pharmacy_claim"] and available["ndc_reference"]
        con.execute("begin transaction")
        try:
            write_reference_tables(con, spec, valuesets, load.date_shift_days)
            _run_sql(con, params, progress)
            lineage.record_cohort_build(con, spec, load, fingerprint)
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
        exported = []
        if export_dir is not None:
            exported = export_marts(con, export_dir)
            exported.append(lineage.write_build_record(con, Path(export_dir)))
        summary = _summarise(con, spec, db_path, fingerprint, available, params["pharmacy_available"])
    finally:
        con.close()
    return CohortSummary(**summary, seconds=time.perf_counter() - started, exported=exported)


def _run_sql(con: duckdb.DuckDBPyConnection, params: dict, progress: bool) -> None:
    order = build_order(db.SQL_LAYERS)
    steps = [(layer, table) for layer, tables in order.items() for table in tables]
    if not progress:
        db.run_layers(con, params, layers=list(order), ordered_tables=order)
        return
    with StageProgress("cohort", True, len(steps)) as bar:
        for layer, table in steps:
            bar.step(f"{layer}.{table}")
            db.run_layers(con, params, layers=[layer], ordered_tables={layer: [table]})


def export_marts(con: duckdb.DuckDBPyConnection, export_dir: str | Path) -> list[Path]:
    """Write every mart to ``export_dir/<mart>.parquet``; returns the files written."""
    folder = Path(export_dir)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for mart, key in MART_KEYS.items():
        path = folder / f"{mart}.parquet"
        con.table(f"marts.{mart}").order(", ".join(key)).to_parquet(str(path))
        written.append(path)
    return written


def _summarise(con, spec, db_path, fingerprint, available, pharmacy_available, totals: dict | None = None) -> dict:
    """The build's counts from the marts in ``con``; ``totals`` (persons, lbp_persons, data_end_date)
    when the staging tables live elsewhere (a Spark build brings back only the marts)."""
    one = lambda sql: con.execute(sql).fetchone()[0]  # noqa: E731
    if totals is None:
        totals = {
            "persons": one("select count(*) from staging.person"),
            "lbp_persons": one("select count(*) from intermediate.person_eligibility"),
            "data_end_date": one("select data_end_date from staging.extract_period"),
        }
    attrition = [
        dict(zip(("population", "step_order", "rule", "step", "remaining", "excluded"), row, strict=True))
        for row in con.execute(
            "select population, step_order, rule, step, remaining, excluded from marts.attrition "
            "order by population, step_order"
        ).fetchall()
    ]
    exposure = dict(con.execute("select exposure, count(*) from marts.cohort group by exposure").fetchall())
    counts = dict(con.execute("select delay_category, count(*) from marts.cohort group by delay_category").fetchall())
    labels = [label for label, _, _ in spec.delay_categories()]
    events = dict(con.execute("select event_type, count(*) from marts.rtw_outcome group by event_type").fetchall())
    qol = [
        dict(zip(("instrument", "horizon_days", "observed", "missing"), row, strict=True))
        for row in con.execute(
            "select instrument, horizon_days, count(followup_score), count(*) - count(followup_score) "
            "from marts.qol_outcome group by instrument, horizon_days order by instrument, horizon_days"
        ).fetchall()
    ]
    data_end = totals["data_end_date"]
    return dict(
        db_path=db_path,
        study=spec.study.name,
        spec_sha256=fingerprint,
        persons=totals["persons"],
        lbp_persons=totals["lbp_persons"],
        cohort=one("select count(*) from marts.cohort"),
        early=exposure.get("early", 0),
        delayed=exposure.get("delayed", 0),
        never_referred=counts.get("never", 0),
        delay_categories={label: counts.get(label, 0) for label in labels},
        rtw_population=one("select count(*) from marts.rtw_outcome"),
        rtw_events=dict(sorted(events.items())),
        qol_observed=qol,
        attrition=attrition,
        pharmacy_available=bool(pharmacy_available),
        secondary_unavailable=dict(
            con.execute(
                "select outcome, detail from marts.outcome_availability where not available order by outcome"
            ).fetchall()
        ),
        work_status_available=available["ehr_work_status"],
        pro_available=available["ehr_pro"],
        data_end_date=data_end.isoformat() if data_end else None,
    )
