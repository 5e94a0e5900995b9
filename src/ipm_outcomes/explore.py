"""Read-only views of a loaded extract for analysts: sizes, date coverage, code frequencies, data quality.

The notebooks call these instead of writing their own SQL, so what an analyst sees is tested.
"""

from __future__ import annotations

import pandas as pd

from .contract import RAW_SCHEMA, TABLES
from .marts import MART_KEYS

#: The date column that places each table's rows in time.
_EVENT_DATE = {
    "eligibility": "enrollment_start_date",
    "medical_claim": "claim_start_date",
    "pharmacy_claim": "dispensing_date",
    "ehr_encounter": "encounter_date",
    "ehr_pro": "assessment_date",
    "ehr_work_status": "status_date",
}


def table_sizes(con) -> pd.DataFrame:
    """Rows and distinct persons per loaded table.

    Returns
    -------
    DataFrame
        One row per contract table: ``table``, ``rows``, ``persons`` (null for tables without person_id).
    """
    rows = []
    for table in TABLES:
        has_person = "person_id" in table.column_names
        persons_sql = "count(distinct person_id)" if has_person else "null"
        n_rows, n_persons = con.execute(
            f"select count(*), {persons_sql} from {RAW_SCHEMA}.{table.name}"
        ).fetchone()
        rows.append({"table": table.name, "rows": n_rows, "persons": n_persons})
    return pd.DataFrame(rows)


def date_coverage(con) -> pd.DataFrame:
    """First and last event date and rows per calendar year for each dated table.

    Returns
    -------
    DataFrame
        One row per table per calendar year: ``table``, ``year``, ``rows``, ``first_date``, ``last_date``
        (the table's overall first and last date, repeated on each of its rows).
    """
    frames = []
    for table, column in _EVENT_DATE.items():
        frame = con.execute(
            f"""
            with dated as (select {column} as event_date from {RAW_SCHEMA}.{table} where {column} is not null)
            select ? as "table", year(event_date) as year, count(*) as rows,
                   (select min(event_date) from dated) as first_date,
                   (select max(event_date) from dated) as last_date
            from dated group by year(event_date) order by year
            """,
            [table],
        ).df()
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def code_frequencies(con, kind: str = "diagnosis", top: int = 20) -> pd.DataFrame:
    """The most frequent codes of one kind.

    Parameters
    ----------
    kind
        ``diagnosis`` (ICD-10-CM, any position), ``procedure`` (CPT/HCPCS) or ``taxonomy``
        (rendering provider NUCC taxonomy).
    top
        How many codes to return.

    Returns
    -------
    DataFrame
        One row per code: ``code``, ``rows``, ``persons``, most frequent first.
    """
    sources = {
        "diagnosis": ("diagnosis_code", "medical_claim_diagnosis"),
        "procedure": ("hcpcs_code", "medical_claim"),
        "taxonomy": ("rendering_taxonomy_code", "medical_claim"),
    }
    if kind not in sources:
        raise ValueError(f"kind must be one of {sorted(sources)}, not {kind!r}")
    column, table = sources[kind]
    return con.execute(
        f"""
        select {column} as code, count(*) as rows, count(distinct person_id) as persons
        from {RAW_SCHEMA}.{table} where {column} is not null
        group by {column} order by rows desc, code limit ?
        """,
        [top],
    ).df()


def data_quality_findings(con) -> pd.DataFrame:
    """Checks that are legal under the contract but worth an analyst's attention.

    Returns
    -------
    DataFrame
        One row per check: ``check``, ``count``, ``detail``.
    """
    checks = [
        (
            "persons with claims but no eligibility",
            f"""select count(distinct c.person_id) from {RAW_SCHEMA}.medical_claim c
                where not exists (select 1 from {RAW_SCHEMA}.eligibility e where e.person_id = c.person_id)""",
            "their claims cannot enter a cohort",
        ),
        (
            "claim lines outside every enrollment span",
            f"""select count(*) from {RAW_SCHEMA}.medical_claim c
                where not exists (select 1 from {RAW_SCHEMA}.eligibility e where e.person_id = c.person_id
                  and c.claim_start_date between e.enrollment_start_date and e.enrollment_end_date)""",
            "services while not enrolled: check the eligibility feed",
        ),
        (
            "claim lines after the person's death",
            f"""select count(*) from {RAW_SCHEMA}.medical_claim c join (
                  select person_id, min(death_date) as death_date from {RAW_SCHEMA}.eligibility
                  where death_date is not null group by person_id) d using (person_id)
                where c.claim_start_date > d.death_date""",
            "implausible; usually a linkage or date error",
        ),
        (
            "persons with no work-status record",
            f"""select count(*) from (select distinct person_id from {RAW_SCHEMA}.eligibility) e
                where not exists (select 1 from {RAW_SCHEMA}.ehr_work_status w where w.person_id = e.person_id)""",
            "they cannot enter the return-to-work population",
        ),
        (
            "persons with no patient-reported outcome",
            f"""select count(*) from (select distinct person_id from {RAW_SCHEMA}.eligibility) e
                where not exists (select 1 from {RAW_SCHEMA}.ehr_pro p where p.person_id = e.person_id)""",
            "they have no quality-of-life measurements",
        ),
    ]
    rows = [
        {"check": name, "count": con.execute(sql).fetchone()[0], "detail": detail} for name, sql, detail in checks
    ]
    return pd.DataFrame(rows)


def mart(con, name: str) -> pd.DataFrame:
    """One of the analysis marts built by ``ipm-outcomes cohort``, ordered by its key.

    Parameters
    ----------
    name
        ``cohort``, ``rtw_outcome``, ``qol_outcome`` or ``attrition`` (see ``marts.MART_KEYS``).

    Returns
    -------
    DataFrame
        The mart as stored; its grain is the mart's (e.g. one row per person for ``cohort``).
    """
    if name not in MART_KEYS:
        raise ValueError(f"no mart {name!r}; marts are {', '.join(MART_KEYS)}")
    order = ", ".join(MART_KEYS[name])
    return con.execute(f"select * from marts.{name} order by {order}").df()
