{#- flex_usage_by_cost_center: one row per cost_center x department x user x usage_month of
    Flex use (months up to the as-of date): tokens, usage_days (days with any Flex use),
    distinct_products, token_cost = tokens x `token_price`. A view over fct_daily_usage's
    Flex rows with the user's columns and the run's as-of date. -#}
{{ config(materialized='view') }}
with params as (
    {{ marts_params_cte() }}
),

monthly as (
    select
        u.user_key,
        u.usage_month,
        count(distinct u.usage_date) as usage_days,
        count(distinct u.product_name) as distinct_products,
        sum(u.tokens) as tokens,
        max(u.extracted_at) as extracted_at
    from {{ ref('fct_daily_usage') }} as u
    cross join params as p
    where u.licensing = 'flex'
      and u.usage_date <= p.as_of_date
    group by u.user_key, u.usage_month
)

select
    {{ marts_cost_center_columns('d') }},
    m.user_key,
    m.usage_month,
    'flex' as licensing,
    m.tokens,
    m.usage_days,
    m.distinct_products,
    m.tokens * {{ marts_var('token_price') }} as token_cost,
    p.as_of_date,
    m.extracted_at
from monthly as m
cross join params as p
left join {{ ref('dim_users') }} as d on d.user_key = m.user_key
