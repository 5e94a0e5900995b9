-- grain: one row per distinct CPT/HCPCS code in the extract per value-set entry it matches
with codes as (
    select distinct hcpcs_code as code
    from raw.medical_claim
    where hcpcs_code is not null
)

select distinct c.code, v.valueset, v.valid_from, v.valid_to
from codes as c
inner join ref.valueset as v
    on v.code_system = 'hcpcs'
    and (
        (not v.is_prefix and c.code = v.match_code)
        or (v.is_prefix and substring(c.code, 1, length(v.match_code)) = v.match_code)
    )
