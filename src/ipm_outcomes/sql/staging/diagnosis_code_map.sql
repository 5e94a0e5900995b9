-- grain: one row per distinct diagnosis code in the extract per ICD-10-CM value-set entry it matches
-- Codes are matched once here, on the few thousand distinct codes, so that events can hash-join on
-- the code; a prefix entry (code ending in *) matches every code that starts with it.
with codes as (
    select distinct diagnosis_code as code
    from raw.medical_claim_diagnosis
)

select distinct c.code, v.valueset, v.valid_from, v.valid_to
from codes as c
inner join ref.valueset as v
    on v.code_system = 'icd10cm'
    and (
        (not v.is_prefix and c.code = v.match_code)
        or (v.is_prefix and substring(c.code, 1, length(v.match_code)) = v.match_code)
    )
