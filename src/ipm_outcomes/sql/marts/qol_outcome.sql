-- grain: one row per cohort person per instrument per horizon
-- Every cohort person gets a row for every instrument and horizon of the spec; a missing baseline or
-- follow-up assessment stays null (missing is kept and counted, never imputed here).
select
    b.person_id,
    i.instrument,
    h.horizon_days,
    bp.baseline_day,
    bp.baseline_score,
    f.followup_day,
    f.followup_score
from intermediate.cohort_base as b
cross join ref.qol_instrument as i
cross join ref.qol_horizon as h
left join intermediate.baseline_pro as bp
    on bp.person_id = b.person_id
    and bp.instrument = i.instrument
left join intermediate.qol_followup as f
    on f.person_id = b.person_id
    and f.instrument = i.instrument
    and f.horizon_days = h.horizon_days
