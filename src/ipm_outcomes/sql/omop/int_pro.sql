-- grain: one row per OMOP measurement or observation row whose code is a patient-reported instrument of
-- the mapping table (rule pro_instrument, by LOINC code); rows with other codes are not PROs and not here
-- The code is looked up through the concept id, the source concept id, or the LOINC code in the source
-- value. The score is value_as_number (or a number written in the value text); a score outside the
-- instrument's range in the input contract is reported, not loaded.
with instrument_by_concept as (
    select concept_id, target as instrument from omop.int_rule_concept where rule = 'pro_instrument'
),

instrument_by_code as (
    select upper(concept_code) as code, target as instrument
    from omop_map.concept_map
    where rule = 'pro_instrument' and concept_code is not null
),

rows as (
    select
        'measurement' as source_table,
        m.measurement_id as source_id,
        m.person_id,
        m.measurement_date as assessment_date,
        coalesce(i1.instrument, i2.instrument, i3.instrument) as instrument,
        coalesce(m.value_as_number, try_cast(trim(m.value_source_value) as double)) as score,
        coalesce(m.measurement_source_value, cast(m.measurement_concept_id as varchar)) as example
    from cdm.measurement as m
    left join instrument_by_concept as i1 on i1.concept_id = m.measurement_concept_id
    left join instrument_by_concept as i2 on i2.concept_id = m.measurement_source_concept_id
    left join instrument_by_code as i3 on i3.code = upper(trim(m.measurement_source_value))
    where coalesce(i1.instrument, i2.instrument, i3.instrument) is not null

    union all

    select
        'observation' as source_table,
        o.observation_id as source_id,
        o.person_id,
        o.observation_date as assessment_date,
        coalesce(i1.instrument, i2.instrument, i3.instrument) as instrument,
        coalesce(
            o.value_as_number,
            try_cast(trim(o.value_as_string) as double),
            try_cast(trim(o.value_source_value) as double)
        ) as score,
        coalesce(o.observation_source_value, cast(o.observation_concept_id as varchar)) as example
    from cdm.observation as o
    left join instrument_by_concept as i1 on i1.concept_id = o.observation_concept_id
    left join instrument_by_concept as i2 on i2.concept_id = o.observation_source_concept_id
    left join instrument_by_code as i3 on i3.code = upper(trim(o.observation_source_value))
    where coalesce(i1.instrument, i2.instrument, i3.instrument) is not null
)

select
    r.source_table,
    r.source_id,
    r.person_id,
    r.assessment_date,
    r.instrument,
    r.score,
    'LOINC ' || r.instrument as path,
    case
        when r.person_id is null then 'person_id missing'
        when r.person_id not in (select person_id from omop.int_person where person_id is not null)
            then 'person_id not in the person table'
        when r.assessment_date is null then 'date missing or unreadable'
        when r.score is null then 'no numeric score'
        when r.score < pr.low or r.score > pr.high then 'score outside the instrument''s range'
    end as problem,
    r.instrument || ' = ' || coalesce(cast(r.score as varchar), 'empty') as example
from rows as r
left join omop_map.pro_range as pr on pr.instrument = r.instrument
