-- grain: one row (the extract as a whole)
-- data_end_date is the last date the extract can show an event; follow-up is censored there. The spec
-- may fix it (data_end_date); otherwise it is the latest service or record date in any event table.
-- Enrollment end dates are left out on purpose: plans report spans that run past the extract.
-- The latest of the tables' latest dates is a max over their union, not greatest(): an empty table's
-- max is NULL, which greatest() skips on DuckDB and Spark but returns on Trino and BigQuery.
select coalesce(
    cast($data_end_date as date),
    (
        select max(last_date)
        from (
            select max(claim_end_date) as last_date from raw.medical_claim
            union all
            select max(dispensing_date) as last_date from raw.pharmacy_claim
            union all
            select max(encounter_date) as last_date from raw.ehr_encounter
            union all
            select max(assessment_date) as last_date from raw.ehr_pro
            union all
            select max(status_date) as last_date from raw.ehr_work_status
        ) as table_last_dates
    )
) as data_end_date
