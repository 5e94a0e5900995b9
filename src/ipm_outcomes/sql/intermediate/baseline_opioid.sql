-- grain: one row per cohort person with opioid supply in the opioid window
-- The window is the opioid_lookback_days days before index (index day excluded). A fill covers
-- days_supply days from its dispensing date; its morphine milligram equivalents (quantity x strength x
-- CDC conversion factor) are spread evenly over those days and only the days inside the window count.
-- mean_daily_mme = MME supplied inside the window / window length. Opioids without a conversion
-- factor or a known strength count as use with 0 MME.
with fills as (
    select
        b.person_id,
        date_diff('day', b.index_date, p.dispensing_date) as first_day,
        greatest(coalesce(p.days_supply, 1), 1) as days_supply,
        p.quantity * coalesce(n.strength_per_unit * n.mme_conversion_factor, 0) as fill_mme
    from intermediate.cohort_base as b
    inner join raw.pharmacy_claim as p on p.person_id = b.person_id
    inner join raw.ndc_reference as n on n.ndc_code = p.ndc_code
    where n.is_opioid
        and p.dispensing_date < b.index_date
),

in_window as (
    select
        person_id,
        fill_mme / days_supply as daily_mme,
        least(first_day + days_supply - 1, -1) - greatest(first_day, 0 - $opioid_lookback_days) + 1 as days_covered -- not null: required dates, coalesced supply
    from fills
    where first_day + days_supply - 1 >= 0 - $opioid_lookback_days
)

select
    person_id,
    1 as opioid_use,
    sum(daily_mme * days_covered) / $opioid_lookback_days as mean_daily_mme
from in_window
group by person_id
