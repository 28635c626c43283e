{#- flex_overuse: one row per user x product x usage_month of Flex use with more than
    `flex_overuse_min_days` usage days: at that rate a subscription is likely cheaper.
    token_cost = tokens x `token_price`; subscription_price_monthly = annual list price / 12;
    break_even_days = days of Flex use per month that cost as much as a subscription month;
    excess_cost = token_cost - subscription_price_monthly (positive = Flex cost more).
    A view: the monthly fact (incremental) with the user's columns and prices. -#}
{{ config(materialized='view') }}
-- depends_on: {{ ref('fct_monthly_product_usage') }}
with params as (
    {{ marts_params_cte() }}
),

monthly as (
    select
        user_key,
        product_name,
        usage_month,
        flex_usage_days as usage_days,
        flex_tokens as tokens
    from {{ marts_monthly_product_usage() }} as monthly_usage
    where flex_usage_days > 0
)

select
    m.user_key,
    {{ marts_user_columns('d') }},
    m.product_name,
    'flex' as licensing,
    m.usage_month,
    m.usage_days,
    m.tokens,
    m.tokens * {{ marts_var('token_price') }} as token_cost,
    pr.tokens_per_day,
    pr.annual_price / 12 as subscription_price_monthly,
    case when pr.tokens_per_day > 0
         then pr.annual_price / 12 / (pr.tokens_per_day * {{ marts_var('token_price') }})
    end as break_even_days,
    m.tokens * {{ marts_var('token_price') }} - pr.annual_price / 12 as excess_cost,
    p.as_of_date
from monthly as m
cross join params as p
left join {{ ref('dim_users') }} as d on d.user_key = m.user_key
left join {{ marts_prices() }} as pr on pr.product_name = m.product_name
where m.usage_days > {{ marts_var('flex_overuse_min_days') }}
