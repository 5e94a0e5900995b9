-- grain: one row per row of the OMOP observation_period table
-- An observation period is the OMOP analogue of an enrollment span. OMOP keeps no line of business on
-- the person, so payer_type comes from the payer_plan_period that overlaps the span for the most days
-- (SOPT payer concept, then payer/plan source text); without one the span is 'other'.
with payer_of_plan as (
    select
        pp.person_id,
        pp.payer_plan_period_start_date as start_date,
        pp.payer_plan_period_end_date as end_date,
        coalesce(rc.target, pt.target, ps.target) as payer_type
    from cdm.payer_plan_period as pp
    left join omop.int_rule_concept as rc
        on rc.rule = 'payer_sopt' and rc.concept_id = pp.payer_concept_id
    left join omop_map.concept_map as pt
        on pt.rule = 'payer_text' and pt.text = lower(pp.payer_source_value)
    left join omop_map.concept_map as ps
        on ps.rule = 'payer_text' and ps.text = lower(pp.plan_source_value)
    where pp.payer_plan_period_start_date is not null and pp.payer_plan_period_end_date is not null
),

periods as (
    select
        op.observation_period_id,
        op.person_id,
        op.observation_period_start_date as start_date,
        op.observation_period_end_date as end_date,
        row_number() over (
            order by op.person_id, op.observation_period_start_date, op.observation_period_end_date,
                op.observation_period_id
        ) as period_row,
        count(*) over (partition by op.person_id, op.observation_period_start_date) as n_same_start
    from cdm.observation_period as op
),

payer_of_period as (
    select
        p.period_row,
        arg_max(
            pp.payer_type,
            date_diff('day', greatest(p.start_date, pp.start_date), least(p.end_date, pp.end_date))
        ) as payer_type
    from periods as p
    inner join payer_of_plan as pp
        on pp.person_id = p.person_id
        and pp.start_date <= p.end_date
        and pp.end_date >= p.start_date
    where pp.payer_type is not null
    group by p.period_row
)

select
    'observation_period' as source_table,
    coalesce(p.observation_period_id, cast(p.period_row as varchar)) as source_id,
    p.person_id,
    p.start_date as enrollment_start_date,
    p.end_date as enrollment_end_date,
    coalesce(o.payer_type, 'other') as payer_type,
    case
        when o.payer_type is null then 'payer_type other: no mapped payer_plan_period overlaps'
        else 'payer_plan_period'
    end as path,
    case
        when p.person_id is null then 'person_id missing'
        when p.person_id not in (select person_id from omop.int_person where person_id is not null)
            then 'person_id not in the person table'
        when p.person_id in (select person_id from omop.int_person where problem is not null)
            then 'person not loaded (see person)'
        when p.start_date is null or p.end_date is null
            then 'observation period start or end date missing or unreadable'
        when p.end_date < p.start_date then 'observation period ends before it starts'
        when p.n_same_start > 1
            then 'two observation periods start on the same day'
    end as problem,
    coalesce(p.person_id, '') as example
from periods as p
left join payer_of_period as o on o.period_row = p.period_row
