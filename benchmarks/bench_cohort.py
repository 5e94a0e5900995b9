"""Benchmark: cohort build on the synthetic extract vs one hand-written DuckDB query.

    .venv/bin/python benchmarks/bench_cohort.py [--persons 1000000] [--cache data/interim/bench_cohort]

Generates the synthetic extract once into the cache folder (skipped when present), ingests it once
(skipped when the database exists), then times, each in a fresh process so peak memory is its own:

1. ``cohort.build`` (every staging/intermediate/mart table, value sets, provenance);
2. one hand-written DuckDB query computing only index and referral dates (same rules), on the
   loaded raw tables and, for a Parquet extract, on the extract's files themselves.

It checks that both give the same index dates and days to referral, and prints wall time, CPU time
(all DuckDB threads; steadier than wall time on a shared machine) and peak resident memory.
Targets (issue 3): build under 60 s on 2 cores and within 2x of the hand query.
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path


def _codes(name: str) -> list[tuple[str, bool, str | None]]:
    """(code without *, is prefix, valid_to) of a packaged value set."""
    path = Path(str(resources.files("ipm_outcomes") / "valuesets" / f"{name}.csv"))
    with open(path, newline="") as handle:
        return [
            (row["code"].rstrip("*"), row["code"].endswith("*"), row.get("valid_to") or None)
            for row in csv.DictReader(handle)
        ]


def _match(column: str, name: str, date_column: str | None = None) -> str:
    """A SQL predicate for 'column is in value set name' (DuckDB dialect; benchmark only)."""
    parts = []
    exact = [c for c, prefix, valid_to in _codes(name) if not prefix and not valid_to]
    if exact:
        parts.append(f"{column} in ({', '.join(repr(c) for c in exact)})")
    for code, prefix, valid_to in _codes(name):
        if prefix:
            parts.append(f"starts_with({column}, '{code}')")
        elif valid_to:
            parts.append(f"({column} = '{code}' and {date_column} <= date '{valid_to}')")
    return "(" + " or ".join(parts) + ")"


def hand_query() -> str:
    """Index date and days to referral for the default spec, written by hand as one query."""
    return f"""
with lbp as (
    select distinct person_id, claim_start_date as d
    from raw.medical_claim_diagnosis
    where {_match("diagnosis_code", "lbp", "claim_start_date")}
),
red as (
    select distinct person_id, claim_start_date as d
    from raw.medical_claim_diagnosis
    where {_match("diagnosis_code", "red_flags")}
),
ipm as (
    select person_id, claim_start_date as d, {_match("hcpcs_code", "ipm_procedures")} as is_proc
    from raw.medical_claim
    where {_match("hcpcs_code", "ipm_procedures")}
       or (claim_type = 'professional' and {_match("rendering_taxonomy_code", "ipm_taxonomies")})
    union all
    select person_id, encounter_date, false from raw.ehr_encounter
    where {_match("provider_taxonomy_code", "ipm_taxonomies")}
),
spans as (
    select person_id, enrollment_start_date s, enrollment_end_date e,
        max(enrollment_end_date) over (partition by person_id order by enrollment_start_date, enrollment_end_date
            rows between unbounded preceding and 1 preceding) as prev_end
    from raw.eligibility
),
islands as (
    select person_id, min(s) s, max(e) e from (
        select *, sum(case when prev_end is null or s - prev_end > 31 then 1 else 0 end)
            over (partition by person_id order by s, e rows unbounded preceding) as k
        from spans) group by person_id, k
),
person as (
    select person_id, arg_max(birth_year, enrollment_start_date) birth_year, min(death_date) death_date
    from raw.eligibility group by person_id
),
episodes as (
    select person_id, d from (
        select person_id, d, lag(d) over (partition by person_id order by d) prev from lbp)
    where prev is null or d - prev > 365
),
eligible as (
    select e.person_id, min(e.d) as index_date
    from episodes e
    join person p using (person_id)
    join islands i on i.person_id = e.person_id and i.s <= e.d - 365 and i.e >= e.d
    where year(e.d) - p.birth_year between 18 and 64
      and not exists (select 1 from red r where r.person_id = e.person_id and r.d between e.d - 365 and e.d)
      and not exists (select 1 from ipm c where c.person_id = e.person_id and c.d between e.d - 365 and e.d - 1)
    group by e.person_id
),
followup as (
    select x.person_id, x.index_date,
        least(i.e - x.index_date, date '{{data_end}}' - x.index_date, 365,
              coalesce(p.death_date - x.index_date, 365)) as end_day
    from eligible x
    join person p using (person_id)
    join islands i on i.person_id = x.person_id and i.s <= x.index_date and i.e >= x.index_date
)
select f.person_id, f.index_date,
    min(c.d - f.index_date) as days_to_referral,
    min(case when c.is_proc then c.d - f.index_date end) as days_to_referral_procedure_only
from followup f
left join ipm c on c.person_id = f.person_id and c.d >= f.index_date and c.d - f.index_date <= f.end_day
group by f.person_id, f.index_date
"""


def _file_views(con, extract: Path) -> dict[str, str]:
    """The columns the hand query reads, straight from the extract's Parquet files, normalised as
    ingest normalises them (codes upper case without dots; dates typed), over every diagnosis
    column the file has.

    The expressions are written by hand, as the hand query's author would, not taken from
    ``validation.normalise_expr``: with ingest's guarded form the reference took 23 s instead of
    11-14 s (measured; the red-flag test uses the code in dozens of predicates), which would
    flatter the build.
    """
    claims = f"read_parquet('{extract / 'medical_claim.parquet'}')"
    header = [row[0] for row in con.execute(f"describe select * from {claims}").fetchall()]
    diagnoses = " union all ".join(
        f"select person_id, claim_start_date, replace(upper(trim({name})), '.', '') as diagnosis_code"
        f" from {claims} where nullif(trim({name}), '') is not null"
        for name in header
        if name.startswith("diagnosis_code_")
    )
    return {
        "medical_claim_diagnosis": diagnoses,
        "medical_claim": f"select person_id, claim_type, claim_start_date, upper(trim(hcpcs_code)) as hcpcs_code,"
        f" upper(trim(rendering_taxonomy_code)) as rendering_taxonomy_code from {claims}",
        "ehr_encounter": f"select person_id, encounter_date, upper(trim(provider_taxonomy_code)) as provider_taxonomy_code"
        f" from read_parquet('{extract / 'ehr_encounter.parquet'}')",
        "eligibility": f"select * from read_parquet('{extract / 'eligibility.parquet'}')",
    }


def _peak_mb() -> float:
    """Peak resident memory of this process. VmHWM, not ru_maxrss: Linux carries ru_maxrss over
    fork + exec, so a child would report its parent's (synth/ingest) peak."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _phase(args) -> None:
    """Run one timed phase in this (fresh) process and print JSON."""
    import duckdb

    db_path = Path(args.cache) / "study.duckdb"
    if args.phase == "build":
        from ipm_outcomes import cohort
        from ipm_outcomes.spec import load_spec

        spec = load_spec()
        started, cpu = time.perf_counter(), time.process_time()
        summary = cohort.build(spec, db_path)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        print(json.dumps({"seconds": seconds, "cpu": cpu, "peak_mb": _peak_mb(), "cohort": summary.cohort}))
    else:
        con = duckdb.connect(str(db_path))
        data_end = con.execute("select data_end_date from staging.extract_period").fetchone()[0]
        sql = hand_query().replace("{data_end}", data_end.isoformat())
        if args.phase == "hand-files":
            # the same query over the extract's files: the raw.* names become views that read them
            con.execute("attach ':memory:' as files")
            con.execute("create schema files.raw")
            for name, select in _file_views(con, Path(args.cache) / "extract").items():
                con.execute(f"create view files.raw.{name} as {select}")
            sql = sql.replace("raw.", "files.raw.")
        started, cpu = time.perf_counter(), time.process_time()
        con.execute("create or replace temp table hand as " + sql)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        n = con.execute("select count(*) from hand").fetchone()[0]
        differ = con.execute(
            """select count(*) from hand h full outer join marts.cohort c using (person_id)
               where h.person_id is null or c.person_id is null or h.index_date <> c.index_date
                  or h.days_to_referral is distinct from c.days_to_referral
                  or h.days_to_referral_procedure_only is distinct from c.days_to_referral_procedure_only"""
        ).fetchone()[0]
        print(
            json.dumps({"seconds": seconds, "cpu": cpu, "peak_mb": _peak_mb(), "cohort": n, "rows_differing": differ})
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=20261128)
    parser.add_argument("--format", default="parquet", choices=("parquet", "csv"))
    parser.add_argument("--cache", default="data/interim/bench_cohort")
    parser.add_argument("--phase", choices=("build", "hand", "hand-files"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        _phase(args)
        return

    cache = Path(args.cache)
    extract = cache / "extract"
    db_path = cache / "study.duckdb"
    if not (extract / "truth.json").exists():
        from ipm_outcomes import synth

        started = time.perf_counter()
        synth.generate(extract, persons=args.persons, seed=args.seed, file_format=args.format, progress=True)
        print(f"synth: {args.persons:,} persons in {time.perf_counter() - started:.1f} s (cached in {extract})")
    if not db_path.exists():
        from ipm_outcomes import ingest

        started = time.perf_counter()
        ingest.load_extract(extract, db_path, progress=True)
        print(f"ingest: {time.perf_counter() - started:.1f} s (cached in {db_path})")

    results = {}
    phases = ("build", "hand", "hand-files") if args.format == "parquet" else ("build", "hand")
    for phase in phases:
        out = subprocess.run(
            [sys.executable, __file__, "--cache", str(cache), "--phase", phase],
            check=True,
            capture_output=True,
            text=True,
        )
        results[phase] = json.loads(out.stdout.strip().splitlines()[-1])
    build = results["build"]
    labels = {"build": "cohort.build", "hand": "hand query on the loaded tables", "hand-files": "hand query on the files"}
    for phase, r in results.items():
        print(
            f"{labels[phase]:<33}: {r['seconds']:6.1f} s wall, {r['cpu']:6.1f} s CPU, "
            f"peak {r['peak_mb']:,.0f} MB, cohort {r['cohort']:,}"
        )
    for phase, r in results.items():
        if phase != "build":
            print(
                f"ratio to the {labels[phase]}: {build['seconds'] / r['seconds']:.2f}x wall, "
                f"{build['cpu'] / r['cpu']:.2f}x CPU (target <= 2x); "
                f"rows where index date or days to referral differ: {r['rows_differing']}"
            )
    print("build target: < 60 s on 2 cores")


if __name__ == "__main__":
    main()
