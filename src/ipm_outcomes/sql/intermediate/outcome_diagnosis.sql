-- grain: one row per cohort person per diagnosis outcome (kind diagnosis or negative_control) per day with its diagnosis
-- Days are counted from index; rows run from the longest new_lookback_days before index (the "new"
-- outcomes' baseline window) through the end of follow-up (followup_end_day: censoring or death). A
-- diagnosis is any position of a medical claim, or an EHR encounter's primary diagnosis, on a service
-- date inside the code's valid_from/valid_to.
with lookback as (
    select coalesce(max(new_lookback_days), 0) as days
    from ref.secondary_outcome
),

claims as (
    select b.person_id, m.outcome, date_diff('day', b.index_date, d.claim_start_date) as day
    from intermediate.cohort_base as b
    inner join raw.medical_claim_diagnosis as d on d.person_id = b.person_id
    inner join intermediate.outcome_code_map as m on m.code = d.diagnosis_code
    where m.kind in ('diagnosis', 'negative_control')
        and (m.valid_from is null or d.claim_start_date >= m.valid_from)
        and (m.valid_to is null or d.claim_start_date <= m.valid_to)
),

encounters as (
    select b.person_id, m.outcome, date_diff('day', b.index_date, e.encounter_date) as day
    from intermediate.cohort_base as b
    inner join raw.ehr_encounter as e on e.person_id = b.person_id
    inner join intermediate.outcome_code_map as m on m.code = e.primary_diagnosis_code
    where m.kind in ('diagnosis', 'negative_control')
        and (m.valid_from is null or e.encounter_date >= m.valid_from)
        and (m.valid_to is null or e.encounter_date <= m.valid_to)
),

events as (
    select * from claims
    union all
    select * from encounters
)

select distinct e.person_id, e.outcome, e.day
from events as e
inner join intermediate.cohort_base as b on b.person_id = e.person_id
cross join lookback as l
where e.day >= 0 - l.days
    and e.day <= b.followup_end_day
