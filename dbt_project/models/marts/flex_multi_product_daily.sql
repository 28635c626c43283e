{#- flex_multi_product_daily: one row per user x usage_month in which the user had more than
    `multi_product_min_days` days on which they used at least `multi_product_min_products`
    distinct Flex products (each such day pays tokens for every product). A view over
    fct_daily_usage's Flex rows with the user's columns and the run's as-of date. -#}
{{ config(materialized='view') }}
with params as (
    {{ marts_params_cte() }}
),

flex_use as (
    select u.user_key, u.usage_month, u.usage_date, u.product_name, u.tokens, u.extracted_at
    from {{ ref('fct_daily_usage') }} as u
    cross join params as p
    where u.licensing = 'flex'
      and u.usage_date <= p.as_of_date
),

daily as (
    select
        user_key,
        usage_month,
        usage_date,
        -- fct_daily_usage has one row per user x product x day x licensing: each Flex row
        -- of a day is another product
        count(*) as distinct_products,
        sum(tokens) as tokens,
        max(extracted_at) as extracted_at
    from flex_use
    group by user_key, usage_month, usage_date
),

monthly as (
    select
        user_key,
        usage_month,
        count(*) as flex_usage_days,
        sum(case when distinct_products >= {{ marts_var('multi_product_min_products') }} then 1 else 0 end)
            as multi_product_days,
        max(distinct_products) as max_products_per_day,
        sum(tokens) as tokens,
        sum(case when distinct_products >= {{ marts_var('multi_product_min_products') }} then tokens else 0 end)
            as multi_product_day_tokens,
        max(extracted_at) as extracted_at
    from daily
    group by user_key, usage_month
),

qualifying as (
    select * from monthly
    where multi_product_days > {{ marts_var('multi_product_min_days') }}
),

-- the product lists of the qualifying months only
products as (
    select
        f.user_key,
        f.usage_month,
        count(distinct f.product_name) as distinct_products,
        {{ marts_sorted_list('f.product_name') }} as products_used
    from flex_use as f
    inner join qualifying as q on q.user_key = f.user_key and q.usage_month = f.usage_month
    group by f.user_key, f.usage_month
)

select
    m.user_key,
    {{ marts_user_columns('d') }},
    m.usage_month,
    m.multi_product_days,
    m.flex_usage_days,
    m.max_products_per_day,
    pd.distinct_products,
    pd.products_used,
    m.tokens,
    m.multi_product_day_tokens,
    m.tokens * {{ marts_var('token_price') }} as token_cost,
    p.as_of_date,
    {{ marts_var('multi_product_min_products') }} as multi_product_min_products,
    {{ marts_var('multi_product_min_days') }} as multi_product_min_days,
    m.extracted_at
from qualifying as m
inner join products as pd on pd.user_key = m.user_key and pd.usage_month = m.usage_month
cross join params as p
left join {{ ref('dim_users') }} as d on d.user_key = m.user_key
