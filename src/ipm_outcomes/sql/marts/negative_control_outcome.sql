-- grain: one row per cohort person per negative-control outcome (one per group of the negative-control value set)
-- The same follow-up rules as marts.secondary_outcome: day 0 = index, events on days 1 .. censor_day,
-- death competing (event 2); in_population false when the condition was diagnosed from index -
-- new_lookback_days through index (only new occurrences are outcomes, as in OHDSI studies).
select
    person_id,
    outcome,
    in_population,
    time_days,
    event,
    event_type,
    censor_day,
    censor_reason
from intermediate.outcome_time
where outcome_class = 'negative_control'
