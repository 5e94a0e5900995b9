-- grain: one row per row of the OMOP drug_exposure table
-- A pharmacy fill needs an NDC: from the source concept (NDC vocabulary), the source value when it has an
-- NDC shape (11 digits, or 10 digits hyphenated 4-4-2, 5-3-2 or 5-4-1; ingest normalises) and no source
-- concept says otherwise, or the NDC concept that 'Maps to' the standard drug concept. Every exposure
-- record is taken as a fill (OMOP mixes dispensings and prescriptions; drug_type_concept_id tells them
-- apart but a written prescription is still the best exposure signal the source has).
-- days_supply, when empty or 0 (OMOP's usual 'unknown'), is the exposure's end minus start plus one.
with ndc_concept as (
    select concept_id, regexp_replace(trim(concept_code), '-', '', 'g') as code
    from cdm.concept
    where vocabulary_id = 'NDC' and regexp_full_match(regexp_replace(trim(concept_code), '-', '', 'g'), $ndc_shape)
),

ndc_mapped_to_standard as (
    select cr.concept_id_2 as concept_id, min(n.code) as code, count(distinct n.code) as n_codes
    from cdm.concept_relationship as cr
    inner join ndc_concept as n on n.concept_id = cr.concept_id_1
    where cr.relationship_id = 'Maps to' and cr.invalid_reason is null
    group by cr.concept_id_2
),

drugs as (
    select
        de.*,
        sc.vocabulary_id as source_vocabulary,
        ns.code as source_concept_code,
        trim(de.drug_source_value) as source_value_code
    from cdm.drug_exposure as de
    left join cdm.concept as sc
        on sc.concept_id = de.drug_source_concept_id and de.drug_source_concept_id <> 0
    left join ndc_concept as ns on ns.concept_id = de.drug_source_concept_id
),

coded as (
    select
        d.*,
        regexp_full_match(d.source_value_code, '[0-9]{11}|[0-9]{5}-[0-9]{4}-[0-9]{2}')
        or regexp_full_match(d.source_value_code, '[0-9]{4}-[0-9]{4}-[0-9]{2}|[0-9]{5}-[0-9]{3}-[0-9]{2}')
        or regexp_full_match(d.source_value_code, '[0-9]{5}-[0-9]{4}-[0-9]')
            as source_value_is_ndc,
        m.code as mapped_code,
        m.n_codes
    from drugs as d
    left join ndc_mapped_to_standard as m on m.concept_id = d.drug_concept_id
),

resolved as (
    select
        c.*,
        case
            when c.source_concept_code is not null then c.source_concept_code
            when c.source_vocabulary is null and c.source_value_is_ndc then c.source_value_code
            else c.mapped_code
        end as ndc_code,
        case
            when c.source_concept_code is not null then 'drug_source_concept_id'
            when c.source_vocabulary is null and c.source_value_is_ndc then 'drug_source_value'
            when c.n_codes = 1 then 'concept_relationship Maps to'
            when c.n_codes > 1 then 'concept_relationship Maps to (first of several NDCs)'
        end as path,
        case
            when c.days_supply > 0 then c.days_supply
            when c.drug_exposure_end_date >= c.drug_exposure_start_date
                then date_diff('day', c.drug_exposure_start_date, c.drug_exposure_end_date) + 1
        end as supply_days
    from coded as c
)

select
    'drug_exposure' as source_table,
    drug_exposure_id as source_id,
    drug_exposure_id,
    person_id,
    drug_exposure_start_date as dispensing_date,
    ndc_code,
    quantity,
    cast(supply_days as integer) as days_supply,
    path,
    case
        when person_id is null then 'person_id missing'
        when person_id not in (select person_id from omop.int_person where person_id is not null)
            then 'person_id not in the person table'
        when drug_exposure_start_date is null then 'drug_exposure_start_date missing or unreadable'
        when ndc_code is null then 'no NDC (source is not an NDC and no NDC concept maps to the drug)'
        when quantity is null then 'quantity missing'
        when supply_days is null then 'days_supply missing and no usable end date'
    end as problem,
    case when quantity <= 0 then 'quantity is 0 or negative (unknown in many OMOP sources): loaded as given' end
        as doubtful,
    coalesce(drug_source_value, cast(drug_concept_id as varchar), '') as example
from resolved
