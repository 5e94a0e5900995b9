-- grain: one row per OMOP source table per target table per mapping path, counting the source rows used
with enrolled as (
    select distinct person_id from omop.int_observation_period where problem is null
),

used as (
    select source_table, 'eligibility' as target_table, path
    from omop.int_person where problem is null and person_id in (select person_id from enrolled)
    union all
    select source_table, 'eligibility', path from omop.int_observation_period where problem is null
    union all
    select 'death', 'eligibility', 'death_date'
    from cdm.death where person_id in (select person_id from enrolled)
    union all
    select source_table, 'medical_claim', path from omop.int_condition where problem is null
    union all
    select source_table, 'medical_claim', path from omop.int_procedure where problem is null
    union all
    select source_table, 'pharmacy_claim', path from omop.int_drug where problem is null
    union all
    select source_table, 'ehr_encounter', path from omop.int_visit where problem is null
    union all
    select source_table, 'medical_claim, ehr_encounter', path from omop.int_provider where problem is null
    union all
    select source_table, 'ehr_pro', path from omop.int_pro where problem is null
    union all
    select source_table, 'ehr_work_status', path from omop.int_work_status where problem is null
)

select source_table, target_table, path, count(*) as rows
from used
group by all
order by source_table, target_table, rows desc, path
