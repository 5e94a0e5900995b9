-- grain: one row per person per service date per value set with a matching procedure code
select distinct
    c.person_id,
    c.claim_start_date as event_date,
    m.valueset
from raw.medical_claim as c
inner join staging.procedure_code_map as m on m.code = c.hcpcs_code
where (m.valid_from is null or c.claim_start_date >= m.valid_from)
    and (m.valid_to is null or c.claim_start_date <= m.valid_to)
