-- grain: one row per cohort person
-- in_rtw_population: a population status recorded on days rtw_window_start..rtw_window_end.
-- rtw_day: first return-to-work record after index (day >= 1: a status recorded at the index visit
-- describes the patient as they present, not an outcome). competing_day: first competing status after
-- index; competing_status names it (alphabetically first on a same-day tie).
with per_person as (
    select
        person_id,
        max(case when role = 'population' and day between $rtw_window_start and $rtw_window_end then 1 else 0 end)
            as in_population,
        min(case when role = 'event' and day >= 1 then day end) as rtw_day,
        min(case when role = 'competing' and day >= 1 then day end) as competing_day
    from intermediate.work_status
    group by person_id
),

competing as (
    select w.person_id, min(w.work_status) as competing_status
    from intermediate.work_status as w
    inner join per_person as p
        on p.person_id = w.person_id
        and w.role = 'competing'
        and w.day = p.competing_day
    group by w.person_id
)

select
    b.person_id,
    coalesce(p.in_population, 0) = 1 as in_rtw_population,
    p.rtw_day,
    p.competing_day,
    c.competing_status
from intermediate.cohort_base as b
left join per_person as p on p.person_id = b.person_id
left join competing as c on c.person_id = b.person_id
