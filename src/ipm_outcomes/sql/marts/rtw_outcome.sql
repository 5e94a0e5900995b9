-- grain: one row per cohort person in the return-to-work population
-- time_days is the day (from index) of the first of: return to work (event 1), a competing event
-- (event 2: a competing work status, or death when death_is_competing), or the administrative
-- censoring day (event 0: end of enrollment, end of data or end of follow-up). Events after the
-- censoring day are not seen. On a same-day tie return to work wins over a competing event, and death
-- over a competing status. When death is not a competing event it censors (censor_reason 'death').
-- referral_day and censor_day are the person-day facts the models need.
with base as (
    select
        b.person_id,
        case
            when not $death_is_competing and b.death_day < b.censor_day then b.death_day
            else b.censor_day
        end as censor_day,
        case
            when not $death_is_competing and b.death_day < b.censor_day then 'death'
            else b.censor_reason
        end as censor_reason,
        r.days_to_referral,
        e.rtw_day,
        case
            when $death_is_competing and b.death_day is not null
                and (e.competing_day is null or b.death_day <= e.competing_day) then b.death_day
            else e.competing_day
        end as competing_day,
        case
            when $death_is_competing and b.death_day is not null
                and (e.competing_day is null or b.death_day <= e.competing_day) then 'death'
            else e.competing_status
        end as competing_type
    from intermediate.cohort_base as b
    inner join intermediate.rtw_event as e on e.person_id = b.person_id
    inner join intermediate.referral as r on r.person_id = b.person_id
    where e.in_rtw_population
),

resolved as (
    select
        *,
        case
            when rtw_day is not null and rtw_day <= censor_day
                and (competing_day is null or rtw_day <= competing_day) then 1
            when competing_day is not null and competing_day <= censor_day then 2
            else 0
        end as event
    from base
)

select
    person_id,
    case event when 1 then rtw_day when 2 then competing_day else censor_day end as time_days,
    event,
    case event when 1 then 'rtw' when 2 then competing_type else 'censored' end as event_type,
    days_to_referral as referral_day,
    censor_day,
    censor_reason
from resolved
