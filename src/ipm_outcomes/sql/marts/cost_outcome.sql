-- grain: one row per cohort person per available cost outcome
-- allowed_amount: allowed amounts of the claims on days 0 .. observed_day (index included), where
-- observed_day = followup_end_day (censoring or death). All claims = medical lines plus pharmacy fills;
-- related_only = the lines of intermediate.outcome_claim for the outcome (medical claims only).
-- complete: the cost history is whole: followed to followup_days, or died while followed (no costs
-- accrue after death). A person censored earlier (end of enrollment or data) has complete false and
-- must be handled by inverse probability of censoring weighting, never dropped; censor_day is the
-- day their follow-up stops.
with medical as (
    select b.person_id, sum(c.allowed_amount) as allowed
    from intermediate.cohort_base as b
    inner join raw.medical_claim as c on c.person_id = b.person_id
    where c.claim_start_date >= b.index_date
        and date_diff('day', b.index_date, c.claim_start_date) <= b.followup_end_day
    group by b.person_id
),

pharmacy as (
    select b.person_id, sum(p.allowed_amount) as allowed
    from intermediate.cohort_base as b
    inner join raw.pharmacy_claim as p on p.person_id = b.person_id
    where p.dispensing_date >= b.index_date
        and date_diff('day', b.index_date, p.dispensing_date) <= b.followup_end_day
    group by b.person_id
),

related as (
    select person_id, outcome, sum(allowed_amount) as allowed
    from intermediate.outcome_claim
    group by person_id, outcome
)

select
    b.person_id,
    o.outcome,
    case
        when o.related_only then coalesce(r.allowed, 0)
        else coalesce(m.allowed, 0) + coalesce(p.allowed, 0)
    end as allowed_amount,
    b.followup_end_day as observed_day,
    b.censor_day = $followup_days
        or (b.death_day is not null and b.death_day <= b.censor_day) as complete,
    case
        when b.death_day is not null and b.death_day <= b.censor_day then 'death'
        else b.censor_reason
    end as end_reason,
    b.censor_day
from intermediate.cohort_base as b
cross join ref.secondary_outcome as o
inner join marts.outcome_availability as a on a.outcome = o.outcome
left join medical as m on m.person_id = b.person_id
left join pharmacy as p on p.person_id = b.person_id
left join related as r on r.person_id = b.person_id and r.outcome = o.outcome
where o.kind = 'cost'
    and a.available
