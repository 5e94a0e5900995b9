-- grain: one row per claim (claim_key) per distinct ICD-10-CM code, numbered in diagnosis order
-- Primary-status conditions come first (a claim's first diagnosis is its principal one), then by date
-- and source row. Every code is kept: the contract's medical_claim has as many diagnosis columns as the
-- claim with the most codes needs.
with condition_codes as (
    select claim_key, unnest(codes) as icd10cm_code, is_primary, service_date, source_id
    from omop.int_condition
    where problem is null
),

codes as (
    select
        claim_key,
        icd10cm_code,
        max(cast(is_primary as integer)) as is_primary,
        min(service_date) as first_date,
        min(lpad(source_id, 20, '0')) as first_row
    from condition_codes
    group by claim_key, icd10cm_code
)

select
    claim_key,
    icd10cm_code,
    row_number() over (
        partition by claim_key order by is_primary desc, first_date, first_row, icd10cm_code
    ) as diagnosis_position
from codes
