-- grain: one row per OMOP observation row that records employment: the LOINC 67875-5 "Employment status -
-- current" question (rule employment_question) with its answer, or a SNOMED CT employment finding (full-time
-- or part-time employment, unemployed, not in labor force, retired: rule employment_finding) as the
-- observation concept itself; other observations are not work status and not here
-- The answer is looked up as a LOINC answer concept (value_as_concept_id), as an LA code written in
-- value_source_value / value_as_string, or as the answer's text; the mapping table gives the work
-- status (full or part time -> working, unemployed -> unemployed, not in labor force -> off_work unless
-- retired). An answer it does not list is reported, not guessed.
with question_concept as (
    select concept_id from omop.int_rule_concept where rule = 'employment_question'
),

question_code as (
    select upper(concept_code) as code
    from omop_map.concept_map
    where rule = 'employment_question' and concept_code is not null
),

answer_by_concept as (
    select concept_id, target from omop.int_rule_concept where rule = 'employment_answer'
),

answer_by_code as (
    select upper(concept_code) as code, target
    from omop_map.concept_map
    where rule = 'employment_answer' and concept_code is not null
),

answer_by_text as (
    select text, target from omop_map.concept_map where rule = 'employment_answer' and text is not null
),

finding_concept as (
    select concept_id, target from omop.int_rule_concept where rule = 'employment_finding'
),

questions as (
    select o.*
    from cdm.observation as o
    where o.observation_concept_id in (select concept_id from question_concept)
        or o.observation_source_concept_id in (select concept_id from question_concept)
        or upper(trim(o.observation_source_value)) in (select code from question_code)
),

answered as (
    select
        'observation' as source_table,
        q.observation_id as source_id,
        q.person_id,
        q.observation_date as status_date,
        coalesce(a1.target, a0.target, a2.target, a3.target, a4.target, a5.target) as work_status,
        case
            when a1.target is not null then 'value_as_concept_id'
            when a0.target is not null then 'value_as_concept_id (SNOMED CT employment finding)'
            when coalesce(a2.target, a3.target) is not null then 'LA answer code'
            when coalesce(a4.target, a5.target) is not null then 'answer text'
        end as path,
        case
            when q.person_id is null then 'person_id missing'
            when q.person_id not in (select person_id from omop.int_person where person_id is not null)
                then 'person_id not in the person table'
            when q.observation_date is null then 'observation_date missing or unreadable'
            when coalesce(a1.target, a0.target, a2.target, a3.target, a4.target, a5.target) is null
                then 'employment answer not in the mapping table'
        end as problem,
        coalesce(
            q.value_source_value, q.value_as_string, cast(nullif(q.value_as_concept_id, 0) as varchar), 'empty answer'
        ) as example
    from questions as q
    left join answer_by_concept as a1 on a1.concept_id = q.value_as_concept_id
    left join finding_concept as a0 on a0.concept_id = q.value_as_concept_id
    left join answer_by_code as a2 on a2.code = upper(trim(q.value_source_value))
    left join answer_by_code as a3 on a3.code = upper(trim(q.value_as_string))
    left join answer_by_text as a4 on a4.text = lower(trim(q.value_source_value))
    left join answer_by_text as a5 on a5.text = lower(trim(q.value_as_string))
)

select * from answered

union all

select
    'observation' as source_table,
    o.observation_id as source_id,
    o.person_id,
    o.observation_date as status_date,
    f.target as work_status,
    'SNOMED CT employment finding' as path,
    case
        when o.person_id is null then 'person_id missing'
        when o.person_id not in (select person_id from omop.int_person where person_id is not null)
            then 'person_id not in the person table'
        when o.observation_date is null then 'observation_date missing or unreadable'
    end as problem,
    coalesce(o.observation_source_value, cast(o.observation_concept_id as varchar)) as example
from cdm.observation as o
inner join finding_concept as f
    on f.concept_id = case
        when o.observation_concept_id in (select concept_id from finding_concept) then o.observation_concept_id
        else o.observation_source_concept_id
    end
