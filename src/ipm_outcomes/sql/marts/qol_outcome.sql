-- grain: one row per cohort person per instrument per horizon
-- Every cohort person gets a row for every instrument and horizon of the spec; a missing baseline or
-- follow-up assessment stays null (missing is kept and counted, never imputed here).
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
left join intermediate.pro_selected as bp
    on bp.person_id = b.person_id
    and bp.instrument = i.instrument
    and bp.target_day is null
left join intermediate.pro_selected as f
    on f.person_id = b.person_id
    and f.instrument = i.instrument
    and f.target_day = h.horizon_days
