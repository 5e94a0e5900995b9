-- grain: one row per cohort person with at least one Charlson component at baseline
-- A component is not counted when the component that supersedes it is also present (severe over mild
-- liver disease, complicated over uncomplicated diabetes, metastatic tumour over any malignancy), so
-- one condition is not weighted twice.
select
    e.person_id,
    cast(sum(w.weight) as integer) as charlson_index
from intermediate.baseline_event as e
inner join ref.charlson_weight as w on w.component = e.valueset
where not exists (
    select 1
    from intermediate.baseline_event as s
    where s.person_id = e.person_id
        and s.valueset = w.superseded_by
)
group by e.person_id
