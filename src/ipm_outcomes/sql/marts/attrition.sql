-- grain: one row per population per attrition step, in step order
-- 'cohort': persons with an enrollment record, then each eligibility rule in order; a person counts
-- at a step when at least one of their episodes passes every rule up to it. 'rtw': the cohort, then
-- the return-to-work population. Step wording comes from ref.attrition_step (written from the spec).
with reached as (
    select 'cohort' as population, coalesce(e.rules_passed, 0) as reached
    from staging.person as p
    left join intermediate.person_eligibility as e on e.person_id = p.person_id
    union all
    select 'rtw' as population, case when in_rtw_population then 1 else 0 end as reached
    from intermediate.rtw_event
),

counts as (
    select population, reached, count(*) as persons
    from reached
    group by population, reached
),

remaining as (
    select
        s.population,
        s.step_order,
        s.rule,
        s.step,
        cast(coalesce(sum(c.persons), 0) as bigint) as remaining
    from ref.attrition_step as s
    left join counts as c
        on c.population = s.population
        and c.reached >= s.step_order
    group by s.population, s.step_order, s.rule, s.step
)

select
    population,
    step_order,
    rule,
    step,
    remaining,
    coalesce(lag(remaining) over (partition by population order by step_order) - remaining, 0) as excluded
from remaining
