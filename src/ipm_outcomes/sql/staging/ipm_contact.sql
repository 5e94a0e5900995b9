-- grain: one row per person per contact date per source of IPM contact
-- An IPM contact is (a) a medical claim line with an ipm_procedures code ('procedure'), (b) a
-- professional claim rendered by a provider with an ipm_taxonomies taxonomy ('claim_taxonomy';
-- institutional claims carry facility, not clinician, taxonomies), or (c) an EHR encounter with an
-- ipm_taxonomies provider ('ehr_taxonomy').
select person_id, event_date as contact_date, 'procedure' as source
from staging.procedure_event
where valueset = 'ipm_procedures'

union

select c.person_id, c.claim_start_date as contact_date, 'claim_taxonomy' as source
from raw.medical_claim as c
inner join staging.taxonomy_code_map as m on m.code = c.rendering_taxonomy_code
where c.claim_type = 'professional'
    and m.valueset = 'ipm_taxonomies'
    and (m.valid_from is null or c.claim_start_date >= m.valid_from)
    and (m.valid_to is null or c.claim_start_date <= m.valid_to)

union

select e.person_id, e.encounter_date as contact_date, 'ehr_taxonomy' as source
from raw.ehr_encounter as e
inner join staging.taxonomy_code_map as m on m.code = e.provider_taxonomy_code
where m.valueset = 'ipm_taxonomies'
    and (m.valid_from is null or e.encounter_date >= m.valid_from)
    and (m.valid_to is null or e.encounter_date <= m.valid_to)
