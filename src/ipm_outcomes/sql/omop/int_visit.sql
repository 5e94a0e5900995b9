-- grain: one row per row of the OMOP visit_occurrence table
-- Encounter type and place of service come from visit_concept_id (or the care site's place of service)
-- through the mapping table; a visit concept it does not list is an 'other' encounter.
with encounter_type as (
    select concept_id, target from omop.int_rule_concept where rule = 'visit_encounter_type'
),

place_of_service as (
    select concept_id, target from omop.int_rule_concept where rule = 'visit_place_of_service'
),

pos_concept as (
    select concept_id, concept_code as code
    from cdm.concept
    where vocabulary_id = 'CMS Place of Service' and regexp_full_match(concept_code, $pos_shape)
),

provider as (
    select provider_id, max(taxonomy_code) as taxonomy_code, max(npi) as npi
    from omop.int_provider
    group by provider_id
),

care_site as (
    select care_site_id, max(place_of_service_concept_id) as place_of_service_concept_id
    from cdm.care_site
    group by care_site_id
)

select
    'visit_occurrence' as source_table,
    v.visit_occurrence_id as source_id,
    v.visit_occurrence_id,
    v.person_id,
    v.visit_start_date,
    coalesce(v.visit_end_date, v.visit_start_date) as visit_end_date,
    coalesce(et.target, 'other') as encounter_type,
    coalesce(pv.code, pc.code, ps.target) as place_of_service_code,
    v.provider_id,
    pr.taxonomy_code,
    pr.npi,
    case when et.target is null then 'encounter_type other: visit concept not in mapping table'
        else 'visit_concept_id' end as path,
    case
        when v.person_id is null then 'person_id missing'
        when v.person_id not in (select person_id from omop.int_person where person_id is not null)
            then 'person_id not in the person table'
        when v.visit_start_date is null then 'visit_start_date missing or unreadable'
        when v.visit_occurrence_id in (
            select visit_occurrence_id from cdm.visit_occurrence group by visit_occurrence_id having count(*) > 1
        ) then 'visit_occurrence_id appears more than once'
    end as problem,
    case
        when v.provider_id is null then 'visit has no provider'
        when pr.taxonomy_code is null then 'provider specialty not mapped to a NUCC taxonomy'
    end as taxonomy_gap,
    coalesce(v.visit_source_value, cast(v.visit_concept_id as varchar), '') as example
from cdm.visit_occurrence as v
left join encounter_type as et on et.concept_id = v.visit_concept_id
left join pos_concept as pv on pv.concept_id = v.visit_concept_id
left join care_site as cs on cs.care_site_id = v.care_site_id
left join pos_concept as pc on pc.concept_id = cs.place_of_service_concept_id
left join place_of_service as ps on ps.concept_id = v.visit_concept_id
left join provider as pr on pr.provider_id = v.provider_id
