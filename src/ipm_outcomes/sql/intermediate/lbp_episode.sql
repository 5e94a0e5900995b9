-- grain: one row per person per new low-back-pain episode
-- An episode starts on an lbp diagnosis date with no lbp diagnosis in the washout_days days before it
-- (a recurrence inside the washout continues the old episode). Episodes after the end of the data
-- cannot be followed and are not candidates.
with lbp_dates as (
    select
        person_id,
        event_date,
        lag(event_date) over (partition by person_id order by event_date) as previous_date
    from staging.diagnosis_event
    where valueset = 'lbp'
)

select
    l.person_id,
    l.event_date as episode_date,
    date_diff('day', l.previous_date, l.event_date) as days_since_previous_lbp
from lbp_dates as l
cross join staging.extract_period as x
where (l.previous_date is null or date_diff('day', l.previous_date, l.event_date) > $washout_days)
    and l.event_date <= x.data_end_date
