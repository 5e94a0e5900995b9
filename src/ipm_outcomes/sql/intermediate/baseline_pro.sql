-- grain: one row per cohort person per instrument with an assessment in the baseline window
-- The assessment closest to index in [pro_baseline_start, pro_baseline_end] days is the baseline;
-- on a tie the earlier one wins (a score from before index is less affected by what happened at index).
with ranked as (
    select
        person_id,
        instrument,
        day,
        score,
        row_number() over (partition by person_id, instrument order by abs(day), day) as closeness
    from intermediate.pro_assessment
    where day between $pro_baseline_start and $pro_baseline_end
)

select person_id, instrument, day as baseline_day, score as baseline_score
from ranked
where closeness = 1
