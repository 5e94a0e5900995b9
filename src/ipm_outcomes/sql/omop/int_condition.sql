-- grain: one row per row of the OMOP condition_occurrence table
-- The study's value sets are ICD-10-CM, so each condition needs its ICD-10-CM source code. In order:
-- the source concept when it is an ICD10CM concept; the source value when it has the ICD-10-CM shape and
-- no source concept says it is something else; else the ICD10CM concept(s) whose 'Maps to' points at the
-- standard condition concept (when several do, the first code is taken and the path says so).
-- Conditions group into claims by visit (or by person and day when there is no visit): claim_key.
with icd_mapped_to_standard as (
    select
        cr.concept_id_2 as concept_id,
        min(regexp_replace(upper(icd.concept_code), '[.\s-]', '', 'g')) as code,
        count(distinct icd.concept_code) as n_codes
    from cdm.concept_relationship as cr
    inner join cdm.concept as icd on icd.concept_id = cr.concept_id_1
    where cr.relationship_id = 'Maps to'
        and icd.vocabulary_id = 'ICD10CM'
        and cr.invalid_reason is null
    group by cr.concept_id_2
),

primary_concept as (
    select concept_id from omop.int_rule_concept where rule = 'condition_primary'
),

conditions as (
    select
        co.*,
        sc.vocabulary_id as source_vocabulary,
        regexp_replace(upper(sc.concept_code), '[.\s-]', '', 'g') as source_concept_code,
        regexp_replace(upper(trim(co.condition_source_value)), '[.\s-]', '', 'g') as source_value_code
    from cdm.condition_occurrence as co
    left join cdm.concept as sc
        on sc.concept_id = co.condition_source_concept_id and co.condition_source_concept_id <> 0
),

coded as (
    select
        c.*,
        case
            when c.source_vocabulary = 'ICD10CM' and regexp_full_match(c.source_concept_code, $icd10cm_shape)
                then c.source_concept_code
            when c.source_vocabulary is null and regexp_full_match(c.source_value_code, $icd10cm_shape)
                then c.source_value_code
            else m.code
        end as icd10cm_code,
        case
            when c.source_vocabulary = 'ICD10CM' and regexp_full_match(c.source_concept_code, $icd10cm_shape)
                then 'condition_source_concept_id'
            when c.source_vocabulary is null and regexp_full_match(c.source_value_code, $icd10cm_shape)
                then 'condition_source_value'
            when m.n_codes = 1 then 'concept_relationship Maps to'
            when m.n_codes > 1 then 'concept_relationship Maps to (first of several ICD-10-CM codes)'
        end as path,
        coalesce(
            c.condition_status_concept_id in (select concept_id from primary_concept)
            or c.condition_type_concept_id in (select concept_id from primary_concept),
            false
        ) as is_primary
    from conditions as c
    left join icd_mapped_to_standard as m on m.concept_id = c.condition_concept_id
)

select
    'condition_occurrence' as source_table,
    condition_occurrence_id as source_id,
    person_id,
    condition_start_date as service_date,
    visit_occurrence_id,
    provider_id,
    person_id || '-' || coalesce('v' || visit_occurrence_id, 'd' || strftime(condition_start_date, '%Y%m%d'))
        as claim_key,
    icd10cm_code,
    path,
    is_primary,
    case
        when person_id is null then 'person_id missing'
        when person_id not in (select person_id from omop.int_person where person_id is not null)
            then 'person_id not in the person table'
        when condition_start_date is null then 'condition_start_date missing or unreadable'
        when icd10cm_code is null
            then 'no ICD-10-CM code (source is not ICD-10-CM and no ICD10CM concept maps to the condition)'
    end as problem,
    coalesce(condition_source_value, cast(condition_concept_id as varchar), '') as example
from coded
