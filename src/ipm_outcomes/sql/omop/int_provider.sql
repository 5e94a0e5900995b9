-- grain: one row per row of the OMOP provider table
-- The study recognises Interventional Pain Medicine by the provider's NUCC taxonomy. It is taken from
-- specialty_source_value when that already is a taxonomy code, then from a specialty concept in the NUCC
-- vocabulary, then from the mapping table (Medicare/ABMS pain-medicine specialties and their names).
-- Other specialties stay empty on purpose: only pain medicine has to be told apart.
with specialty_by_concept as (
    select concept_id, target from omop.int_rule_concept where rule = 'specialty_nucc'
),

specialty_by_text as (
    select text, target from omop_map.concept_map where rule = 'specialty_nucc' and text is not null
),

nucc_concept as (
    select concept_id, upper(concept_code) as code
    from cdm.concept
    where vocabulary_id = 'NUCC' and regexp_full_match(upper(concept_code), $nucc_shape)
),

providers as (
    select
        pr.provider_id,
        upper(trim(pr.specialty_source_value)) as source_value_upper,
        pr.specialty_source_value,
        pr.specialty_concept_id,
        pr.specialty_source_concept_id,
        case when regexp_full_match(trim(pr.npi), $npi_shape) then trim(pr.npi) end as npi
    from cdm.provider as pr
),

resolved as (
    select
        p.*,
        case
            when regexp_full_match(p.source_value_upper, $nucc_shape) then p.source_value_upper
            else coalesce(n1.code, n2.code, s1.target, s2.target, st.target)
        end as taxonomy_code,
        case
            when regexp_full_match(p.source_value_upper, $nucc_shape) then 'specialty_source_value'
            when coalesce(n1.code, n2.code) is not null then 'NUCC specialty concept'
            when coalesce(s1.target, s2.target) is not null then 'mapping table: specialty concept'
            when st.target is not null then 'mapping table: specialty text'
        end as path
    from providers as p
    left join nucc_concept as n1 on n1.concept_id = p.specialty_source_concept_id
    left join nucc_concept as n2 on n2.concept_id = p.specialty_concept_id
    left join specialty_by_concept as s1 on s1.concept_id = p.specialty_source_concept_id
    left join specialty_by_concept as s2 on s2.concept_id = p.specialty_concept_id
    left join specialty_by_text as st on st.text = lower(trim(p.specialty_source_value))
)

select
    'provider' as source_table,
    provider_id as source_id,
    provider_id,
    npi,
    taxonomy_code,
    path,
    case
        when taxonomy_code is not null then null
        when coalesce(specialty_concept_id, 0) = 0
            and coalesce(specialty_source_concept_id, 0) = 0
            and specialty_source_value is null then 'provider has no specialty'
        else 'specialty is not pain medicine or not mapped to a NUCC taxonomy'
    end as problem,
    coalesce(specialty_source_value, cast(nullif(specialty_concept_id, 0) as varchar), '') as example
from resolved
