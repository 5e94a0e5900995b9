-- grain: one row per row of the OMOP person table
-- Gender comes from gender_concept_id (8507 male, 8532 female), then gender_source_value text; anything
-- else is 'unknown' (a mapped value, not a loss). A person without year_of_birth cannot be aged, so the
-- person and their observation periods are reported and not loaded.
with gender_by_concept as (
    select concept_id, target from omop.int_rule_concept where rule = 'gender'
),

gender_by_text as (
    select text, target from omop_map.concept_map where rule = 'gender' and text is not null
),

persons as (
    select
        p.person_id,
        coalesce(gc.target, gt.target, 'unknown') as gender,
        case
            when gc.target is not null then 'gender_concept_id'
            when gt.target is not null then 'gender_source_value'
            else 'gender unknown'
        end as path,
        p.year_of_birth,
        p.location_id,
        p.gender_concept_id
    from cdm.person as p
    left join gender_by_concept as gc on gc.concept_id = p.gender_concept_id
    left join gender_by_text as gt on gt.text = lower(p.gender_source_value)
),

deaths as (
    select person_id, min(death_date) as death_date
    from cdm.death
    where person_id is not null and death_date is not null
    group by person_id
),

states as (
    select location_id, any_value(upper(state)) as state
    from cdm.location
    where regexp_full_match(upper(state), '[A-Z]{2}')
    group by location_id
),

duplicated as (
    select person_id from cdm.person group by person_id having count(*) > 1
)

select
    'person' as source_table,
    p.person_id as source_id,
    p.person_id,
    p.gender,
    p.path,
    cast(p.year_of_birth as integer) as birth_year,
    d.death_date,
    s.state,
    case
        when p.person_id is null then 'person_id missing'
        when p.person_id in (select person_id from duplicated) then 'person_id appears more than once'
        when p.year_of_birth is null then 'year_of_birth missing or unreadable'
    end as problem,
    coalesce(p.person_id, '') as example
from persons as p
left join deaths as d on d.person_id = p.person_id
left join states as s on s.location_id = p.location_id
