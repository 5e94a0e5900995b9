-- grain: one row per study value set per standard concept per equivalent code
-- The OMOP form of the study's value sets. A value set lists ICD-10-CM or CPT/HCPCS codes; an OHDSI CDM
-- records conditions (and some procedures) as standard concepts, mostly SNOMED CT. The standard concepts of
-- a value set are (a) the concepts its codes 'Maps to' in the CDM's own vocabulary (a prefix entry such as
-- C* takes every ICD10CM concept code it starts), and (b) the shipped standard concepts of
-- valuesets/omop/standard_concepts.csv (for vocabularies trimmed of ICD10CM concepts), each with its
-- descendants from concept_ancestor when the vocabulary has that table.
-- equivalent_code is the value-set code a record of the concept is carried as in the contract (the code
-- that maps to it, or the shipped row's code), so that one cohort SQL reads every source; valid_from and
-- valid_to are that code's validity in the value set (legacy codes such as M54.5 end on a date).
with source_concepts as (
    select
        concept_id,
        regexp_replace(upper(trim(concept_code)), '[.\s-]', '', 'g') as code,
        case when vocabulary_id = 'ICD10CM' then 'icd10cm' else 'hcpcs' end as code_system
    from cdm.concept
    where vocabulary_id in ('ICD10CM', 'CPT4', 'HCPCS')
),

in_valueset as (
    select s.concept_id, s.code, s.code_system, v.valueset, v.valid_from, v.valid_to
    from source_concepts as s
    inner join omop_map.valueset as v
        on v.code_system = s.code_system
        and (s.code = v.match_code or (v.is_prefix and starts_with(s.code, v.match_code)))
),

roots as (
    select
        cr.concept_id_2 as concept_id,
        i.valueset,
        i.code as equivalent_code,
        i.code_system,
        i.valid_from,
        i.valid_to,
        true as include_descendants,
        'Maps to' as via
    from in_valueset as i
    inner join cdm.concept_relationship as cr
        on cr.concept_id_1 = i.concept_id
        and cr.relationship_id = 'Maps to'
        and cr.invalid_reason is null

    union

    select
        c.concept_id,
        s.valueset,
        s.equivalent_code,
        s.code_system,
        cast(null as date) as valid_from,
        cast(null as date) as valid_to,
        s.include_descendants,
        'shipped standard concept' as via
    from omop_map.standard_concept as s
    inner join cdm.concept as c
        on c.vocabulary_id = s.vocabulary_id
        and c.concept_code = s.concept_code
),

descendants as (
    select
        ca.descendant_concept_id as concept_id,
        r.valueset,
        r.equivalent_code,
        r.code_system,
        r.valid_from,
        r.valid_to,
        r.include_descendants,
        r.via || ', descendant' as via
    from roots as r
    inner join cdm.concept_ancestor as ca
        on ca.ancestor_concept_id = r.concept_id
        and ca.descendant_concept_id <> r.concept_id
    where r.include_descendants
)

select concept_id, valueset, equivalent_code, code_system, valid_from, valid_to, min(via) as via
from (
    select * from roots
    union all
    select * from descendants
)
group by all
