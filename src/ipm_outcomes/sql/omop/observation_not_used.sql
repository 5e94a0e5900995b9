-- grain: one row per CDM table (observation, measurement) per concept whose rows no mapping rule uses
-- A data steward reads this list to see what the adapter leaves behind (laboratory results, vital signs,
-- questionnaires it does not know): the load summary shows the 20 largest, the --report file all of them.
-- Rows a rule concerns but could not map (a PRO score out of range, an unknown employment answer) are in
-- omop.unmapped instead.
with used as (
    select source_table, source_id from omop.int_pro
    union all
    select source_table, source_id from omop.int_work_status
),

source_rows as (
    select
        'observation' as source_table,
        observation_id as source_id,
        coalesce(observation_concept_id, 0) as concept_id,
        observation_source_value as source_value
    from cdm.observation
    union all
    select
        'measurement' as source_table,
        measurement_id as source_id,
        coalesce(measurement_concept_id, 0) as concept_id,
        measurement_source_value as source_value
    from cdm.measurement
),

not_used as (
    select r.*
    from source_rows as r
    anti join used as u on u.source_table = r.source_table and u.source_id = r.source_id
)

select
    n.source_table,
    n.concept_id,
    any_value(c.vocabulary_id) as vocabulary_id,
    any_value(c.concept_code) as concept_code,
    any_value(c.concept_name) as concept_name,
    count(*) as rows,
    coalesce(list(distinct n.source_value order by n.source_value) filter (where n.source_value is not null), [])[1:3]
        as example_source_values
from not_used as n
left join cdm.concept as c on c.concept_id = n.concept_id
group by n.source_table, n.concept_id
order by rows desc, n.source_table, n.concept_id
