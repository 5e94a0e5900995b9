-- grain: one row per row of the OMOP drug_exposure table
-- A pharmacy fill is keyed by its NDC when the record has one, else by its RxNorm drug:
--   1. the source concept, when it is an NDC concept;
--   2. with no known source concept, the source value when the vocabulary has it as an NDC (written 11-digit
--      or hyphenated 10-digit; omop_ndc11 is ingest's own normalisation);
--   3. the standard drug concept, when it is an RxNorm concept: keyed RXNORM<rxcui> (the contract's form
--      for a drug record without an NDC; ndc_reference describes it like an NDC), or OMOP<concept_id> for an
--      RxNorm Extension concept (OHDSI's own drugs, whose codes are not RxCUIs).
-- Vaccines coded in CVX are immunizations, not dispensed drugs: not fills.
-- No NDC is guessed from the RxNorm concept: many NDCs map to one clinical drug and none is the record's.
-- drug_concept is the standard RxNorm concept that ndc_reference reads (drug_concept_id, else the NDC's
-- 'Maps to'). Every exposure record is taken as a fill (OMOP mixes dispensings and prescriptions;
-- drug_type_concept_id tells them apart but a written prescription is still the best exposure signal the
-- source has). days_supply, when empty or 0 (OMOP's usual 'unknown'), is the exposure's end minus start
-- plus one.
with ndc_concept as (
    select concept_id, regexp_replace(trim(concept_code), '-', '', 'g') as code
    from cdm.concept
    where vocabulary_id = 'NDC' and regexp_full_match(regexp_replace(trim(concept_code), '-', '', 'g'), '[0-9]{11}')
),

ndc_maps_to as (
    select cr.concept_id_1 as ndc_concept_id, min(cr.concept_id_2) as drug_concept_id
    from cdm.concept_relationship as cr
    inner join ndc_concept as n on n.concept_id = cr.concept_id_1
    where cr.relationship_id = 'Maps to' and cr.invalid_reason is null
    group by cr.concept_id_1
),

drugs as (
    select
        de.*,
        sc.vocabulary_id as source_vocabulary,
        ns.code as source_concept_code,
        nv.code as source_value_code,
        coalesce(ns.concept_id, nv.concept_id) as ndc_concept_id,
        rx.vocabulary_id as drug_vocabulary,
        rx.concept_code as rxnorm_code,
        dc.vocabulary_id as drug_vocabulary_text
    from cdm.drug_exposure as de
    left join cdm.concept as sc
        on sc.concept_id = de.drug_source_concept_id and de.drug_source_concept_id <> 0
    left join ndc_concept as ns on ns.concept_id = de.drug_source_concept_id
    left join (select min(concept_id) as concept_id, code from ndc_concept group by code) as nv
        on nv.code = omop_ndc11(trim(de.drug_source_value))
    left join cdm.concept as dc on dc.concept_id = de.drug_concept_id and de.drug_concept_id <> 0
    left join cdm.concept as rx
        on rx.concept_id = de.drug_concept_id
        and rx.vocabulary_id in ('RxNorm', 'RxNorm Extension')
        and de.drug_concept_id <> 0
),

resolved as (
    select
        d.*,
        case
            when d.source_concept_code is not null then d.source_concept_code
            when d.source_vocabulary is null and d.source_value_code is not null then d.source_value_code
            when d.drug_vocabulary = 'RxNorm' then 'RXNORM' || d.rxnorm_code
            when d.drug_vocabulary = 'RxNorm Extension' then 'OMOP' || d.drug_concept_id
        end as ndc_code,
        case
            when d.source_concept_code is not null then 'drug_source_concept_id'
            when d.source_vocabulary is null and d.source_value_code is not null
                then 'drug_source_value (an NDC of the vocabulary)'
            when d.drug_vocabulary is not null then 'drug_concept_id (' || d.drug_vocabulary || ', no NDC)'
        end as path,
        coalesce(nullif(d.drug_concept_id, 0), m.drug_concept_id) as drug_concept,
        case
            when d.days_supply > 0 then d.days_supply
            when d.drug_exposure_end_date >= d.drug_exposure_start_date
                then date_diff('day', d.drug_exposure_start_date, d.drug_exposure_end_date) + 1
        end as supply_days,
        coalesce(
            d.source_vocabulary,
            case when d.drug_source_value is not null
                then 'unknown (no source concept; the source value is no NDC of the vocabulary)' end,
            'none'
        ) as source_vocabulary_text
    from drugs as d
    left join ndc_maps_to as m on m.ndc_concept_id = d.ndc_concept_id
)

select
    'drug_exposure' as source_table,
    drug_exposure_id as source_id,
    drug_exposure_id,
    person_id,
    drug_exposure_start_date as dispensing_date,
    ndc_code,
    drug_concept,
    quantity,
    cast(supply_days as integer) as days_supply,
    path,
    case
        when person_id is null then 'person_id missing'
        when person_id not in (select person_id from omop.int_person where person_id is not null)
            then 'person_id not in the person table'
        when drug_exposure_start_date is null then 'drug_exposure_start_date missing or unreadable'
        when ndc_code is null
            then 'no NDC (source vocabulary: ' || source_vocabulary_text || ') and no RxNorm drug concept'
                || case when drug_vocabulary_text = 'CVX' then ' (a CVX vaccine: an immunization, not a fill)' else '' end
        when quantity is null then 'quantity missing'
        when supply_days is null then 'days_supply missing and no usable end date'
    end as problem,
    case when quantity <= 0 then 'quantity is 0 or negative (unknown in many OMOP sources): loaded as given' end
        as doubtful,
    coalesce(drug_source_value, cast(drug_concept_id as varchar), '') as example
from resolved
