-- grain: one row per person per service date per cohort-defining value set (lbp, red_flags)
-- Any diagnosis position and any claim type count. A code counts only on service dates inside its
-- valid_from/valid_to (e.g. legacy M54.5 only before 2021-10-01). Covariate diagnoses are not kept
-- here: they matter only in cohort members' baseline windows, so intermediate.baseline_event reads
-- them from raw for those persons (materialising every comorbidity claim of every person would
-- cost more than the rest of the cohort build).
select distinct
    d.person_id,
    d.claim_start_date as event_date,
    m.valueset
from raw.medical_claim_diagnosis as d
inner join staging.diagnosis_code_map as m on m.code = d.diagnosis_code
where m.valueset in ('lbp', 'red_flags')
    and (m.valid_from is null or d.claim_start_date >= m.valid_from)
    and (m.valid_to is null or d.claim_start_date <= m.valid_to)
