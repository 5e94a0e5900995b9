-- grain: one row per cohort person per available time-to-event secondary outcome
-- From intermediate.outcome_time (day 0 = index, follow-up days 1 .. censor_day, death competing):
-- event 0 censored, 1 the outcome, 2 death. in_population false = excluded from this outcome's
-- analysis (the diagnosis was already there in the baseline window). opioid_naive: no opioid dispensed
-- in the opioid_naive_lookback_days before index (the long-term opioid subgroup); null without
-- pharmacy data. Outcomes marked unavailable in marts.outcome_availability have no rows.
select
    t.person_id,
    t.outcome,
    t.in_population,
    t.time_days,
    t.event,
    t.event_type,
    t.censor_day,
    t.censor_reason,
    case when rx.available then l.opioid_naive end as opioid_naive
from intermediate.outcome_time as t
inner join marts.outcome_availability as a on a.outcome = t.outcome
inner join intermediate.long_term_opioid as l on l.person_id = t.person_id
cross join (
    select coalesce(max(case when available then 1 else 0 end), 0) = 1 as available
    from marts.outcome_availability
    where kind = 'opioid'
) as rx
where t.outcome_class = 'secondary'
    and a.available
