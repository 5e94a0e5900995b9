-- grain: one row per row of the OMOP procedure_occurrence table
-- A procedure becomes a claim line with its CPT/HCPCS code: from the source concept (CPT4 or HCPCS
-- vocabulary), the standard procedure concept when it is CPT4/HCPCS itself, the source value when it has
-- the CPT/HCPCS shape and no source concept says otherwise, or the CPT4/HCPCS concept that 'Maps to' the
-- standard concept. A claim line needs a diagnosis (diagnosis_code_1 is required), so a procedure whose
-- visit (or person-day) has no mapped ICD-10-CM condition is reported instead of loaded.
with hcpcs_concept as (
    select concept_id, upper(trim(concept_code)) as code
    from cdm.concept
    where vocabulary_id in ('CPT4', 'HCPCS') and regexp_full_match(upper(trim(concept_code)), $hcpcs_shape)
),

hcpcs_mapped_to_standard as (
    select cr.concept_id_2 as concept_id, min(h.code) as code, count(distinct h.code) as n_codes
    from cdm.concept_relationship as cr
    inner join hcpcs_concept as h on h.concept_id = cr.concept_id_1
    where cr.relationship_id = 'Maps to' and cr.invalid_reason is null
    group by cr.concept_id_2
),

procedures as (
    select
        po.*,
        sc.vocabulary_id as source_vocabulary,
        upper(trim(po.procedure_source_value)) as source_value_code,
        hs.code as source_concept_code,
        hc.code as standard_concept_code,
        person_id || '-' || coalesce('v' || visit_occurrence_id, 'd' || strftime(procedure_date, '%Y%m%d'))
            as claim_key
    from cdm.procedure_occurrence as po
    left join cdm.concept as sc
        on sc.concept_id = po.procedure_source_concept_id and po.procedure_source_concept_id <> 0
    left join hcpcs_concept as hs on hs.concept_id = po.procedure_source_concept_id
    left join hcpcs_concept as hc on hc.concept_id = po.procedure_concept_id
),

coded as (
    select
        p.*,
        case
            when p.source_concept_code is not null then p.source_concept_code
            when p.standard_concept_code is not null then p.standard_concept_code
            when p.source_vocabulary is null and regexp_full_match(p.source_value_code, $hcpcs_shape)
                then p.source_value_code
            else m.code
        end as hcpcs_code,
        case
            when p.source_concept_code is not null then 'procedure_source_concept_id'
            when p.standard_concept_code is not null then 'procedure_concept_id'
            when p.source_vocabulary is null and regexp_full_match(p.source_value_code, $hcpcs_shape)
                then 'procedure_source_value'
            when m.n_codes = 1 then 'concept_relationship Maps to'
            when m.n_codes > 1 then 'concept_relationship Maps to (first of several CPT/HCPCS codes)'
        end as path
    from procedures as p
    left join hcpcs_mapped_to_standard as m on m.concept_id = p.procedure_concept_id
),

claims_with_diagnosis as (
    select distinct claim_key from omop.int_condition where problem is null
)

select
    'procedure_occurrence' as source_table,
    procedure_occurrence_id as source_id,
    person_id,
    procedure_date as service_date,
    visit_occurrence_id,
    provider_id,
    claim_key,
    hcpcs_code,
    case when regexp_full_match(upper(trim(modifier_source_value)), '[0-9A-Z]{2}')
        then upper(trim(modifier_source_value)) end as hcpcs_modifier_1,
    path,
    case
        when person_id is null then 'person_id missing'
        when person_id not in (select person_id from omop.int_person where person_id is not null)
            then 'person_id not in the person table'
        when procedure_date is null then 'procedure_date missing or unreadable'
        when hcpcs_code is null
            then 'no CPT/HCPCS code (source is not CPT/HCPCS and no CPT4/HCPCS concept maps to the procedure)'
        when claim_key not in (select claim_key from claims_with_diagnosis)
            then 'no ICD-10-CM diagnosis on the same visit or day (a claim line needs diagnosis_code_1)'
    end as problem,
    coalesce(procedure_source_value, cast(procedure_concept_id as varchar), '') as example
from coded
