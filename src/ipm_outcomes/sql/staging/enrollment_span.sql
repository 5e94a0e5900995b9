-- grain: one row per person per continuous-enrollment span
-- Overlapping spans are merged and gaps of up to enrollment_gap_days uncovered days are bridged
-- (a one-month lapse in eligibility files is usually administrative, not a real loss of coverage).
-- Gaps-and-islands: a span starts a new island when it begins more than gap + 1 days after the latest
-- end seen so far for the person.
with ordered as (
    select
        person_id,
        enrollment_start_date as start_date,
        enrollment_end_date as end_date,
        max(enrollment_end_date) over (
            partition by person_id
            order by enrollment_start_date, enrollment_end_date
            rows between unbounded preceding and 1 preceding
        ) as latest_end_before
    from raw.eligibility
),

flagged as (
    select
        person_id,
        start_date,
        end_date,
        case
            when latest_end_before is null then 1
            when date_diff('day', latest_end_before, start_date) > $enrollment_gap_days + 1 then 1
            else 0
        end as starts_island
    from ordered
),

numbered as (
    select
        person_id,
        start_date,
        end_date,
        sum(starts_island) over (
            partition by person_id
            order by start_date, end_date
            rows between unbounded preceding and current row
        ) as span_number
    from flagged
)

select
    person_id,
    span_number,
    min(start_date) as span_start,
    max(end_date) as span_end
from numbered
group by person_id, span_number
