-- grain: one row per cohort person per work-status record with a role in the study
-- role: 'population' (off work at index), 'event' (return to work) or 'competing' (leaves the
-- workforce), from the spec's outcomes.rtw status lists; day is counted from index.
select distinct
    b.person_id,
    date_diff('day', b.index_date, w.status_date) as day,
    w.work_status,
    r.role
from intermediate.cohort_base as b
inner join raw.ehr_work_status as w on w.person_id = b.person_id
inner join ref.work_status_role as r on r.work_status = w.work_status
