-- grain: one row per cohort person with any allowed amount in the baseline window
-- Medical plus pharmacy allowed amounts from baseline_days before index through the index date
-- (lines without an allowed amount add nothing).
with medical as (
    select b.person_id, sum(m.allowed_amount) as allowed
    from intermediate.cohort_base as b
    inner join raw.medical_claim as m on m.person_id = b.person_id
    where m.claim_start_date <= b.index_date
        and date_diff('day', m.claim_start_date, b.index_date) <= $baseline_days
    group by b.person_id
),

pharmacy as (
    select b.person_id, sum(p.allowed_amount) as allowed
    from intermediate.cohort_base as b
    inner join raw.pharmacy_claim as p on p.person_id = b.person_id
    where p.dispensing_date <= b.index_date
        and date_diff('day', p.dispensing_date, b.index_date) <= $baseline_days
    group by b.person_id
)

select
    coalesce(m.person_id, p.person_id) as person_id,
    coalesce(m.allowed, 0) + coalesce(p.allowed, 0) as prior_year_allowed
from medical as m
full outer join pharmacy as p on p.person_id = m.person_id
