-- grain: one row per drug code of pharmacy_claim (NDC, RXNORM<rxcui> or OMOP<id>) whose RxNorm ingredient is
-- known (contract table ndc_reference). The drug's RxNorm ingredients come from concept_ancestor (ancestors of
-- concept class Ingredient) and from drug_strength, which also gives each ingredient's strength. An
-- ingredient listed in omop_mapping/mme_conversion.csv (CDC 2022 factors, by RxNorm code) makes the drug an
-- opioid; a combination product (hydrocodone/acetaminophen) is described by its opioid ingredient.
-- Strength per dispensed unit: amount_value (tablets, capsules) in mg (ug and g converted), or
-- numerator/denominator per mL for liquids (quantity is then in mL). A strength per hour (patches) is kept
-- as given with no MME factor, and a drug without a drug_strength row (vocabularies shipped without it, such
-- as Eunomia's) has no strength: either way the fill counts as opioid use with 0 MME, as for any opioid
-- without a CDC factor (intermediate.baseline_opioid), and omop.unmapped counts those fills.
with drugs as (
    select ndc_code, min(drug_concept) as drug_concept_id
    from omop.int_drug
    where problem is null and drug_concept is not null
    group by ndc_code
),

units as (
    select concept_id, concept_code as unit from cdm.concept where vocabulary_id = 'UCUM'
),

strength as (
    select
        ds.drug_concept_id,
        ds.ingredient_concept_id,
        case
            when ds.amount_value is not null and au.unit = 'mg' then ds.amount_value
            when ds.amount_value is not null and au.unit = 'ug' then ds.amount_value / 1000
            when ds.amount_value is not null and au.unit = 'g' then ds.amount_value * 1000
            when ds.numerator_value is not null and du.unit = 'mL' and nu.unit = 'mg'
                then ds.numerator_value / coalesce(nullif(ds.denominator_value, 0), 1)
            when ds.numerator_value is not null and du.unit = 'mL' and nu.unit = 'ug'
                then ds.numerator_value / 1000 / coalesce(nullif(ds.denominator_value, 0), 1)
            when ds.numerator_value is not null and du.unit = 'h'
                then ds.numerator_value / coalesce(nullif(ds.denominator_value, 0), 1)
        end as strength_per_unit,
        case
            when ds.amount_value is not null and au.unit in ('mg', 'ug', 'g') then 'mg'
            when ds.numerator_value is not null and du.unit = 'mL' and nu.unit in ('mg', 'ug') then 'mg'
            when ds.numerator_value is not null and du.unit = 'h' then nu.unit || '/h'
        end as strength_unit
    from cdm.drug_strength as ds
    left join units as au on au.concept_id = ds.amount_unit_concept_id
    left join units as nu on nu.concept_id = ds.numerator_unit_concept_id
    left join units as du on du.concept_id = ds.denominator_unit_concept_id
    where ds.invalid_reason is null and ds.drug_concept_id in (select drug_concept_id from drugs)
),

ingredients as (
    select d.drug_concept_id, ca.ancestor_concept_id as ingredient_concept_id
    from drugs as d
    inner join cdm.concept_ancestor as ca on ca.descendant_concept_id = d.drug_concept_id
    inner join cdm.concept as i
        on i.concept_id = ca.ancestor_concept_id and i.vocabulary_id = 'RxNorm' and i.concept_class_id = 'Ingredient'
    union
    select drug_concept_id, ingredient_concept_id from strength
),

described as (
    select
        d.ndc_code,
        coalesce(lower(i.concept_name), m.ingredient, 'RxNorm ' || i.concept_code) as ingredient,
        s.strength_per_unit,
        s.strength_unit,
        m.rxnorm_code is not null as is_opioid,
        case when s.strength_unit = 'mg' then m.mme_conversion_factor end as mme_conversion_factor
    from drugs as d
    inner join ingredients as g on g.drug_concept_id = d.drug_concept_id
    inner join cdm.concept as i on i.concept_id = g.ingredient_concept_id
    left join omop_map.mme_conversion as m on m.rxnorm_code = i.concept_code and i.vocabulary_id = 'RxNorm'
    left join strength as s
        on s.drug_concept_id = d.drug_concept_id and s.ingredient_concept_id = g.ingredient_concept_id
)

select
    ndc_code,
    arg_max(ingredient, (is_opioid, ingredient)) as ingredient,
    arg_max(strength_per_unit, (is_opioid, ingredient)) as strength_per_unit,
    arg_max(strength_unit, (is_opioid, ingredient)) as strength_unit,
    bool_or(is_opioid) as is_opioid,
    arg_max(mme_conversion_factor, (is_opioid, ingredient)) as mme_conversion_factor
from described
group by ndc_code
order by ndc_code
