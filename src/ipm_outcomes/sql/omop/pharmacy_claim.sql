-- grain: one row per pharmacy claim line (contract table pharmacy_claim): one OMOP drug exposure each
-- drug_exposure_id is not always unique (the Eunomia sample repeats ids for different exposures), so
-- loaded exposures sharing an id become lines of one claim rather than being dropped.
with drug_cost as (
    select cost_event_id, sum(amount_allowed) as allowed, sum(coalesce(paid_by_payer, total_paid)) as paid
    from cdm.cost
    where lower(cost_domain_id) = 'drug'
    group by cost_event_id
)

select
    'omop-drug-' || d.drug_exposure_id as claim_id,
    cast(row_number() over (
        partition by d.drug_exposure_id
        order by d.dispensing_date, d.person_id, d.ndc_code, d.quantity, d.days_supply, d.source_id
    ) as integer) as claim_line_number,
    d.person_id,
    d.dispensing_date,
    d.ndc_code,
    d.quantity,
    d.days_supply,
    c.allowed as allowed_amount,
    c.paid as paid_amount
from omop.int_drug as d
left join drug_cost as c on c.cost_event_id = d.drug_exposure_id
where d.problem is null
order by d.person_id, d.dispensing_date, claim_id, claim_line_number
