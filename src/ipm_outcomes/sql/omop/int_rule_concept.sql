-- grain: one row per mapping rule per OMOP concept id (omop_mapping/concept_map.csv resolved to concept ids)
-- A rule row names a concept by concept_id, by (vocabulary_id, concept_code) through the source's own
-- concept table, or both; the vocabulary route keeps the mapping table free of site-specific ids.
-- SOPT payer codes are hierarchical (95 = worker's compensation, 951.. its kinds), so payer rows match
-- by code prefix and the longest prefix wins.
with by_id as (
    select rule, concept_id, target
    from omop_map.concept_map
    where concept_id is not null
),

by_code as (
    select m.rule, c.concept_id, m.target
    from omop_map.concept_map as m
    inner join cdm.concept as c
        on c.vocabulary_id = m.vocabulary_id
        and c.concept_code = m.concept_code
    where m.concept_code is not null
        and m.rule <> 'payer_sopt'
),

payer_prefix as (
    select
        'payer_sopt' as rule,
        c.concept_id,
        arg_max(m.target, length(m.concept_code)) as target
    from omop_map.concept_map as m
    inner join cdm.concept as c
        on c.vocabulary_id = m.vocabulary_id
        and starts_with(c.concept_code, m.concept_code)
    where m.rule = 'payer_sopt'
    group by c.concept_id
)

select distinct rule, concept_id, target from by_id
union
select distinct rule, concept_id, target from by_code
union
select rule, concept_id, target from payer_prefix
