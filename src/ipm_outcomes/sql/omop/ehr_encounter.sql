-- grain: one row per encounter (contract table ehr_encounter): one OMOP visit each
-- The primary diagnosis is the visit's first-ranked ICD-10-CM code (see int_claim_diagnosis).
select
    v.person_id,
    'omop-visit-' || v.visit_occurrence_id as encounter_id,
    v.visit_start_date as encounter_date,
    v.encounter_type,
    v.taxonomy_code as provider_taxonomy_code,
    d.icd10cm_code as primary_diagnosis_code
from omop.int_visit as v
left join omop.int_claim_diagnosis as d
    on d.claim_key = v.person_id || '-v' || v.visit_occurrence_id
    and d.diagnosis_position = 1
where v.problem is null
order by v.person_id, encounter_date, encounter_id
