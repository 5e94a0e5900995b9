-- grain: one row per distinct provider taxonomy code in the extract per NUCC value-set entry it matches
with codes as (
    select rendering_taxonomy_code as code
    from raw.medical_claim
    where rendering_taxonomy_code is not null
    union
    select provider_taxonomy_code as code
    from raw.ehr_encounter
    where provider_taxonomy_code is not null
)

select distinct c.code, v.valueset, v.valid_from, v.valid_to
from codes as c
inner join ref.valueset as v
    on v.code_system = 'nucc'
    and (
        (not v.is_prefix and c.code = v.match_code)
        or (v.is_prefix and substring(c.code, 1, length(v.match_code)) = v.match_code)
    )
