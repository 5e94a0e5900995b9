-- grain: one row per cohort person per instrument per assessment day
-- Scores of the same instrument on the same day are averaged; days are counted from index.
select
    b.person_id,
    p.instrument,
    date_diff('day', b.index_date, p.assessment_date) as day,
    avg(p.score) as score
from intermediate.cohort_base as b
inner join raw.ehr_pro as p on p.person_id = b.person_id
inner join ref.qol_instrument as i on i.instrument = p.instrument
group by b.person_id, p.instrument, date_diff('day', b.index_date, p.assessment_date)
