-- grain: one row per OMOP source table per target table per reason something could not be mapped
-- Nothing is dropped silently: every source row that is not loaded, every field left empty for want of a
-- mapping and every fill left undescribed is counted here, with the most frequent source values as examples.
-- consequence: 'row not loaded' | 'field left empty' | 'loaded with a doubtful value' |
-- 'loaded, not in ndc_reference' | 'loaded, MME not computed'.
with enrolled as (
    select distinct person_id from omop.int_observation_period where problem is null
),

problems as (
    select source_table, 'eligibility' as target_table, problem as reason, 'row not loaded' as consequence, example
    from omop.int_person where problem is not null
    union all
    select source_table, 'eligibility', 'person has no usable observation period (never enrolled)',
        'row not loaded', example
    from omop.int_person where problem is null and person_id not in (select person_id from enrolled)
    union all
    select source_table, 'eligibility', problem, 'row not loaded', example
    from omop.int_observation_period where problem is not null
    union all
    select 'death', 'eligibility', 'person_id not in the person table or not enrolled', 'row not loaded',
        coalesce(person_id, '')
    from cdm.death where person_id is null or person_id not in (select person_id from enrolled)
    union all
    select source_table, 'medical_claim', problem, 'row not loaded', example
    from omop.int_condition where problem is not null
    union all
    select source_table, 'medical_claim', problem, 'row not loaded', example
    from omop.int_procedure where problem is not null
    union all
    select source_table, 'pharmacy_claim', problem, 'row not loaded', example
    from omop.int_drug where problem is not null
    union all
    select source_table, 'pharmacy_claim', doubtful, 'loaded with a doubtful value', example
    from omop.int_drug where problem is null and doubtful is not null
    union all
    select source_table, 'ndc_reference',
        'no RxNorm ingredient (neither drug_strength nor concept_ancestor names one): the fill is loaded but'
            || ' not described, so it never counts as opioid use',
        'loaded, not in ndc_reference', ndc_code
    from omop.int_drug
    where problem is null and ndc_code not in (select ndc_code from omop.ndc_reference)
    union all
    select d.source_table, 'ndc_reference',
        'opioid without a strength in mg (drug_strength) or without a CDC conversion factor: counts as opioid'
            || ' use with 0 MME',
        'loaded, MME not computed', d.ndc_code
    from omop.int_drug as d
    inner join omop.ndc_reference as n on n.ndc_code = d.ndc_code
    where d.problem is null and n.is_opioid and n.mme_conversion_factor is null
    union all
    select source_table, 'ehr_encounter', problem, 'row not loaded', example
    from omop.int_visit where problem is not null
    union all
    select source_table, 'ehr_encounter', taxonomy_gap || ': provider_taxonomy_code left empty',
        'field left empty', coalesce(provider_id, '')
    from omop.int_visit where problem is null and taxonomy_gap is not null
    union all
    select source_table, 'medical_claim, ehr_encounter', problem || ': taxonomy code left empty',
        'field left empty', example
    from omop.int_provider where problem is not null
    union all
    select source_table, 'ehr_pro', problem, 'row not loaded', example
    from omop.int_pro where problem is not null
    union all
    select source_table, 'ehr_work_status', problem, 'row not loaded', example
    from omop.int_work_status where problem is not null
),

by_example as (
    select source_table, target_table, reason, consequence, example, count(*) as n
    from problems
    group by all
)

select
    source_table,
    target_table,
    reason,
    consequence,
    sum(n) as rows,
    coalesce(list(example order by n desc, example) filter (where example <> ''), [])[1:5]
        as example_source_values
from by_example
group by source_table, target_table, reason, consequence
order by source_table, target_table, rows desc, reason
