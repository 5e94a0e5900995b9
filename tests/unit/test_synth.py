"""The synthetic extract: determinism, the input contract, and the planted truth.

The cohort facts in truth_persons.parquet are checked against an independent DuckDB derivation
written here from the rule text (not from the generator's code), on the generated files.
"""

from __future__ import annotations

import hashlib
import json
import re

import duckdb
import numpy as np
import pandas as pd
import pytest

from ipm_outcomes import synth
from ipm_outcomes.contract import (
    CODE_SHAPES,
    DIAGNOSIS_COLUMN_PREFIX,
    PRO_RANGES,
    TABLES,
    TABLES_BY_NAME,
)
from ipm_outcomes.errors import IpmError

N = 2000
SEED = 20261128
TABLE_NAMES = [t.name for t in TABLES]


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _hashes(folder) -> dict[str, str]:
    return {p.name: _sha(p) for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def csv_extract(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synth_csv")
    summary = synth.generate(folder, persons=N, seed=SEED, file_format="csv")
    return folder, summary


@pytest.fixture(scope="module")
def parquet_extract(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synth_parquet")
    summary = synth.generate(folder, persons=N, seed=SEED, file_format="parquet")
    return folder, summary


@pytest.fixture(scope="module")
def null_extract(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synth_null")
    synth.generate(folder, persons=N, seed=SEED, file_format="parquet", effect_rtw_hr=1.0, effect_promis_pf=0.0)
    return folder


def _con(folder, file_format="csv") -> duckdb.DuckDBPyConnection:
    """Every table loaded once: as raw text (csv) or as written (parquet)."""
    con = duckdb.connect()
    for name in TABLE_NAMES:
        path = folder / f"{name}.{file_format}"
        if file_format == "csv":
            con.execute(f"create table {name} as select * from read_csv('{path}', header=true, all_varchar=true)")
        else:
            con.execute(f"create table {name} as select * from read_parquet('{path}')")
    con.execute(f"create view truth_persons as select * from read_parquet('{folder / 'truth_persons.parquet'}')")
    return con


# ------------------------------------------------------------------------------------------------
# Determinism
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("file_format", ["csv", "parquet"])
def test_same_seed_gives_byte_identical_files(tmp_path, file_format, csv_extract, parquet_extract):
    first = csv_extract[0] if file_format == "csv" else parquet_extract[0]
    synth.generate(tmp_path, persons=N, seed=SEED, file_format=file_format)
    assert _hashes(tmp_path) == _hashes(first)
    assert len(_hashes(tmp_path)) == len(TABLE_NAMES) + 2


def test_files_do_not_depend_on_threads_or_chunk_scheduling(tmp_path, monkeypatch):
    monkeypatch.setattr(synth, "CHUNK_PERSONS", 700)  # three chunks of persons
    monkeypatch.setattr(synth, "_MAX_WORKERS", 1)
    synth.generate(tmp_path / "one", persons=N, seed=SEED, file_format="parquet")
    monkeypatch.setattr(synth, "_MAX_WORKERS", 4)
    synth.generate(tmp_path / "four", persons=N, seed=SEED, file_format="parquet")
    assert _hashes(tmp_path / "one") == _hashes(tmp_path / "four")
    ids = duckdb.sql(f"select claim_id from '{tmp_path / 'four' / 'medical_claim.parquet'}'").df()["claim_id"]
    # CL: the generated claims; SO: the planted secondary-outcome claims and CP: the cost process's claims
    # (issue 16), numbered per chunk alike
    assert ids.str.match(r"^(CL|SO|CP)0[012]").all()
    assert ids.str.startswith("CL02").any() and ids.str.startswith("SO02").any() and ids.str.startswith("CP02").any()


def test_other_seed_gives_other_data(tmp_path, csv_extract):
    synth.generate(tmp_path, persons=N, seed=SEED + 1, file_format="csv")
    assert _sha(tmp_path / "medical_claim.csv") != _sha(csv_extract[0] / "medical_claim.csv")


def test_csv_and_parquet_hold_the_same_rows(csv_extract, parquet_extract):
    con = duckdb.connect()
    for table in TABLES:
        types = {c.name: c.type for c in table.columns}
        if table.has_diagnosis_columns:
            types |= {f"{DIAGNOSIS_COLUMN_PREFIX}{k}": "VARCHAR" for k in range(1, 5)}
        csv_rel = f"read_csv('{csv_extract[0] / (table.name + '.csv')}', header=true, columns={types!r})"
        pq_rel = f"read_parquet('{parquet_extract[0] / (table.name + '.parquet')}')"
        n_csv = con.execute(f"select count(*) from {csv_rel}").fetchone()[0]
        assert n_csv == con.execute(f"select count(*) from {pq_rel}").fetchone()[0] > 0, table.name
        for a, b in ((csv_rel, pq_rel), (pq_rel, csv_rel)):
            diff = con.execute(f"select count(*) from (select * from {a} except all select * from {b})").fetchone()[0]
            assert diff == 0, table.name


# ------------------------------------------------------------------------------------------------
# The input contract
# ------------------------------------------------------------------------------------------------


def test_every_table_has_exactly_the_contract_columns(csv_extract, parquet_extract):
    for folder, fmt in ((csv_extract[0], "csv"), (parquet_extract[0], "parquet")):
        con = _con(folder, fmt)
        for table in TABLES:
            cols = [r[0] for r in con.execute(f"describe {table.name}").fetchall()]
            expected = list(table.column_names)
            if table.has_diagnosis_columns:
                expected += [f"{DIAGNOSIS_COLUMN_PREFIX}{k}" for k in range(1, 5)]
            assert cols == expected, (fmt, table.name)


def test_parquet_types_match_the_contract(parquet_extract):
    con = _con(parquet_extract[0], "parquet")
    for table in TABLES:
        types = {r[0]: r[1] for r in con.execute(f"describe {table.name}").fetchall()}
        for col in table.columns:
            assert types[col.name] == col.type, (table.name, col.name)


def test_csv_header_is_plain_and_nulls_are_empty(csv_extract):
    folder = csv_extract[0]
    with open(folder / "eligibility.csv") as fh:
        header = fh.readline().strip()
        rows = [fh.readline().rstrip("\n") for _ in range(200)]
    assert header == ",".join(TABLES_BY_NAME["eligibility"].column_names)
    assert any(",," in r for r in rows)  # death_date is null for almost everyone
    assert not any('"' in r for r in rows)


def test_enumerations_code_shapes_dates_and_nulls(csv_extract):
    con = _con(csv_extract[0])
    for table in TABLES:
        for col in table.columns:
            values = con.execute(f"select distinct {col.name} from {table.name}").df()[col.name]
            if not col.nullable:
                assert values.notna().all(), (table.name, col.name)
            values = values.dropna()
            if col.allowed:
                assert set(values) <= set(col.allowed), (table.name, col.name, set(values) - set(col.allowed))
            if col.code_system:
                pattern = re.compile(CODE_SHAPES[col.code_system])
                for v in values:
                    norm = v.upper().replace(".", "").replace(" ", "")
                    if col.code_system == "ndc" and re.fullmatch(r"\d{4}-\d{4}-\d{2}", v):
                        norm = "0" + v.replace("-", "")  # 4-4-2 -> 5-4-2
                    assert pattern.match(norm), (table.name, col.name, v)
            if col.type == "DATE":
                assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", v) for v in values), (table.name, col.name)
                assert values.min() >= "2019-01-01" and values.max() <= "2024-12-31", (table.name, col.name)
    dx = pd.concat(
        [con.execute(f"select {DIAGNOSIS_COLUMN_PREFIX}{k} as c from medical_claim").df()["c"] for k in range(1, 5)]
    ).dropna()
    assert dx.map(lambda c: bool(re.match(CODE_SHAPES["icd10cm"], c.replace(".", "")))).all()
    assert dx.str.contains(".", regex=False).any() and (~dx.str.contains(".", regex=False)).any()  # both forms
    assert {"M54.50", "M5450"} & set(dx) and {"M54.5", "M545"} & set(dx)
    # the extract's last date is the documented end of data
    last = con.execute("select max(enrollment_end_date) from eligibility").fetchone()[0]
    assert last == "2024-12-31"


def test_keys_are_unique_and_date_pairs_ordered(csv_extract):
    con = _con(csv_extract[0])
    for table in TABLES:
        if table.key:
            key = ", ".join(table.key)
            dup = con.execute(f"select count(*) from (select {key} from {table.name} group by all having count(*) > 1)").fetchone()[0]
            assert dup == 0, table.name
        for a, b in table.ordered_dates:
            bad = con.execute(f"select count(*) from {table.name} where {b} < {a}").fetchone()[0]
            assert bad == 0, table.name
    overlap = con.execute(
        """select count(*) from (
             select person_id, enrollment_start_date s,
                    lag(enrollment_end_date) over (partition by person_id order by enrollment_start_date) prev_end
             from eligibility) where s <= prev_end"""
    ).fetchone()[0]
    assert overlap == 0


def test_pro_scores_within_contract_ranges(csv_extract):
    con = _con(csv_extract[0])
    got = con.execute(
        "select instrument, min(cast(score as double)), max(cast(score as double)), count(*) from ehr_pro group by 1"
    ).fetchall()
    seen = {r[0] for r in got}
    assert set(PRO_RANGES) <= seen
    for instrument, lo, hi, n in got:
        if instrument in PRO_RANGES:
            rlo, rhi = PRO_RANGES[instrument]
            assert rlo <= lo and hi <= rhi, instrument
            assert n > 100, instrument


def test_medical_claims_volume_and_realistic_codes(csv_extract):
    folder, summary = csv_extract
    per_person = summary.rows["medical_claim"] / N
    assert 15 <= per_person <= 36  # about 4 of them from the cost process of the eligible (issue 16)
    con = _con(folder)
    hcpcs = set(con.execute("select distinct hcpcs_code from medical_claim").df()["hcpcs_code"].dropna())
    assert {"99213", "99214", "97110", "72148", "62323", "64483", "20552", "20610"} <= hcpcs
    ndc = con.execute(
        "select r.ingredient, r.mme_conversion_factor, count(*) n from pharmacy_claim p join ndc_reference r "
        "on r.ndc_code = case when length(p.ndc_code) = 12 then '0' || replace(p.ndc_code, '-', '') else p.ndc_code end "
        "group by all"
    ).df()
    unmatched = con.execute("select count(*) from pharmacy_claim").fetchone()[0] - ndc["n"].sum()
    assert unmatched == 0
    mme = dict(zip(ndc["ingredient"], ndc["mme_conversion_factor"]))
    assert float(mme["oxycodone hydrochloride"]) == 1.5 and float(mme["tramadol hydrochloride"]) == 0.2
    assert con.execute("select count(*) from pharmacy_claim where ndc_code like '%-%'").fetchone()[0] > 0


# ------------------------------------------------------------------------------------------------
# truth.json
# ------------------------------------------------------------------------------------------------


def test_truth_json_contents(csv_extract):
    truth = json.loads((csv_extract[0] / "truth.json").read_text())
    for key in (
        "strategy_definitions", "effect_settings", "seed", "counts", "rtw", "promis_pf_180",
        "naive_bias_direction", "naive_bias_explanation", "simulation",
    ):  # fmt: skip
        assert key in truth, key
    assert truth["seed"] == SEED
    assert truth["effect_settings"]["effect_rtw_hr"] == 1.5 and truth["effect_settings"]["effect_promis_pf"] == 3.0
    assert {"early", "delayed"} <= set(truth["strategy_definitions"])
    rtw = truth["rtw"]
    for t in ("90", "180", "365"):
        e, d = rtw["cumulative_incidence"]["early"][t], rtw["cumulative_incidence"]["delayed"][t]
        assert rtw["risk_difference"][t] == pytest.approx(e - d, abs=2e-6)
        assert rtw["risk_ratio"][t] == pytest.approx(e / d, abs=2e-6)
        assert rtw["risk_difference"][t] > 0  # early referral helps RTW
        assert rtw["monte_carlo_se"][f"risk_difference_{t}"] < 0.005
        assert 0 < rtw["competing_cumulative_incidence"]["early"][t] < rtw["competing_cumulative_incidence"]["delayed"][t]
    ci = rtw["cumulative_incidence"]["delayed"]
    assert 0.3 < ci["90"] < ci["180"] < ci["365"] < 0.97
    days = rtw["restricted_mean_days_not_returned_365"]
    assert days["difference"] == pytest.approx(days["early"] - days["delayed"], abs=2e-6) and days["difference"] < 0
    pf = truth["promis_pf_180"]
    assert 0 < pf["difference"] <= 3.0 and pf["difference"] == pytest.approx(pf["early"] - pf["delayed"], abs=2e-6)
    assert truth["naive_bias_direction"] in ("toward_harm", "toward_benefit")
    assert truth["naive_bias_direction"] == "toward_harm"
    naive = truth["naive_comparison"]
    assert naive["rtw_risk_difference_180_naive"] < naive["rtw_risk_difference_180_true"]
    landmark = truth["landmark"]
    assert landmark["landmark_day"] == 42 and 0 < landmark["referred_by_landmark"] < landmark["population_size"]
    for est in ("ate", "att"):
        part = landmark[est]
        for t in ("90", "180", "365"):
            e, d = part["cumulative_incidence"]["early"][t], part["cumulative_incidence"]["delayed"][t]
            assert part["risk_difference"][t] == pytest.approx(e - d, abs=2e-6)
            assert part["risk_difference"][t] > 0  # referral by day 42 helps those still off work then
            # the landmark population is still off work at day 42: fewer return by each horizon
            assert d < rtw["cumulative_incidence"]["delayed"][t]


def test_null_scenario_contrasts_are_exactly_zero_and_confounding_remains(null_extract):
    truth = json.loads((null_extract / "truth.json").read_text())
    rtw = truth["rtw"]
    for t in ("90", "180", "365"):
        assert rtw["risk_difference"][t] == 0.0
        assert rtw["risk_ratio"][t] == 1.0
        assert rtw["competing_risk_difference"][t] == 0.0
    assert rtw["restricted_mean_days_not_returned_365"]["difference"] == 0.0
    assert truth["promis_pf_180"]["difference"] == 0.0
    assert truth["promis_pf_180"]["rtw_population"]["difference"] == 0.0
    for est in ("ate", "att"):
        assert set(truth["landmark"][est]["risk_difference"].values()) == {0.0}
    naive = truth["naive_comparison"]
    assert naive["rtw_risk_difference_180_naive"] < -0.05  # confounding by indication stays strong
    assert naive["promis_pf_180_difference_naive"] < -0.5
    assert truth["naive_bias_direction"] == "toward_harm"


def test_null_scenario_plants_the_same_cohort(csv_extract, null_extract):
    a = pd.read_parquet(csv_extract[0] / "truth_persons.parquet")
    b = pd.read_parquet(null_extract / "truth_persons.parquet")
    cols = ["person_id", "index_date", "eligible", "exclusion_reason", "in_rtw_population", "age_at_index"]
    pd.testing.assert_frame_equal(a[cols], b[cols])


# ------------------------------------------------------------------------------------------------
# truth_persons: internal consistency and an independent derivation from the files
# ------------------------------------------------------------------------------------------------


def test_truth_persons_is_consistent(csv_extract):
    folder, summary = csv_extract
    tp = pd.read_parquet(folder / "truth_persons.parquet")
    truth = json.loads((folder / "truth.json").read_text())
    assert len(tp) == N and tp["person_id"].is_unique
    elig = tp[tp["eligible"]]
    assert tp.loc[tp["eligible"], "exclusion_reason"].isna().all()
    assert tp.loc[~tp["eligible"], "exclusion_reason"].notna().all()
    assert set(tp["exclusion_reason"].dropna()) <= set(synth.EXCLUSION_REASONS)
    assert set(tp["exclusion_reason"].dropna()) >= {"no lbp claim", "insufficient enrollment", "age", "red flag", "prior IPM"}
    early = elig["referral_day"].le(42).fillna(False)
    assert (elig["exposure"] == np.where(early, "early", "delayed")).all()
    assert elig.loc[elig["referral_day"].isna(), "delay_category"].eq("never").all()
    assert (elig["referral_day"].dropna() < elig.loc[elig["referral_day"].notna(), "followup_end_day"]).all()
    assert tp.loc[~tp["eligible"], ["exposure", "referral_day"]].isna().all().all()
    assert not tp.loc[~tp["eligible"], "in_rtw_population"].any()
    rtw = tp[tp["in_rtw_population"]]
    assert rtw["rtw_event"].isin([0, 1, 2]).all() and (rtw["rtw_time_days"] <= rtw["rtw_censor_day"]).all()
    counts = truth["counts"]
    assert counts["eligible"] == len(elig) == summary.counts["eligible"]
    assert counts["early"] == int(early.sum()) and counts["delayed"] == len(elig) - int(early.sum())
    assert counts["rtw_population"] == len(rtw)
    reasons = tp["exclusion_reason"].value_counts().to_dict()
    assert {k: v for k, v in counts["excluded_by_reason"].items() if v} == reasons
    assert counts["early"] > 100 and counts["delayed"] > 100 and counts["rtw_population"] > 200


LBP = ["M5450", "M5451", "M5459", "M5430", "M5431", "M5432", "M5440", "M5441", "M5442", "M5416", "M5417", "M5116", "M5117", "M5126", "M5127", "M51360", "M51369", "M51370", "M51379", "M5186", "M5187", "M48061", "M48062", "M4807", "M47816", "M47817", "M4726", "M4727", "M4316", "M4317", "M533", "M5386", "M5387", "S335XXA", "S39012A"]
IPM_CODES = [str(c) for r in ((62320, 62327), (64479, 64484), (64490, 64495), (64633, 64636)) for c in range(r[0], r[1] + 1)]
IPM_CODES += ["27096", "G0260", "64451", "64625", "64628", "64629", "63650", "63655", "63685", "20552", "20553"]
IPM_TAX = ["208VP0014X", "208VP0000X", "207LP2900X", "2081P2900X", "2084P2900X"]
RED_PREFIXES = ["S320", "S321", "S220", "M485", "M8008", "M462", "M463", "M464", "M465", "G061", "A1801", "G834",
                "Z331", "Z34", "Z3A", "O"]  # fmt: skip


def _sql_list(values) -> str:
    return ", ".join(f"'{v}'" for v in values)


REFERENCE_SQL = f"""
create temp table dx as
select person_id, claim_type, cast(claim_start_date as date) d, upper(replace(code, '.', '')) code
from (unpivot medical_claim on diagnosis_code_1, diagnosis_code_2, diagnosis_code_3, diagnosis_code_4
      into name pos value code);

create temp table lbp as
select person_id, min(d) index_date from dx
where code in ({_sql_list(LBP)}) or (code = 'M545' and d < date '2021-10-01')
group by person_id;

create temp table spans as
select person_id, cast(enrollment_start_date as date) s, cast(enrollment_end_date as date) e,
       cast(birth_year as integer) birth_year, cast(death_date as date) death_date
from eligibility;

create temp table segs as
with ordered as (
    select *, max(e) over (partition by person_id order by s rows between unbounded preceding and 1 preceding) prev_end
    from spans),
marked as (
    select *, sum(case when prev_end is null or s - prev_end - 1 > 30 then 1 else 0 end)
              over (partition by person_id order by s) seg
    from ordered)
select person_id, seg, min(s) seg_start, max(e) seg_end from marked group by all;

create temp table contacts as
select person_id, cast(claim_start_date as date) d, hcpcs_code in ({_sql_list(IPM_CODES)}) is_procedure
from medical_claim
where hcpcs_code in ({_sql_list(IPM_CODES)})
   or (claim_type = 'professional' and rendering_taxonomy_code in ({_sql_list(IPM_TAX)}))
union all
select person_id, cast(encounter_date as date), false from ehr_encounter
where provider_taxonomy_code in ({_sql_list(IPM_TAX)});

create temp table person as
select p.person_id, l.index_date,
       exists (select 1 from dx where dx.person_id = p.person_id and dx.d between l.index_date - 365 and l.index_date - 1
               and (dx.code in ({_sql_list(LBP)}) or (dx.code = 'M545' and dx.d < date '2021-10-01'))) prior_lbp,
       exists (select 1 from segs g where g.person_id = p.person_id and g.seg_start <= l.index_date - 365
               and g.seg_end >= l.index_date) enrolled,
       year(l.index_date) - p.birth_year age,
       exists (select 1 from dx where dx.person_id = p.person_id and dx.d between l.index_date - 365 and l.index_date
               and ((dx.code like 'C%' and try_cast(substr(dx.code, 2, 2) as integer) <= 96)
                    or {" or ".join(f"dx.code like '{x}%'" for x in RED_PREFIXES)})) red_flag,
       exists (select 1 from contacts c where c.person_id = p.person_id
               and c.d between l.index_date - 365 and l.index_date - 1) prior_ipm,
       (select max(g.seg_end) from segs g where g.person_id = p.person_id and l.index_date between g.seg_start and g.seg_end) seg_end,
       p.death_date
from (select distinct person_id, birth_year, death_date from spans) p
left join lbp l using (person_id);

create temp table cohort as
select *,
       case when index_date is null then 'no lbp claim'
            when prior_lbp then 'not a new episode'
            when not enrolled then 'insufficient enrollment'
            when age not between 18 and 64 then 'age'
            when red_flag then 'red flag'
            when prior_ipm then 'prior IPM' end exclusion_reason,
       least(seg_end - index_date, date '2024-12-31' - index_date, 365,
             coalesce(death_date - index_date, 100000)) followup_end_day
from person;

create temp table referral as
select c.person_id, min(c.d - k.index_date) referral_day,
       min(case when c.is_procedure then c.d - k.index_date end) referral_day_procedure_only
from contacts c join cohort k using (person_id)
where k.exclusion_reason is null and c.d >= k.index_date and c.d - k.index_date <= k.followup_end_day
group by all;

create temp table ws as
select person_id, cast(status_date as date) d, work_status from ehr_work_status;

create temp table rtw as
select k.person_id, k.index_date,
       (select min(d - k.index_date) from ws where ws.person_id = k.person_id and d > k.index_date
          and work_status in ('working', 'modified_duty')) rtw_day,
       least((select min(d - k.index_date) from ws where ws.person_id = k.person_id and d > k.index_date
                and work_status in ('disability_long_term', 'retired')),
             k.death_date - k.index_date) competing_day,
       least(k.seg_end - k.index_date, date '2024-12-31' - k.index_date, 365) censor_day
from cohort k
where k.exclusion_reason is null
  and exists (select 1 from ws where ws.person_id = k.person_id and ws.work_status in ('off_work', 'disability_short_term')
              and ws.d between k.index_date - 7 and k.index_date + 14);
"""


@pytest.fixture(scope="module")
def reference(csv_extract):
    con = _con(csv_extract[0])
    con.execute(REFERENCE_SQL)
    return con


def test_index_dates_and_exclusions_match_an_independent_derivation(reference):
    got = reference.execute(
        """select k.person_id, k.index_date ref_index, k.exclusion_reason ref_reason, k.age ref_age,
                  t.index_date, t.exclusion_reason, t.age_at_index
           from cohort k join truth_persons t using (person_id)"""
    ).df()
    assert len(got) == N
    assert got["ref_index"].astype("string").fillna("-").equals(got["index_date"].astype("string").fillna("-"))
    mismatch = got[(got["ref_reason"].fillna("") != got["exclusion_reason"].fillna(""))]
    assert mismatch.empty, mismatch.head()
    has = got["ref_age"].notna()
    assert (got.loc[has, "ref_age"] == got.loc[has, "age_at_index"]).all()


def test_new_episode_washout_and_first_lbp_date_with_pandas(csv_extract):
    """Pandas cross-check of two rules: the index is the first lbp claim, with none in the 365 days before;
    legacy M54.5 counts only before 2021-10-01."""
    folder = csv_extract[0]
    mc = pd.read_csv(folder / "medical_claim.csv", dtype=str)
    long = mc.melt(id_vars=["person_id", "claim_start_date"], value_vars=[f"diagnosis_code_{k}" for k in range(1, 5)])
    long = long.dropna(subset=["value"])
    long["code"] = long["value"].str.replace(".", "", regex=False).str.upper()
    long["d"] = pd.to_datetime(long["claim_start_date"])
    is_lbp = long["code"].isin(LBP) | ((long["code"] == "M545") & (long["d"] < "2021-10-01"))
    first = long[is_lbp].groupby("person_id")["d"].min()
    tp = pd.read_parquet(folder / "truth_persons.parquet").set_index("person_id")
    planted = pd.to_datetime(tp["index_date"]).dropna()
    assert first.sort_index().equals(planted.sort_index().rename("d"))
    # legacy M54.5 written after 2021-10-01 is present but never an index
    late_legacy = long[(long["code"] == "M545") & (long["d"] >= "2021-10-01")]
    assert len(late_legacy) > 0
    assert tp.loc[tp["legacy_m545_trap"] & tp["eligible"]].shape[0] > 0
    # eligible persons: no lbp claim in the 365 days before index, age 18-64 at index
    elig = tp[tp["eligible"]]
    lbp_rows = long[is_lbp].join(pd.to_datetime(elig["index_date"]).rename("index"), on="person_id", how="inner")
    before = lbp_rows[(lbp_rows["d"] < lbp_rows["index"]) & (lbp_rows["d"] >= lbp_rows["index"] - pd.Timedelta(days=365))]
    assert before.empty
    el = pd.read_csv(folder / "eligibility.csv", dtype=str).drop_duplicates("person_id").set_index("person_id")
    age = pd.to_datetime(elig["index_date"]).dt.year - el.loc[elig.index, "birth_year"].astype(int)
    assert age.between(18, 64).all()
    assert (age == elig["age_at_index"]).all()


def test_referral_days_match_an_independent_derivation(reference):
    got = reference.execute(
        """select t.person_id, t.referral_day, r.referral_day ref_day,
                  t.referral_day_procedure_only, r.referral_day_procedure_only ref_proc,
                  t.followup_end_day, k.followup_end_day ref_end
           from truth_persons t join cohort k using (person_id) left join referral r using (person_id)
           where t.eligible"""
    ).df()
    assert (got["followup_end_day"] == got["ref_end"]).all()
    same = (got["referral_day"] == got["ref_day"]) | (got["referral_day"].isna() & got["ref_day"].isna())
    assert same.all(), got[~same].head()
    same = (got["referral_day_procedure_only"] == got["ref_proc"]) | (
        got["referral_day_procedure_only"].isna() & got["ref_proc"].isna()
    )
    assert same.all(), got[~same].head()
    assert got["referral_day"].notna().sum() > 200 and (got["referral_day"] == 0).any()


def test_rtw_population_and_outcomes_match_an_independent_derivation(reference):
    got = reference.execute(
        """select t.person_id, t.in_rtw_population, r.person_id is not null ref_in,
                  t.rtw_time_days, t.rtw_event, t.rtw_censor_day, r.rtw_day, r.competing_day, r.censor_day
           from truth_persons t left join rtw r using (person_id) where t.eligible"""
    ).df()
    assert (got["in_rtw_population"] == got["ref_in"]).all()
    r = got[got["ref_in"]].copy()
    big = 10**6
    rtw_day = r["rtw_day"].fillna(big)
    comp = r["competing_day"].fillna(big)
    first = np.minimum(rtw_day, comp)
    event = np.where(first <= r["censor_day"], np.where(rtw_day <= comp, 1, 2), 0)
    time = np.where(event > 0, first, r["censor_day"])
    assert (r["rtw_censor_day"] == r["censor_day"]).all()
    assert (r["rtw_event"].to_numpy() == event).all()
    assert (r["rtw_time_days"].to_numpy() == time).all()
    assert set(event) == {0, 1, 2}


def test_observed_promis_pf_matches_the_assessment_windows(reference):
    got = reference.execute(
        """with pf as (select person_id, cast(assessment_date as date) d, cast(score as double) score
                       from ehr_pro where instrument = 'promis_pf'),
           w as (select t.person_id, t.index_date, pf.d - t.index_date dd, pf.score
                 from truth_persons t join pf using (person_id) where t.eligible)
           select t.person_id, t.promis_pf_baseline_observed, t.promis_pf_180_observed,
                  (select arg_min(score, abs(dd)) from w where w.person_id = t.person_id and dd between -30 and 14) base,
                  (select arg_min(score, abs(dd - 180)) from w where w.person_id = t.person_id and dd between 150 and 210) f180,
                  (select count(*) from w where w.person_id = t.person_id and dd between 150 and 210) n180
           from truth_persons t where t.eligible"""
    ).df()
    assert (got["n180"] <= 1).all()
    for col, ref in (("promis_pf_baseline_observed", "base"), ("promis_pf_180_observed", "f180")):
        same = np.isclose(got[col], got[ref]) | (got[col].isna() & got[ref].isna())
        assert same.all(), col
    missing_180 = got["f180"].isna().mean()
    assert 0.2 < missing_180 < 0.8  # follow-up assessments are often missing


def test_confounding_is_visible_in_the_planted_data(csv_extract):
    tp = pd.read_parquet(csv_extract[0] / "truth_persons.parquet")
    elig = tp[tp["eligible"]]
    early = elig["exposure"] == "early"
    # sicker persons are referred early
    assert elig.loc[early, "severity"].mean() > elig.loc[~early, "severity"].mean() + 0.2
    assert elig.loc[early, "radiculopathy"].mean() > elig.loc[~early, "radiculopathy"].mean()


# ------------------------------------------------------------------------------------------------
# Arguments, summary, edge cases
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"persons": 0}, "persons=0"),
        ({"persons": -5}, "persons=-5"),
        ({"persons": 2.5}, "persons=2.5"),
        ({"persons": 10, "file_format": "xlsx"}, "file format 'xlsx'"),
        ({"persons": 10, "seed": -1}, "seed=-1"),
        ({"persons": 10, "effect_rtw_hr": 0.0}, "effect_rtw_hr=0.0"),
        ({"persons": 10, "effect_promis_pf": float("nan")}, "effect_promis_pf=nan"),
        ({"persons": 10, "mechanisms": "extended"}, "mechanisms='extended'"),
    ],
)
def test_bad_arguments_raise_one_line_ipm_errors(tmp_path, kwargs, message):
    kwargs = {"seed": 1, **kwargs}
    with pytest.raises(IpmError) as err:
        synth.generate(tmp_path, **kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not any(tmp_path.iterdir())


def test_tiny_extract_with_progress_and_summary(tmp_path, capsys):
    summary = synth.generate(tmp_path, persons=3, seed=5, file_format="parquet", progress=True)
    assert set(summary.rows) == set(TABLE_NAMES)
    assert summary.rows["eligibility"] >= 3 and summary.rows["ndc_reference"] == 17
    text = summary.describe()
    assert "3 persons" in text and "medical_claim" in text and "eligible" in text
    assert len(text.splitlines()) >= 5
    # strict JSON even where a population is empty (null, never NaN)
    json.loads((tmp_path / "truth.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in truth.json"))
    assert len(pd.read_parquet(tmp_path / "truth_persons.parquet")) == 3


def test_switching_format_replaces_previous_tables(tmp_path):
    synth.generate(tmp_path, persons=50, seed=2, file_format="csv")
    synth.generate(tmp_path, persons=50, seed=2, file_format="parquet")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted([f"{t}.parquet" for t in TABLE_NAMES] + ["truth.json", "truth_persons.parquet"])


def test_a_folder_of_parquet_parts_in_the_way_is_refused(tmp_path):
    (tmp_path / "medical_claim").mkdir()
    with pytest.raises(IpmError, match="medical_claim: a folder of parquet parts is in the way"):
        synth.generate(tmp_path, persons=10, seed=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["medical_claim"]


# ------------------------------------------------------------------------------------------------
# Optional mechanisms of real referral processes (issue 19)
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def extended_world():
    return synth._simulate_world(60_000, 7, 1.5, 3.0, synth.EXTENDED)


def test_default_mechanisms_leave_the_classic_world_unchanged():
    a = synth._simulate_world(3000, 11, 1.5, 3.0)
    b = synth._simulate_world(3000, 11, 1.5, 3.0, synth.Mechanisms())
    for name, value in vars(a).items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(value, getattr(b, name), err_msg=name)
    # the classic world has no referral after return to work
    rtw = a.in_rtw & (a.obs_kind == 1)
    assert not np.any(rtw & (a.referral_day < synth.NEVER) & (a.referral_day >= a.obs_time))


def test_extended_world_has_the_issue_19_mechanisms(extended_world):
    w = extended_world
    pop = w.in_rtw
    first = pop & (w.referral_day < synth.NEVER)
    # referral after RTW, recorded as the first contact (about 0.3 times the rate: a minority)
    after = first & (w.obs_kind == 1) & (w.referral_day >= w.obs_time)
    assert 0.05 < after.sum() / pop.sum() < 0.3
    # no referral before RTW is recorded after it, and a post-RTW one never precedes the RTW day
    assert np.all(w.r_post[w.r_post < synth.NEVER] >= w.d_rtw[w.r_post < synth.NEVER])
    # a quarter of first contacts are EHR-only (kind 2)
    assert np.mean(w.ref_kind[first] == 2) == pytest.approx(0.25, abs=0.04)
    # competing events in about 10%, disenrolment before day 365 in about 25%
    assert np.mean(w.obs_kind[pop] >= 2) == pytest.approx(0.10, abs=0.03)
    disenrolled = (w.censor_day < synth.FOLLOWUP_DAYS) & (w.censor_day < synth.D_END - w.I)
    assert np.mean(disenrolled[pop]) == pytest.approx(0.25, abs=0.05)
    # the daily referral probability is logistic-linear and halves from day 120: everyone referable
    assert w.referable.all()
    p1, p2 = -np.expm1(-w.ref_rate), -np.expm1(-w.ref_rate2)
    np.testing.assert_allclose(p2, p1 / 2)
    logit = np.log(p1 / (1 - p1))
    wc = (w.payer == 3).astype(float)
    depr = w.cond[:, synth._COND["depression"]].astype(float)
    # ... and in the baseline visit's recorded PROMIS-PF and NRS pain (0 without that visit)
    pf = np.nan_to_num(w.baseline_pf_recorded - 36.0)
    pain = np.nan_to_num(w.baseline_pain_recorded - 6.6)
    design = np.column_stack([np.ones(w.n), w.radic, w.opioid, depr, wc, w.age - 45.0, pf, pain])
    coef, *_ = np.linalg.lstsq(design, logit, rcond=None)
    np.testing.assert_allclose(coef, [-5.3, 0.9, 0.6, 0.4, 0.5, -0.01, -0.06, 0.25], atol=1e-9)
    lbp_linked = w.has_lbp & w.ehr
    assert np.mean(np.isfinite(w.baseline_pf_recorded[lbp_linked])) == pytest.approx(0.85, abs=0.02)
    assert not np.isfinite(w.baseline_pf_recorded[~lbp_linked]).any()


def test_the_extract_records_the_baseline_scores_the_referral_saw_and_the_intake_scores(tmp_path):
    """The baseline visit (day -25..0) carries exactly the PROMIS-PF and NRS pain the referral model of
    the world used; most first IPM contacts record the instruments again on the contact day."""
    synth.generate(tmp_path, persons=N, seed=SEED, file_format="parquet", mechanisms=synth.EXTENDED)
    w = synth._simulate_world(N, SEED, 1.5, 3.0, synth.EXTENDED)
    pro = pd.read_parquet(tmp_path / "ehr_pro.parquet")
    pro["person"] = pro.person_id.str.slice(1).astype(int) - 1
    pro["day"] = (pd.to_datetime(pro.assessment_date) - pd.Timestamp("1970-01-01")).dt.days - w.I[pro.person]
    visited = np.nonzero(w.pro_days[0] < synth.NEVER)[0]
    assert len(visited) > 100 and (w.pro_days[0][visited] <= 0).all() and (w.pro_days[0][visited] >= -25).all()
    base = pro[pro.day.values == w.pro_days[0][pro.person]].set_index(["person", "instrument"]).score
    np.testing.assert_array_equal(base.xs("promis_pf", level=1).reindex(visited), w.baseline_pf_recorded[visited])
    np.testing.assert_array_equal(base.xs("nrs_pain", level=1).reindex(visited), w.baseline_pain_recorded[visited])
    contacted = np.nonzero((w.contact_day < synth.NEVER) & w.has_lbp & w.ehr & (w.I + w.contact_day <= synth.D_END))[0]
    intake = w.pro_days[7][contacted] < synth.NEVER
    assert np.mean(intake) == pytest.approx(0.8, abs=0.05)
    on_contact = pro[pro.day.values == w.contact_day[pro.person]]
    assert set(contacted[intake]) <= set(on_contact.person)


def test_extended_truth_uses_the_piecewise_referral_distribution():
    # early: days 0..42 only; delayed: after day 42, with half the daily probability from day 120
    p = 0.01
    lam, lam2 = np.full(20_000, -np.log1p(-p)), np.full(20_000, -np.log1p(-p / 2))
    days = synth._strategy_days(np.random.default_rng(3), np.ones(20_000), lam, 10, lam2, 120.0)
    assert days["early"].max() == synth.GRACE_DAYS and days["early"].min() == 0
    delayed = days["delayed"]
    assert delayed.min() == synth.GRACE_DAYS + 1

    def hazard(r, lo, hi):
        """Daily referral probability on days lo..hi-1 among persons not referred before."""
        at_risk = (np.clip(np.minimum(r, hi - 1) - lo + 1, 0, None)).sum()
        return ((r >= lo) & (r < hi)).sum() / at_risk

    assert hazard(delayed, 60, 120) == pytest.approx(p, rel=0.03)
    assert hazard(delayed, 120, 240) == pytest.approx(p / 2, rel=0.04)
    # early: the natural distribution restricted to the window, P(d) = p (1-p)^d / (1 - (1-p)^43)
    expected = p * (1 - p) ** np.arange(11) / (1 - (1 - p) ** 43)
    assert np.mean(days["early"] <= 10) == pytest.approx(expected.sum(), rel=0.02)


def test_usual_care_after_the_grace_period_refers_after_rtw_only_persons_it_would_refer():
    """Under "delayed", usual care after day 42 refers nobody back at work, except at the slower rate
    after RTW when that mechanism is on — and then, as in the observed world, only a person who would be
    referred at all. In the natural mixture model (no logistic referral) a person whose delayed referral
    day is "never" is not referable, and stays never referred after the return to work too."""
    w = synth._simulate_world(3000, 11, 1.5, 3.0, synth.Mechanisms(post_rtw_referral_rate=0.3))
    coh = np.nonzero(w.eligible & w.off_work & w.ehr)[0]
    rng = np.random.default_rng(5)
    delayed = synth._strategy_days(rng, w.ref_pi[coh], w.ref_rate[coh], 20, w.ref_rate2[coh], w.ref_halving)["delayed"]
    never = delayed == synth.NEVER
    assert never.mean() > 0.3 and (~never).mean() > 0.1
    usual = synth._delayed_usual_care(w, rng, coh, delayed)
    assert (usual[never] == synth.NEVER).all()
    # the referable ones: unchanged before their RTW, after it at the slower rate (never before it)
    moved = ~never & (usual != delayed)
    assert moved.any() and (usual[moved] > synth.GRACE_DAYS).all()
    assert (usual[~never & ~moved] == delayed[~never & ~moved]).all()


def test_extended_extract_records_its_mechanisms_and_post_rtw_referrals(tmp_path):
    synth.generate(tmp_path, persons=N, seed=SEED, file_format="parquet", mechanisms=synth.EXTENDED)
    truth = json.loads((tmp_path / "truth.json").read_text())
    assert truth["mechanisms"]["post_rtw_referral_rate"] == 0.3
    assert truth["mechanisms"]["referral_halving_day"] == 120
    persons = pd.read_parquet(tmp_path / "truth_persons.parquet")
    rtw = persons[persons.in_rtw_population & (persons.rtw_event == 1)]
    # first IPM contacts after the return to work are in the extract (and in the planted referral day)
    assert (rtw.referral_day >= rtw.rtw_time_days).sum() > 10


def test_landmark_truth_equals_a_forward_simulation_of_the_natural_world():
    """The landmark truth draws each person's future from day 42 on, without the path before it
    (memorylessness of the cumulative-hazard thresholds). Checked against the natural world simulated
    forward from day 0, one person at a time: among the draws still at risk after day 42, those
    referred by day 42 return to work by each horizon with the 'early' probability, the others with
    the 'delayed' one (fails if the truth restarted the RTW clock at day 42, let the effect start
    late, or drew the later referral from the unconditional distribution)."""
    w = synth._simulate_world(4000, 5, 1.5, 3.0, synth.EXTENDED)
    candidates = np.nonzero(w.in_rtw & (w.ev_day > synth.GRACE_DAYS))[0]
    # persons from the least to the most likely to be referred (and the slowest to return)
    pop = candidates[np.argsort(w.ref_rate[candidates] * w.rtw_theta[candidates])[[0, len(candidates) // 2, -1]]]
    rng = np.random.default_rng(11)
    M = 400_000
    landmark = synth._landmark_rtw(w, pop, rng, M)
    natural = synth._strategy_days(rng, w.ref_pi[pop], w.ref_rate[pop], M, w.ref_rate2[pop], w.ref_halving)["natural"]
    E = rng.exponential(1.0, (4, M, len(pop)))
    d_rtw = synth._to_day(
        synth._rtw_continuous(E[0], w.rtw_start[pop], w.rtw_theta[pop], w.kappa, natural.astype(float), w.hr)
    )
    d_ltd = synth._to_day(60.0 + E[1] / w.ltd_rate[pop])
    d_ret = synth._to_day(14.0 + E[2] / w.ret_rate[pop])
    d_death = synth._nudge_death(synth._to_day(1.0 + E[3] / w.death_rate[pop]), d_rtw, d_ltd, d_ret)
    ev, kind = synth._first_event(d_rtw, d_ltd, d_ret, d_death)
    at_risk = ev > synth.GRACE_DAYS
    referred = natural <= synth.GRACE_DAYS
    checked = 0
    for h, day in enumerate(synth.HORIZONS):
        rtw = (ev <= day) & (kind == 1)
        for j in range(len(pop)):
            for arm, group in (("early", at_risk[:, j] & referred[:, j]), ("delayed", at_risk[:, j] & ~referred[:, j])):
                if group.sum() < 2000:
                    continue
                forward = rtw[group, j].mean()
                truth = landmark[arm][h, :, j].mean()
                se = np.sqrt(forward * (1 - forward) / group.sum() + truth * (1 - truth) / M)
                assert abs(forward - truth) < 4.5 * se, (arm, day, j, forward, truth)
                checked += 1
    assert checked >= 12  # both arms for most persons at every horizon
