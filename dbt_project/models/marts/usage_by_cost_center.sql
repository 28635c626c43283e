{#- usage_by_cost_center: one row per cost_center x user x product x usage_month (every
    licensing model, months up to the as-of date): usage_days, tokens, licensing (the
    model used, or 'mixed' when the user used the product on more than one that month).
    cost_center is the user's metadata value, 'Unmapped' without metadata. Rebuilt by month
    on DuckDB (macros/month_marts.sql). -#}
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
    {{ month_mart_select_columns('usage_by_cost_center', 'user_columns') }},
    m.user_key,
    m.product_name,
    m.usage_month,
    m.usage_days,
    m.tokens,
    m.licensing,
    {{ month_mart_select_columns('usage_by_cost_center', 'run_columns') }},
    m.extracted_at
from monthly as m
cross join params as p
left join {{ ref('dim_users') }} as d on d.user_key = m.user_key
