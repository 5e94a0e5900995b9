-- grain: one row per cohort person
-- The referral is the first IPM contact on or after index (day 0 counts) up to the end of follow-up;
-- a contact after follow-up ends cannot be seen, so days_to_referral is null (never within follow-up).
-- The procedure-only day is the sensitivity definition (claims with an ipm_procedures code only).
with contacts as (
    select
        b.person_id,
        c.contact_date,
        c.source,
        date_diff('day', b.index_date, c.contact_date) as day
    from intermediate.cohort_base as b
    inner join staging.ipm_contact as c on c.person_id = b.person_id
    where c.contact_date >= b.index_date
        and date_diff('day', b.index_date, c.contact_date) <= b.followup_end_day
),

firsts as (
    select
        person_id,
        min(contact_date) as referral_date,
        min(day) as days_to_referral,
        min(case when source = 'procedure' then day end) as procedure_day,
        min(case when source = 'claim_taxonomy' then day end) as claim_taxonomy_day,
        min(case when source = 'ehr_taxonomy' then day end) as ehr_taxonomy_day
    from contacts
    group by person_id
)

select
    b.person_id,
    f.referral_date,
    f.days_to_referral,
    f.procedure_day as days_to_referral_procedure_only,
    -- which source gave the first contact (a procedure outranks a visit on the same day)
    case
        when f.procedure_day = f.days_to_referral then 'procedure'
        when f.claim_taxonomy_day = f.days_to_referral then 'claim_taxonomy'
        when f.ehr_taxonomy_day = f.days_to_referral then 'ehr_taxonomy'
    end as referral_source
from intermediate.cohort_base as b
left join firsts as f on f.person_id = b.person_id
