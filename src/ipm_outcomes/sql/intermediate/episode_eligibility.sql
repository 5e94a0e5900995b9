-- grain: one row per person per new lbp episode, with each eligibility rule checked at its date
-- The episode date is the would-be index date. rules_passed is the attrition step reached: 2 = new
-- episode (steps 1-2 hold for every episode), 3 = enrollment, 4 = age, 5 = no red flag, 6 = no prior
-- IPM contact, i.e. eligible. Rules are taken in this order, so rules_passed stops at the first failure.
with checked as (
    select
        e.person_id,
        e.episode_date,
        cast(extract(year from e.episode_date) as integer) - p.birth_year as age,
        exists (
            select 1
            from staging.enrollment_span as s
            where s.person_id = e.person_id
                and s.span_start <= e.episode_date
                and s.span_end >= e.episode_date
                and date_diff('day', s.span_start, e.episode_date) >= $baseline_enrollment_days
        ) as enrolled,
        not exists (
            select 1
            from staging.diagnosis_event as r
            where r.person_id = e.person_id
                and r.valueset = 'red_flags'
                and r.event_date <= e.episode_date
                and date_diff('day', r.event_date, e.episode_date) <= $red_flag_lookback_days
        ) as red_flag_free,
        -- IPM contact on the index day itself is the referral (day 0), not a prior contact.
        not exists (
            select 1
            from staging.ipm_contact as c
            where c.person_id = e.person_id
                and c.contact_date < e.episode_date
                and date_diff('day', c.contact_date, e.episode_date) <= $ipm_washout_days
        ) as ipm_free
    from intermediate.lbp_episode as e
    inner join staging.person as p on p.person_id = e.person_id
)

select
    person_id,
    episode_date,
    age,
    enrolled,
    age between $age_min and $age_max as age_eligible,
    red_flag_free,
    ipm_free,
    case
        when not enrolled then 2
        when not (age between $age_min and $age_max) then 3
        when not red_flag_free then 4
        when not ipm_free then 5
        else 6
    end as rules_passed
from checked
