-- grain: one row per cohort person per available cost outcome
-- allowed_amount: allowed amounts of the claims on days 0 .. observed_day (index included), where
-- observed_day = followup_end_day (censoring or death). All claims = medical lines plus pharmacy fills;
-- related_only = the lines of intermediate.outcome_claim for the outcome (medical claims only).
-- complete: the cost history is whole: followed to followup_days, or died while followed (no costs
-- accrue after death). A person censored earlier (end of enrollment or data) has complete false and
-- must be handled by inverse probability of censoring weighting, never dropped; censor_day is the
-- day their follow-up stops.
-- The amounts are marts.cost_daily's, summed: one reading of the claims serves both marts.
with totals as (
    select person_id, outcome, sum(allowed_amount) as allowed
    from marts.cost_daily
    group by person_id, outcome
)

select
    b.person_id,
    o.outcome,
    coalesce(t.allowed, 0) as allowed_amount,
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
left join totals as t on t.person_id = b.person_id and t.outcome = o.outcome
where o.kind = 'cost'
    and a.available
