-- grain: one row per cohort person per available cost outcome per day with an allowed amount
-- The day-by-day history behind marts.cost_outcome (days 0 .. observed_day, the same claims): what the
-- cost estimators need beyond the total, the partitioned inverse-probability-of-censoring weighted
-- mean (costs per interval) and clone-censor weighting (a clone's costs stop on the day it deviates
-- from its strategy). Lines without an allowed amount add nothing, as in the total.
with medical as (
    select
        b.person_id,
        date_diff('day', b.index_date, c.claim_start_date) as day,
        c.allowed_amount as allowed
    from intermediate.cohort_base as b
    inner join raw.medical_claim as c on c.person_id = b.person_id
    where c.claim_start_date >= b.index_date
        and date_diff('day', b.index_date, c.claim_start_date) <= b.followup_end_day
        and c.allowed_amount is not null
),

pharmacy as (
    select
        b.person_id,
        date_diff('day', b.index_date, p.dispensing_date) as day,
        p.allowed_amount as allowed
    from intermediate.cohort_base as b
    inner join raw.pharmacy_claim as p on p.person_id = b.person_id
    where p.dispensing_date >= b.index_date
        and date_diff('day', b.index_date, p.dispensing_date) <= b.followup_end_day
        and p.allowed_amount is not null
),

every_claim as (
    select person_id, day, sum(allowed) as allowed
    from (
        select person_id, day, allowed from medical
        union all
        select person_id, day, allowed from pharmacy
    ) as claims
    group by person_id, day
),

related as (
    select person_id, outcome, day, sum(allowed_amount) as allowed
    from intermediate.outcome_claim
    where allowed_amount is not null
    group by person_id, outcome, day
),

cost_outcomes as (
    select o.outcome, o.related_only
    from ref.secondary_outcome as o
    inner join marts.outcome_availability as a on a.outcome = o.outcome
    where o.kind = 'cost'
        and a.available
)

select e.person_id, o.outcome, e.day, e.allowed as allowed_amount
from every_claim as e
cross join cost_outcomes as o
where not o.related_only
union all
select r.person_id, r.outcome, r.day, r.allowed as allowed_amount
from related as r
inner join cost_outcomes as o on o.outcome = r.outcome
where o.related_only
