-- grain: one row per distinct diagnosis code in the extract per secondary outcome whose value sets it matches
-- Codes come from every position of every medical claim and from EHR encounters' primary diagnoses.
-- The outcome is the spec key (outcomes.<name>.diagnosis_valuesets) or, for the negative controls, the
-- value-set entry's group (one outcome per group). Matched once on the distinct codes, as in
-- staging.diagnosis_code_map, so that events hash-join on the code.
with codes as (
    select diagnosis_code as code
    from raw.medical_claim_diagnosis
    union
    select primary_diagnosis_code as code
    from raw.ehr_encounter
    where primary_diagnosis_code is not null
),

outcome_valuesets as (
    select o.outcome, o.kind, v.valueset
    from ref.secondary_outcome as o
    inner join ref.outcome_valueset as v on v.outcome = o.outcome
    where v.role in ('diagnosis', 'negative_control')
)

select distinct
    c.code,
    case when o.kind = 'negative_control' then v.code_group else o.outcome end as outcome,
    o.kind,
    v.valid_from,
    v.valid_to
from codes as c
inner join ref.valueset as v
    on v.code_system = 'icd10cm'
    and (
        (not v.is_prefix and c.code = v.match_code)
        or (v.is_prefix and substring(c.code, 1, length(v.match_code)) = v.match_code)
    )
inner join outcome_valuesets as o on o.valueset = v.valueset
