-- grain: one row per person (with an enrollment record) who has at least one lbp diagnosis
-- A person's index date is their first episode that passes every rule; rules_passed is the furthest
-- attrition step any of their episodes reached (1 = lbp diagnosis but no candidate episode), and
-- excluded_by names the rule that stopped them (null when eligible).
with lbp_persons as (
    select distinct d.person_id
    from staging.diagnosis_event as d
    inner join staging.person as p on p.person_id = d.person_id
    where d.valueset = 'lbp'
),

best as (
    select
        person_id,
        max(rules_passed) as rules_passed,
        min(case when rules_passed = 6 then episode_date end) as index_date
    from intermediate.episode_eligibility
    group by person_id
)

select
    l.person_id,
    coalesce(b.rules_passed, 1) as rules_passed,
    b.index_date,
    s.rule as excluded_by
from lbp_persons as l
left join best as b on b.person_id = l.person_id
left join ref.attrition_step as s
    on s.population = 'cohort'
    and s.step_order = coalesce(b.rules_passed, 1) + 1
