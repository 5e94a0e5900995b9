-- grain: one row per person per assessment per instrument (contract table ehr_pro)
select person_id, assessment_date, instrument, score
from omop.int_pro
where problem is null
order by person_id, assessment_date, instrument, score
