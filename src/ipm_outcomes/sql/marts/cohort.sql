-- grain: one row per cohort person (their first eligible new episode of low back pain)
-- The contract for the models: baseline covariates (index - baseline_days through index), referral
-- timing and exposure, and the follow-up facts (all days counted from index = day 0).
-- exposure: 'early' = first IPM contact on days 0..grace_period_days; 'delayed' = not by then
-- (referred later or never). opioid_use and mean_daily_mme are null when the extract has no pharmacy
-- data (pharmacy_available false), so "no data" is never read as "no opioids".
with flags as (
    select
        person_id,
        max(case when valueset = 'cci_mi' then 1 else 0 end) as cci_mi,
        max(case when valueset = 'cci_chf' then 1 else 0 end) as cci_chf,
        max(case when valueset = 'cci_pvd' then 1 else 0 end) as cci_pvd,
        max(case when valueset = 'cci_cevd' then 1 else 0 end) as cci_cevd,
        max(case when valueset = 'cci_dementia' then 1 else 0 end) as cci_dementia,
        max(case when valueset = 'cci_copd' then 1 else 0 end) as cci_copd,
        max(case when valueset = 'cci_rheumatic' then 1 else 0 end) as cci_rheumatic,
        max(case when valueset = 'cci_pud' then 1 else 0 end) as cci_pud,
        max(case when valueset = 'cci_mild_liver' then 1 else 0 end) as cci_mild_liver,
        max(case when valueset = 'cci_diabetes' then 1 else 0 end) as cci_diabetes,
        max(case when valueset = 'cci_diabetes_complicated' then 1 else 0 end) as cci_diabetes_complicated,
        max(case when valueset = 'cci_hemiplegia' then 1 else 0 end) as cci_hemiplegia,
        max(case when valueset = 'cci_renal' then 1 else 0 end) as cci_renal,
        max(case when valueset = 'cci_cancer' then 1 else 0 end) as cci_cancer,
        max(case when valueset = 'cci_severe_liver' then 1 else 0 end) as cci_severe_liver,
        max(case when valueset = 'cci_metastatic' then 1 else 0 end) as cci_metastatic,
        max(case when valueset = 'cci_hiv' then 1 else 0 end) as cci_hiv,
        max(case when valueset = 'depression' then 1 else 0 end) as depression,
        max(case when valueset = 'anxiety' then 1 else 0 end) as anxiety,
        max(case when valueset = 'sleep_disorder' then 1 else 0 end) as sleep_disorder,
        max(case when valueset = 'physical_therapy' then 1 else 0 end) as prior_pt,
        max(case when valueset = 'lumbar_imaging' then 1 else 0 end) as prior_imaging,
        max(case when valueset = 'radiculopathy' and on_index_day = 1 then 1 else 0 end) as radiculopathy
    from intermediate.baseline_event
    group by person_id
),

pro as (
    select
        person_id,
        max(case when instrument = 'promis_pf' then baseline_score end) as baseline_promis_pf,
        max(case when instrument = 'promis_pi' then baseline_score end) as baseline_promis_pi,
        max(case when instrument = 'odi' then baseline_score end) as baseline_odi,
        max(case when instrument = 'eq5d_index' then baseline_score end) as baseline_eq5d_index,
        max(case when instrument = 'nrs_pain' then baseline_score end) as baseline_nrs_pain,
        max(case when instrument = 'phq9' then baseline_score end) as baseline_phq9
    from marts.qol_outcome
    where horizon_days = (select min(horizon_days) from ref.qol_horizon)  -- every horizon's row has the baseline
    group by person_id
)

select
    b.person_id,
    b.index_date,
    b.age,
    b.sex,
    b.payer_type,
    b.index_year,
    coalesce(ch.charlson_index, 0) as charlson_index,
    coalesce(f.cci_mi, 0) as cci_mi,
    coalesce(f.cci_chf, 0) as cci_chf,
    coalesce(f.cci_pvd, 0) as cci_pvd,
    coalesce(f.cci_cevd, 0) as cci_cevd,
    coalesce(f.cci_dementia, 0) as cci_dementia,
    coalesce(f.cci_copd, 0) as cci_copd,
    coalesce(f.cci_rheumatic, 0) as cci_rheumatic,
    coalesce(f.cci_pud, 0) as cci_pud,
    coalesce(f.cci_mild_liver, 0) as cci_mild_liver,
    coalesce(f.cci_diabetes, 0) as cci_diabetes,
    coalesce(f.cci_diabetes_complicated, 0) as cci_diabetes_complicated,
    coalesce(f.cci_hemiplegia, 0) as cci_hemiplegia,
    coalesce(f.cci_renal, 0) as cci_renal,
    coalesce(f.cci_cancer, 0) as cci_cancer,
    coalesce(f.cci_severe_liver, 0) as cci_severe_liver,
    coalesce(f.cci_metastatic, 0) as cci_metastatic,
    coalesce(f.cci_hiv, 0) as cci_hiv,
    coalesce(f.depression, 0) as depression,
    coalesce(f.anxiety, 0) as anxiety,
    coalesce(f.sleep_disorder, 0) as sleep_disorder,
    coalesce(f.prior_pt, 0) as prior_pt,
    coalesce(f.prior_imaging, 0) as prior_imaging,
    coalesce(f.radiculopathy, 0) as radiculopathy,
    case when $pharmacy_available then coalesce(o.opioid_use, 0) end as opioid_use,
    case when $pharmacy_available then coalesce(o.mean_daily_mme, 0) end as mean_daily_mme,
    p.baseline_promis_pf,
    p.baseline_promis_pi,
    p.baseline_odi,
    p.baseline_eq5d_index,
    p.baseline_nrs_pain,
    p.baseline_phq9,
    coalesce(c.prior_year_allowed, 0) as prior_year_allowed,
    r.referral_date,
    r.days_to_referral,
    r.days_to_referral_procedure_only,
    r.referral_source,
    case when r.days_to_referral <= $grace_period_days then 'early' else 'delayed' end as exposure,
    coalesce(d.label, 'never') as delay_category,
    w.in_rtw_population,
    b.followup_end_day,
    b.censor_day,
    b.censor_reason,
    b.enrollment_end_day,
    b.data_end_day,
    b.death_day
from intermediate.cohort_base as b
inner join intermediate.referral as r on r.person_id = b.person_id
inner join intermediate.rtw_event as w on w.person_id = b.person_id
left join flags as f on f.person_id = b.person_id
left join pro as p on p.person_id = b.person_id
left join intermediate.charlson as ch on ch.person_id = b.person_id
left join intermediate.baseline_opioid as o on o.person_id = b.person_id
left join intermediate.prior_cost as c on c.person_id = b.person_id
left join ref.delay_category as d
    on r.days_to_referral >= d.first_day
    and (d.last_day is null or r.days_to_referral <= d.last_day)
