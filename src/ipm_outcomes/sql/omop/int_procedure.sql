-- grain: one row per row of the OMOP procedure_occurrence table
-- A procedure becomes a claim line with its CPT/HCPCS code. The vocabulary comes from the concept table,
-- never from the code's shape. In order: the source concept when it is CPT4/HCPCS; the standard concept
-- when it is CPT4/HCPCS itself (both are standard procedure vocabularies in OMOP); with no known source
-- concept, the source value when the vocabulary has it as a CPT4/HCPCS code; the standard concept when it
-- is in one of the study's procedure value sets (int_standard_concept: carried as the set's equivalent
-- code); else the CPT4/HCPCS concept that 'Maps to' the standard concept; else the standard concept itself
-- as OMOP<concept_id> (contract.STANDARD_CONCEPT_CODE: no value set lists it, the line still counts).
-- A procedure is kept whether or not its visit has a diagnosis: a claim line with a procedure code needs
-- none, and dropping it would move the date of an IPM contact.
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
        hv.code as source_value_concept_code,
        person_id || '-' || coalesce('v' || visit_occurrence_id, 'd' || strftime(procedure_date, '%Y%m%d'))
            as claim_key
    from cdm.procedure_occurrence as po
    left join cdm.concept as sc
        on sc.concept_id = po.procedure_source_concept_id and po.procedure_source_concept_id <> 0
    left join hcpcs_concept as hs on hs.concept_id = po.procedure_source_concept_id
    left join hcpcs_concept as hc on hc.concept_id = po.procedure_concept_id
    left join (select distinct code from hcpcs_concept) as hv on hv.code = upper(trim(po.procedure_source_value))
),

standard_codes as (
    select p.procedure_occurrence_id, min(s.equivalent_code) as code, min(s.via) as via
    from procedures as p
    inner join omop.int_standard_concept as s
        on s.concept_id = p.procedure_concept_id
        and s.code_system = 'hcpcs'
        and (s.valid_from is null or p.procedure_date >= s.valid_from)
        and (s.valid_to is null or p.procedure_date <= s.valid_to)
    where p.procedure_concept_id <> 0
    group by p.procedure_occurrence_id
),

coded as (
    select
        p.*,
        case
            when p.source_concept_code is not null then p.source_concept_code
            when p.standard_concept_code is not null then p.standard_concept_code
            when p.source_vocabulary is null and p.source_value_concept_code is not null
                then p.source_value_concept_code
            when s.code is not null then s.code
            when m.code is not null then m.code
            when p.procedure_concept_id <> 0 then 'OMOP' || p.procedure_concept_id
        end as hcpcs_code,
        case
            when p.source_concept_code is not null then 'procedure_source_concept_id'
            when p.standard_concept_code is not null then 'procedure_concept_id'
            when p.source_vocabulary is null and p.source_value_concept_code is not null
                then 'procedure_source_value (a CPT4/HCPCS code of the vocabulary)'
            when s.code is not null then 'procedure_concept_id in a study value set (' || s.via || ')'
            when m.n_codes = 1 then 'concept_relationship Maps to'
            when m.n_codes > 1 then 'concept_relationship Maps to (first of several CPT/HCPCS codes)'
            when p.procedure_concept_id <> 0 then 'procedure_concept_id in no study value set (kept as OMOP<id>)'
        end as path,
        coalesce(
            p.source_vocabulary,
            case when p.procedure_source_value is not null
                then 'unknown (no source concept; the source value is no code of the vocabulary)' end,
            'none'
        ) as source_vocabulary_text
    from procedures as p
    left join standard_codes as s on s.procedure_occurrence_id = p.procedure_occurrence_id
    left join hcpcs_mapped_to_standard as m on m.concept_id = p.procedure_concept_id
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
            then 'no CPT/HCPCS code (source vocabulary: ' || source_vocabulary_text || ') and no standard concept'
    end as problem,
    coalesce(procedure_source_value, cast(procedure_concept_id as varchar), '') as example
from coded
