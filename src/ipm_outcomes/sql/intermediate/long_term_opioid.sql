-- grain: one row per cohort person
-- ltot_day: the first day d (from index) on which the opioid days' supply dispensed on days
-- max(1, d - ltot_window_days + 1) .. d adds up to at least ltot_days_supply (with the defaults: 90
-- days within 180). Only fills after index and up to the end of follow-up count, so the sum can
-- first reach the threshold only on a dispensing day, and those are the days checked.
-- opioid_naive: no opioid dispensed from index - opioid_naive_lookback_days through index - 1 (a fill on
-- the index date treats the episode itself). Without pharmacy data every person looks naive:
-- marts.outcome_availability says the outcome is unavailable then, and the marts drop it.
with fills as (
    select
        b.person_id,
        date_diff('day', b.index_date, p.dispensing_date) as day,
        p.days_supply
    from intermediate.cohort_base as b
    inner join raw.pharmacy_claim as p on p.person_id = b.person_id
    inner join raw.ndc_reference as n on n.ndc_code = p.ndc_code
    where n.is_opioid
        and date_diff('day', b.index_date, p.dispensing_date) >= 0 - $opioid_naive_lookback_days
        and date_diff('day', b.index_date, p.dispensing_date) <= b.followup_end_day
),

daily as (
    select person_id, day, sum(days_supply) as supply
    from fills
    where day >= 1
    group by person_id, day
),

windowed as (
    select d.person_id, d.day, sum(w.supply) as window_supply
    from daily as d
    inner join daily as w
        on w.person_id = d.person_id
        and w.day <= d.day
        and w.day >= d.day - $ltot_window_days + 1
    group by d.person_id, d.day
),

ltot as (
    select person_id, min(day) as ltot_day
    from windowed
    where window_supply >= $ltot_days_supply
    group by person_id
),

prior_use as (
    select distinct person_id
    from fills
    where day < 0
)

select
    b.person_id,
    l.ltot_day,
    u.person_id is null as opioid_naive
from intermediate.cohort_base as b
left join ltot as l on l.person_id = b.person_id
left join prior_use as u on u.person_id = b.person_id
