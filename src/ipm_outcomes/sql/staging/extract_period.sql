-- grain: one row (the extract as a whole)
-- data_end_date is the last date the extract can show an event; follow-up is censored there. The spec
-- may fix it (data_end_date); otherwise it is the latest service or record date in any event table.
-- Enrollment end dates are left out on purpose: plans report spans that run past the extract.
select coalesce(
    cast($data_end_date as date),
    greatest(
        (select max(claim_end_date) from raw.medical_claim),
        (select max(dispensing_date) from raw.pharmacy_claim),
        (select max(encounter_date) from raw.ehr_encounter),
        (select max(assessment_date) from raw.ehr_pro),
        (select max(status_date) from raw.ehr_work_status)
    )
) as data_end_date
