-- grain: one row per cohort person per time-to-event secondary outcome (each secondary outcome and each negative control)
-- Follow-up runs from day 1 (day 0 is index: what happens at the index visit is not an outcome) to
-- censor_day (end of enrollment, end of data or followup_days). time_days is the day of the first of:
-- the outcome (event 1), death (event 2, competing) or censoring (event 0). On a same-day tie the
-- outcome wins over death (the claim shows it happened). in_population: for an outcome with
-- new_lookback_days (the "new" diagnoses, the negative controls), no occurrence from index -
-- new_lookback_days through index (day 0 included); otherwise everyone.
with outcomes as (
    select outcome, kind, new_lookback_days, 'secondary' as outcome_class
    from ref.secondary_outcome
    where kind in ('diagnosis', 'opioid', 'procedure', 'ed_visit')
    union
    select v.code_group as outcome, o.kind, o.new_lookback_days, 'negative_control' as outcome_class
    from ref.secondary_outcome as o
    inner join ref.outcome_valueset as ov on ov.outcome = o.outcome and ov.role = 'negative_control'
    inner join ref.valueset as v on v.valueset = ov.valueset
    where o.kind = 'negative_control'
),

per_person as (
    select
        e.person_id,
        e.outcome,
        min(case when e.day >= 1 then e.day end) as first_day,
        max(case when e.day <= 0 and e.day >= 0 - o.new_lookback_days then 1 else 0 end) as at_baseline
    from intermediate.outcome_event as e
    inner join outcomes as o on o.outcome = e.outcome
    group by e.person_id, e.outcome
),

resolved as (
    select
        b.person_id,
        o.outcome,
        o.outcome_class,
        o.new_lookback_days is null or coalesce(p.at_baseline, 0) = 0 as in_population,
        p.first_day,
        b.death_day,
        b.censor_day,
        b.censor_reason,
        case
            when p.first_day is not null and p.first_day <= b.censor_day
                and (b.death_day is null or p.first_day <= b.death_day) then 1
            when b.death_day is not null and b.death_day <= b.censor_day then 2
            else 0
        end as event
    from intermediate.cohort_base as b
    cross join outcomes as o
    left join per_person as p on p.person_id = b.person_id and p.outcome = o.outcome
)

select
    person_id,
    outcome,
    outcome_class,
    in_population,
    case event when 1 then first_day when 2 then death_day else censor_day end as time_days,
    event,
    case event when 1 then 'event' when 2 then 'death' else 'censored' end as event_type,
    censor_day,
    censor_reason
from resolved
