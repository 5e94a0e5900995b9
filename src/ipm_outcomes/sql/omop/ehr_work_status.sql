-- grain: one row per person per recorded work status (contract table ehr_work_status)
select person_id, status_date, work_status
from omop.int_work_status
where problem is null
order by person_id, status_date, work_status
