-- grain: one row per cohort person per medical claim line on days 0 .. end of follow-up per ed_visit or cost outcome it relates to
-- A line relates to an outcome when its claim carries a diagnosis in the outcome's diagnosis_valuesets
-- (any position, any line of the claim, on a date inside the code's validity) or when the line's own
-- CPT/HCPCS code is in its procedure_valuesets. Day 0 (the index date) counts: costs run over days
-- 0 .. followup_end_day; the ED outcome reads only days >= 1.
with lines as (
    select
        b.person_id,
        c.claim_id,
        c.claim_line_number,
        c.claim_start_date,
        c.hcpcs_code,
        c.place_of_service_code,
        c.allowed_amount,
        date_diff('day', b.index_date, c.claim_start_date) as day
    from intermediate.cohort_base as b
    inner join raw.medical_claim as c on c.person_id = b.person_id
    where c.claim_start_date >= b.index_date
        and date_diff('day', b.index_date, c.claim_start_date) <= b.followup_end_day
),

by_diagnosis as (
    select distinct d.person_id, d.claim_id, m.outcome
    from raw.medical_claim_diagnosis as d
    inner join intermediate.outcome_code_map as m on m.code = d.diagnosis_code
    inner join intermediate.cohort_base as b on b.person_id = d.person_id
    where m.kind in ('ed_visit', 'cost')
        and d.claim_start_date >= b.index_date
        and date_diff('day', b.index_date, d.claim_start_date) <= b.followup_end_day
        and (m.valid_from is null or d.claim_start_date >= m.valid_from)
        and (m.valid_to is null or d.claim_start_date <= m.valid_to)
),

related as (
    select l.person_id, l.claim_id, l.claim_line_number, d.outcome
    from lines as l
    inner join by_diagnosis as d on d.person_id = l.person_id and d.claim_id = l.claim_id
    union
    select l.person_id, l.claim_id, l.claim_line_number, v.outcome
    from lines as l
    inner join staging.procedure_code_map as m on m.code = l.hcpcs_code
    inner join ref.outcome_valueset as v on v.valueset = m.valueset and v.role = 'procedure'
    inner join ref.secondary_outcome as o on o.outcome = v.outcome
    where o.kind in ('ed_visit', 'cost')
        and (m.valid_from is null or l.claim_start_date >= m.valid_from)
        and (m.valid_to is null or l.claim_start_date <= m.valid_to)
)

select
    r.person_id,
    r.outcome,
    l.claim_id,
    l.claim_line_number,
    l.day,
    l.place_of_service_code,
    l.allowed_amount
from related as r
inner join lines as l
    on l.person_id = r.person_id
    and l.claim_id = r.claim_id
    and l.claim_line_number = r.claim_line_number
