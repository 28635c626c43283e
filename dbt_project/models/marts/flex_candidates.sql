{#- flex_candidates: one row per user x product used on a subscription in the trailing
    `lookback_days` whose rate of use, scaled to a 30-day month, is at most
    `flex_candidate_max_days`: Flex (pay per day of use) would likely cost less.
    Money: yearly Flex estimate = usage days scaled to 365 days x the product's tokens per
    day x `token_price`; compared with the product's annual subscription list price. -#}
with params as (
    {{ marts_params_cte() }}
),

-- per offering first: the list of offerings is then built from a few rows per user x
-- product instead of one per day (list aggregates are the costly part of this mart)
use_by_offering as (
    select
        u.user_key,
        u.product_name,
        u.offering_name,
        count(*) as usage_days,  -- one subscription row per user x product x day in fct_daily_usage
        max(u.usage_date) as last_used_date
    from {{ ref('fct_daily_usage') }} as u
    cross join params as p
    where u.licensing = 'subscription'
      and {{ marts_in_trailing_window('u.usage_date', 'p.as_of_date', marts_var('lookback_days')) }}
    group by u.user_key, u.product_name, u.offering_name
),

subscription_use as (
    select
        o.user_key,
        o.product_name,
        sum(o.usage_days) as usage_days,
        max(o.last_used_date) as last_used_date,
        {{ marts_sorted_list('o.offering_name') }} as offering_name
    from use_by_offering as o
    group by o.user_key, o.product_name
),

rated as (
    select
        s.*,
        {{ marts_double('s.usage_days * 365') }} / {{ marts_var('lookback_days') }} as yearly_days,
        {{ marts_double('s.usage_days * 30') }} / {{ marts_var('lookback_days') }} as avg_days_per_month
    from subscription_use as s
)

select
    r.user_key,
    {{ marts_user_columns('d') }},
    r.product_name,
    r.offering_name,
    r.usage_days,
    r.avg_days_per_month,
    r.last_used_date,
    pr.tokens_per_day,
    r.yearly_days * pr.tokens_per_day as flex_tokens_yearly_estimate,
    r.yearly_days * pr.tokens_per_day * {{ marts_var('token_price') }} as flex_cost_yearly_estimate,
    pr.annual_price as subscription_price_yearly,
    pr.annual_price - r.yearly_days * pr.tokens_per_day * {{ marts_var('token_price') }} as saving_yearly,
    cast({{ marts_var('lookback_days') }} as {{ dbt.type_int() }}) as lookback_days,
    p.as_of_date
from rated as r
cross join params as p
left join {{ ref('dim_users') }} as d on d.user_key = r.user_key
left join {{ marts_prices() }} as pr on pr.product_name = r.product_name
where r.usage_days >= 1
  and r.avg_days_per_month <= {{ marts_var('flex_candidate_max_days') }}
