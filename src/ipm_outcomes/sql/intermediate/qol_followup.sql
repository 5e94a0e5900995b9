-- grain: one row per cohort person per instrument per horizon with an assessment near the horizon
-- The follow-up score at a horizon is the assessment closest to that day within +-qol_window_days;
-- on a tie the earlier one wins. No assessment in the window leaves the score missing (no row here).
with ranked as (
    select
        a.person_id,
        a.instrument,
        h.horizon_days,
        a.day,
        a.score,
        row_number() over (
            partition by a.person_id, a.instrument, h.horizon_days
            order by abs(a.day - h.horizon_days), a.day
        ) as closeness
    from intermediate.pro_assessment as a
    inner join ref.qol_horizon as h on abs(a.day - h.horizon_days) <= $qol_window_days
)

select person_id, instrument, horizon_days, day as followup_day, score as followup_score
from ranked
where closeness = 1
