-- grain: one row per row of the OMOP condition_occurrence table
-- codes: the ICD-10-CM codes the condition is carried as in the contract (empty when it is not loaded).
-- The vocabulary of a code comes from the concept table, never from its shape (ICD-9-CM V and E codes
-- such as V49.87 or E879.8 look like ICD-10-CM). In order:
--   1. the source concept, when it is an ICD10CM concept;
--   2. with no known source concept, the source value when the CDM's vocabulary has it as an ICD10CM code
--      (and as no ICD-9-CM or ICD-10 code);
--   3. the standard concept, when it is in one of the study's value sets (int_standard_concept): carried as
--      that value set's equivalent code valid on the condition's date, one code per value set;
--   4. the ICD10CM concept(s) whose 'Maps to' points at the standard concept (the first when several do);
--   5. the standard concept itself as OMOP<concept_id> (contract.STANDARD_CONCEPT_CODE): no value set lists
--      it, but the claim, its date and its cost count like any other claim's.
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

value_vocabulary as (
    select
        regexp_replace(upper(trim(concept_code)), '[.\s-]', '', 'g') as code,
        bool_and(vocabulary_id = 'ICD10CM') as only_icd10cm,
        string_agg(distinct vocabulary_id, ' and ' order by vocabulary_id) as vocabularies
    from cdm.concept
    where vocabulary_id in ('ICD10CM', 'ICD9CM', 'ICD10', 'ICD9Proc', 'ICD10PCS')
    group by 1
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

recognised as (
    select
        c.*,
        coalesce(c.source_vocabulary = 'ICD10CM' and regexp_full_match(c.source_concept_code, $icd10cm_shape), false)
            as source_is_icd10cm,
        coalesce(
            c.source_vocabulary is null and v.only_icd10cm and regexp_full_match(c.source_value_code, $icd10cm_shape),
            false
        ) as value_is_icd10cm,
        v.vocabularies as value_vocabularies
    from conditions as c
    left join value_vocabulary as v on v.code = c.source_value_code
),

standard_codes as (
    -- one equivalent code per condition per value set: the smallest valid on the condition's date
    select condition_occurrence_id, list(distinct code order by code) as codes, min(via) as via
    from (
        select c.condition_occurrence_id, s.valueset, min(s.equivalent_code) as code, min(s.via) as via
        from conditions as c
        inner join omop.int_standard_concept as s
            on s.concept_id = c.condition_concept_id
            and s.code_system = 'icd10cm'
            and (s.valid_from is null or c.condition_start_date >= s.valid_from)
            and (s.valid_to is null or c.condition_start_date <= s.valid_to)
        where c.condition_concept_id <> 0
        group by c.condition_occurrence_id, s.valueset
    )
    group by condition_occurrence_id
),

coded as (
    select
        c.*,
        case
            when c.source_is_icd10cm then [c.source_concept_code]
            when c.value_is_icd10cm then [c.source_value_code]
            when s.codes is not null then s.codes
            when m.code is not null then [m.code]
            when c.condition_concept_id <> 0 then ['OMOP' || c.condition_concept_id]
        end as codes,
        case
            when c.source_is_icd10cm then 'condition_source_concept_id'
            when c.value_is_icd10cm then 'condition_source_value (an ICD10CM code of the vocabulary)'
            when s.codes is not null then 'condition_concept_id in a study value set (' || s.via || ')'
            when m.n_codes = 1 then 'concept_relationship Maps to'
            when m.n_codes > 1 then 'concept_relationship Maps to (first of several ICD-10-CM codes)'
            when c.condition_concept_id <> 0 then 'condition_concept_id in no study value set (kept as OMOP<id>)'
        end as path,
        coalesce(
            c.condition_status_concept_id in (select concept_id from primary_concept)
            or c.condition_type_concept_id in (select concept_id from primary_concept),
            false
        ) as is_primary,
        case
            when c.source_vocabulary is not null then c.source_vocabulary
            when c.value_vocabularies is not null then 'source value found in ' || c.value_vocabularies
            when c.condition_source_value is not null
                then 'unknown (no source concept; the source value is no code of the vocabulary)'
            else 'none'
        end as source_vocabulary_text
    from recognised as c
    left join standard_codes as s on s.condition_occurrence_id = c.condition_occurrence_id
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
    codes,
    path,
    is_primary,
    case
        when person_id is null then 'person_id missing'
        when person_id not in (select person_id from omop.int_person where person_id is not null)
            then 'person_id not in the person table'
        when condition_start_date is null then 'condition_start_date missing or unreadable'
        when codes is null
            then 'no ICD-10-CM code (source vocabulary: ' || source_vocabulary_text || ') and no standard concept'
    end as problem,
    coalesce(condition_source_value, cast(condition_concept_id as varchar), '') as example
from coded
