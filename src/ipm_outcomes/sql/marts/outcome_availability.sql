-- grain: one row per secondary outcome of the spec (the negative controls as one row)
-- Whether the extract holds what the outcome needs, and why not. An unavailable outcome has no rows in
-- marts.secondary_outcome or marts.cost_outcome: a missing input is never read as "no event" or "no cost".
--   long-term opioid therapy: pharmacy_claim and ndc_reference rows
--   ED visits: a place_of_service_code on some medical claim line, or EHR encounters
--   costs: an allowed_amount on some medical claim line; for all-claims costs also on some pharmacy
--          claim when the extract has pharmacy claims (without pharmacy claims the cost is of medical
--          claims only, and detail says so)
-- Diagnosis and procedure outcomes need only medical claims, which every extract has.
-- The checks are uncorrelated scalar subqueries (counts), which every engine runs in a select list.
with present as (
    select
        (select count(*) from raw.pharmacy_claim) > 0 as pharmacy_rows,
        (select count(*) from raw.ndc_reference) > 0 as ndc_rows,
        (select count(allowed_amount) from raw.medical_claim) > 0 as medical_allowed,
        (select count(allowed_amount) from raw.pharmacy_claim) > 0 as pharmacy_allowed,
        (select count(place_of_service_code) from raw.medical_claim) > 0 as place_of_service,
        (select count(*) from raw.ehr_encounter) > 0 as encounters
),

checked as (
    select
        o.outcome,
        o.kind,
        case
            when o.kind = 'opioid' and not p.pharmacy_rows then 'the extract has no pharmacy_claim rows'
            when o.kind = 'opioid' and not p.ndc_rows then 'the extract has no ndc_reference rows'
            when o.kind = 'ed_visit' and not p.place_of_service and not p.encounters
                then 'no medical_claim line has a place_of_service_code and the extract has no ehr_encounter rows'
            when o.kind = 'cost' and not p.medical_allowed then 'no medical_claim line has an allowed_amount'
            when o.kind = 'cost' and not o.related_only and p.pharmacy_rows and not p.pharmacy_allowed
                then 'no pharmacy_claim line has an allowed_amount'
        end as reason,
        case
            when o.kind = 'cost' and not o.related_only and not p.pharmacy_rows
                then 'medical claims only: the extract has no pharmacy_claim rows'
        end as caveat
    from ref.secondary_outcome as o
    cross join present as p
)

select
    outcome,
    kind,
    reason is null as available,
    coalesce(reason, caveat) as detail
from checked
