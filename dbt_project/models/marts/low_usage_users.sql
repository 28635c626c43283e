{#- low_usage_users: one row per user x product x usage_month (every licensing model) in
    which the user used the product on at least 1 and at most `low_usage_max_days` days.
    Months after the as-of date are left out; is_complete_month says whether the month
    ended by the as-of date (the current month is still filling up). Rebuilt by month on
    DuckDB (macros/month_marts.sql). -#}
{{ month_mart_config() }}
-- depends_on: {{ ref('fct_monthly_product_usage') }}
with params as (
    {{ marts_params_cte() }}
),

monthly as (
    select * from {{ marts_monthly_product_usage() }} as monthly_usage
    {%- if month_mart_is_partial() %}
    where {{ month_mart_rebuilt_months('usage_month') }}
    {%- endif %}
)

select
    m.user_key,
    {{ month_mart_select_columns('low_usage_users', 'user_columns') }},
    m.product_name,
    m.offering_name,
    m.licensing,
    m.usage_month,
    m.usage_days,
    m.tokens,
    {{ month_mart_select_columns('low_usage_users', 'run_columns') }},
    {{ marts_var('low_usage_max_days') }} as low_usage_max_days,
    m.extracted_at
from monthly as m
cross join params as p
left join {{ ref('dim_users') }} as d on d.user_key = m.user_key
where m.usage_days >= 1
  and m.usage_days <= {{ marts_var('low_usage_max_days') }}
