-- grain: one row per cohort person per instrument per horizon
-- Every cohort person gets a row for every instrument and horizon of the spec; a missing baseline or
-- follow-up assessment stays null (missing is kept and counted, never imputed here).
-- Baseline: the assessment closest to index in pro_baseline_start..pro_baseline_end days. Follow-up
-- at a horizon: the assessment closest to that day within +-qol_window_days. On a tie the earlier
-- assessment wins (a baseline from before index is less affected by what happened at index).
-- Scores of one instrument on one day are averaged. marts.cohort takes its baseline scores from
-- here, so the selection is made once.
with assessments as (
    select
        b.person_id,
        p.instrument,
        date_diff('day', b.index_date, p.assessment_date) as day,
        p.score
    from intermediate.cohort_base as b
    inner join raw.ehr_pro as p on p.person_id = b.person_id
    inner join ref.qol_instrument as i on i.instrument = p.instrument
),

candidates as (
    select person_id, instrument, cast(null as integer) as target_day, day, score, abs(day) as distance
    from assessments
    where day between $pro_baseline_start and $pro_baseline_end
    union all
    select a.person_id, a.instrument, h.horizon_days as target_day, a.day, a.score, abs(a.day - h.horizon_days) as distance
    from assessments as a
    inner join ref.qol_horizon as h on abs(a.day - h.horizon_days) <= $qol_window_days
),

-- one row per person per instrument per target (baseline = target_day null, or a horizon): every
-- assessment of the closest day ranks first (rank, not row_number), and their scores are averaged
selected as materialized (
    select person_id, instrument, target_day, min(day) as day, avg(score) as score
    from (
        select
            *,
            rank() over (partition by person_id, instrument, target_day order by distance, day) as closeness
        from candidates
    ) as ranked
    where closeness = 1
    group by person_id, instrument, target_day
)

select
    b.person_id,
    i.instrument,
    h.horizon_days,
    bp.day as baseline_day,
    bp.score as baseline_score,
    f.day as followup_day,
    f.score as followup_score
from intermediate.cohort_base as b
cross join ref.qol_instrument as i
cross join ref.qol_horizon as h
left join selected as bp
    on bp.person_id = b.person_id
    and bp.instrument = i.instrument
    and bp.target_day is null
left join selected as f
    on f.person_id = b.person_id
    and f.instrument = i.instrument
    and f.target_day = h.horizon_days
