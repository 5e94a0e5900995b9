-- grain: one row per cohort person (index = first episode passing every rule)
-- Follow-up days are counted from index (day 0). censor_day is the administrative end of follow-up:
-- the earliest of the end of the continuous-enrollment span holding index, the end of the data and
-- followup_days. followup_end_day also stops at death.
with indexed as (
    select person_id, index_date
    from intermediate.person_eligibility
    where index_date is not null
),

payer as (
    -- payer on the enrollment row covering index; when index falls in a bridged gap, the latest row before it
    select
        i.person_id,
        e.payer_type,
        row_number() over (
            partition by i.person_id
            order by
                case when e.enrollment_end_date >= i.index_date then 0 else 1 end,
                e.enrollment_start_date desc,
                e.payer_type
        ) as preference
    from indexed as i
    inner join raw.eligibility as e
        on e.person_id = i.person_id
        and e.enrollment_start_date <= i.index_date
),

days as (
    select
        i.person_id,
        i.index_date,
        p.gender as sex,
        cast(extract(year from i.index_date) as integer) - p.birth_year as age,
        cast(extract(year from i.index_date) as integer) as index_year,
        y.payer_type,
        s.span_end as enrollment_end_date,
        x.data_end_date,
        p.death_date,
        date_diff('day', i.index_date, s.span_end) as enrollment_end_day,
        date_diff('day', i.index_date, x.data_end_date) as data_end_day,
        date_diff('day', i.index_date, p.death_date) as death_day
    from indexed as i
    inner join staging.person as p on p.person_id = i.person_id
    inner join payer as y on y.person_id = i.person_id and y.preference = 1
    inner join staging.enrollment_span as s
        on s.person_id = i.person_id
        and s.span_start <= i.index_date
        and s.span_end >= i.index_date
    cross join staging.extract_period as x
),

censored as (
    select
        *,
        least(coalesce(enrollment_end_day, $followup_days), coalesce(data_end_day, $followup_days), $followup_days)
            as censor_day
    from days
)

select
    person_id,
    index_date,
    sex,
    age,
    index_year,
    payer_type,
    enrollment_end_date,
    data_end_date,
    death_date,
    enrollment_end_day,
    data_end_day,
    death_day,
    censor_day,
    case
        when censor_day = $followup_days then 'followup_end'
        when censor_day = data_end_day then 'data_end'
        else 'enrollment_end'
    end as censor_reason,
    least(censor_day, coalesce(death_day, censor_day)) as followup_end_day -- not null: censor_day is never null
from censored
