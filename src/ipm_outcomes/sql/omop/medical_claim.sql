-- grain: one row per claim line (contract table medical_claim)
-- A claim is a visit (or, for records without a visit, a person-day). Its lines are its procedures, each
-- with its own date; a claim with diagnoses and no procedure gets one diagnosis-only line dated at its
-- first condition. Every line carries the claim's ICD-10-CM codes, in order, as the list diagnosis_codes
-- (the way claim-header diagnoses repeat on each line); the extract writer spreads the list over
-- diagnosis_code_1..N, N being the most codes any claim has. A procedure on a visit without diagnoses keeps
-- its line, with no diagnosis. All claims are 'professional': OMOP does not say which
-- bill a record came from. Allowed and paid amounts come from the cost table when it has rows for the
-- procedure (or for the visit, counted once, on line 1); otherwise they stay empty.
with diagnoses as (
    select claim_key, list(icd10cm_code order by diagnosis_position) as codes
    from omop.int_claim_diagnosis
    group by claim_key
),

procedure_lines as (
    select
        claim_key,
        person_id,
        visit_occurrence_id,
        provider_id,
        source_id as procedure_occurrence_id,
        service_date as start_date,
        service_date as end_date,
        hcpcs_code,
        hcpcs_modifier_1,
        row_number() over (
            partition by claim_key order by service_date, lpad(source_id, 20, '0'), hcpcs_code
        ) as line_number
    from omop.int_procedure
    where problem is null
),

diagnosis_only_lines as (
    select
        claim_key,
        any_value(person_id) as person_id,
        any_value(visit_occurrence_id) as visit_occurrence_id,
        arg_min(provider_id, service_date) as provider_id,
        cast(null as varchar) as procedure_occurrence_id,
        min(service_date) as start_date,
        min(service_date) as end_date,
        cast(null as varchar) as hcpcs_code,
        cast(null as varchar) as hcpcs_modifier_1,
        1 as line_number
    from omop.int_condition
    where problem is null and claim_key not in (select claim_key from procedure_lines)
    group by claim_key
),

lines as (
    select * from procedure_lines
    union all
    select * from diagnosis_only_lines
),

provider as (
    select provider_id, max(taxonomy_code) as taxonomy_code, max(npi) as npi
    from omop.int_provider
    group by provider_id
),

visit as (
    select visit_occurrence_id, any_value(provider_id) as provider_id, any_value(place_of_service_code) as pos
    from omop.int_visit
    group by visit_occurrence_id
),

procedure_cost as (
    select cost_event_id, sum(amount_allowed) as allowed, sum(coalesce(paid_by_payer, total_paid)) as paid
    from cdm.cost
    where lower(cost_domain_id) = 'procedure'
    group by cost_event_id
),

visit_cost as (
    select cost_event_id, sum(amount_allowed) as allowed, sum(coalesce(paid_by_payer, total_paid)) as paid
    from cdm.cost
    where lower(cost_domain_id) = 'visit'
    group by cost_event_id
),

priced as (
    select
        l.*,
        case when l.line_number = 1 then vc.allowed end as visit_allowed,
        case when l.line_number = 1 then vc.paid end as visit_paid,
        pc.allowed as procedure_allowed,
        pc.paid as procedure_paid
    from lines as l
    left join procedure_cost as pc on pc.cost_event_id = l.procedure_occurrence_id
    left join visit_cost as vc on vc.cost_event_id = l.visit_occurrence_id
)

select
    'omop-' || l.claim_key as claim_id,
    cast(l.line_number as integer) as claim_line_number,
    l.person_id,
    'professional' as claim_type,
    l.start_date as claim_start_date,
    l.end_date as claim_end_date,
    v.pos as place_of_service_code,
    coalesce(pl.npi, pv.npi) as rendering_npi,
    coalesce(pl.taxonomy_code, pv.taxonomy_code) as rendering_taxonomy_code,
    l.hcpcs_code,
    l.hcpcs_modifier_1,
    case when l.procedure_allowed is not null or l.visit_allowed is not null
        then coalesce(l.procedure_allowed, 0) + coalesce(l.visit_allowed, 0) end as allowed_amount,
    case when l.procedure_paid is not null or l.visit_paid is not null
        then coalesce(l.procedure_paid, 0) + coalesce(l.visit_paid, 0) end as paid_amount,
    coalesce(d.codes, []) as diagnosis_codes
from priced as l
left join diagnoses as d on d.claim_key = l.claim_key
left join visit as v on v.visit_occurrence_id = l.visit_occurrence_id
left join provider as pl on pl.provider_id = l.provider_id
left join provider as pv on pv.provider_id = v.provider_id
order by claim_id, claim_line_number
