-- grain: one row per person with an enrollment record
-- Gender and birth year come from the person's latest-starting enrollment span (the most recent
-- record wins when spans disagree); death is the earliest death date recorded on any span.
with ranked as (
    select
        person_id,
        gender,
        birth_year,
        row_number() over (
            partition by person_id
            order by enrollment_start_date desc, enrollment_end_date desc, gender, birth_year
        ) as recency
    from raw.eligibility
),

deaths as (
    select person_id, min(death_date) as death_date
    from raw.eligibility
    group by person_id
)

select r.person_id, r.gender, r.birth_year, d.death_date
from ranked as r
inner join deaths as d on d.person_id = r.person_id
where r.recency = 1
