-- grain: one row per person per observation period (contract table eligibility)
select
    op.person_id,
    p.gender,
    p.birth_year,
    p.death_date,
    op.enrollment_start_date,
    op.enrollment_end_date,
    op.payer_type,
    p.state
from omop.int_observation_period as op
inner join omop.int_person as p on p.person_id = op.person_id
where op.problem is null and p.problem is null
order by op.person_id, op.enrollment_start_date
