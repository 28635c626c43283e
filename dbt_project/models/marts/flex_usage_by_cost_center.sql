{#- flex_usage_by_cost_center: one row per cost_center x department x user x usage_month of
    Flex use (months up to the as-of date): tokens, usage_days (days with any Flex use),
    distinct_products, token_cost = tokens x `token_price`. Rebuilt by month on DuckDB
    (macros/month_marts.sql). -#}
{{ month_mart_config() }}
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
      {%- if month_mart_is_partial() %}
      and {{ month_mart_rebuilt_months('u.usage_date') }}
      {%- endif %}
    group by u.user_key, u.usage_month
)

select
    {{ month_mart_select_columns('flex_usage_by_cost_center', 'user_columns') }},
    m.user_key,
    m.usage_month,
    'flex' as licensing,
    m.tokens,
    m.usage_days,
    m.distinct_products,
    {{ month_mart_select_columns('flex_usage_by_cost_center', 'run_columns') }},
    m.extracted_at
from monthly as m
cross join params as p
left join {{ ref('dim_users') }} as d on d.user_key = m.user_key
