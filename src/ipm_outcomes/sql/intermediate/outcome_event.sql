-- grain: one row per cohort person per time-to-event secondary outcome per day (from index) the outcome occurs
-- Days run up to the end of follow-up; only the diagnosis outcomes (and negative controls) reach back
-- before index, for their "new" baseline window. Per kind:
--   diagnosis, negative_control: intermediate.outcome_diagnosis
--   procedure: a claim line with a code in the outcome's procedure_valuesets (staging.procedure_event)
--   ed_visit: a claim line in one of the outcome's places of service on a claim with its diagnosis, or an
--             EHR encounter of one of its encounter types with the diagnosis as primary diagnosis
--   opioid: the long-term opioid therapy day (intermediate.long_term_opioid)
with procedures as (
    select b.person_id, v.outcome, date_diff('day', b.index_date, p.event_date) as day
    from intermediate.cohort_base as b
    inner join staging.procedure_event as p on p.person_id = b.person_id
    inner join ref.outcome_valueset as v on v.valueset = p.valueset and v.role = 'procedure'
    inner join ref.secondary_outcome as o on o.outcome = v.outcome
    where o.kind = 'procedure'
        and p.event_date >= b.index_date
        and date_diff('day', b.index_date, p.event_date) <= b.followup_end_day
),

ed_claims as (
    select c.person_id, c.outcome, c.day
    from intermediate.outcome_claim as c
    inner join ref.secondary_outcome as o on o.outcome = c.outcome
    inner join ref.outcome_setting as s
        on s.outcome = c.outcome
        and s.setting = 'place_of_service'
        and s.value = c.place_of_service_code
    where o.kind = 'ed_visit'
),

ed_encounters as (
    select b.person_id, m.outcome, date_diff('day', b.index_date, e.encounter_date) as day
    from intermediate.cohort_base as b
    inner join raw.ehr_encounter as e on e.person_id = b.person_id
    inner join intermediate.outcome_code_map as m on m.code = e.primary_diagnosis_code
    inner join ref.outcome_setting as s
        on s.outcome = m.outcome
        and s.setting = 'encounter_type'
        and s.value = e.encounter_type
    where m.kind = 'ed_visit'
        and e.encounter_date >= b.index_date
        and date_diff('day', b.index_date, e.encounter_date) <= b.followup_end_day
        and (m.valid_from is null or e.encounter_date >= m.valid_from)
        and (m.valid_to is null or e.encounter_date <= m.valid_to)
),

opioid as (
    select l.person_id, o.outcome, l.ltot_day as day
    from intermediate.long_term_opioid as l
    cross join ref.secondary_outcome as o
    where o.kind = 'opioid'
        and l.ltot_day is not null
)

select person_id, outcome, day from intermediate.outcome_diagnosis
union
select person_id, outcome, day from procedures
union
select person_id, outcome, day from ed_claims
union
select person_id, outcome, day from ed_encounters
union
select person_id, outcome, day from opioid
