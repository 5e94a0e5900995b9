-- grain: one row per cohort person per value set seen in the baseline window
-- The baseline window runs from baseline_days before index through the index date. on_index_day
-- marks value sets also seen on the index date itself (radiculopathy at index).
with events as (
    select person_id, event_date, valueset from staging.diagnosis_event
    union all
    select person_id, event_date, valueset from staging.procedure_event
)

select
    b.person_id,
    e.valueset,
    max(case when e.event_date = b.index_date then 1 else 0 end) as on_index_day
from intermediate.cohort_base as b
inner join events as e on e.person_id = b.person_id
where e.event_date <= b.index_date
    and date_diff('day', e.event_date, b.index_date) <= $baseline_days
group by b.person_id, e.valueset
