-- grain: one row per cohort person per value set seen in the baseline window
-- The baseline window runs from baseline_days before index through the index date. Diagnoses come
-- from every position of every medical claim (matched through the distinct-code map), procedures
-- from the claim line's CPT/HCPCS code. on_index_day marks value sets also seen on the index date
-- itself (radiculopathy at index).
with diagnoses as (
    select b.person_id, b.index_date, d.claim_start_date as event_date, m.valueset
    from intermediate.cohort_base as b
    inner join raw.medical_claim_diagnosis as d on d.person_id = b.person_id
    inner join staging.diagnosis_code_map as m on m.code = d.diagnosis_code
    where d.claim_start_date <= b.index_date
        and date_diff('day', d.claim_start_date, b.index_date) <= $baseline_days
        and (m.valid_from is null or d.claim_start_date >= m.valid_from)
        and (m.valid_to is null or d.claim_start_date <= m.valid_to)
),

procedures as (
    select b.person_id, b.index_date, p.event_date, p.valueset
    from intermediate.cohort_base as b
    inner join staging.procedure_event as p on p.person_id = b.person_id
    where p.event_date <= b.index_date
        and date_diff('day', p.event_date, b.index_date) <= $baseline_days
),

events as (
    select * from diagnoses
    union all
    select * from procedures
)

select
    person_id,
    valueset,
    max(case when event_date = index_date then 1 else 0 end) as on_index_day
from events
group by person_id, valueset
