{#- low_usage_users: one row per user x product x usage_month (every licensing model) in
    which the user used the product on at least 1 and at most `low_usage_max_days` days.
    Months after the as-of date are left out; is_complete_month says whether the month
    ended by the as-of date (the current month is still filling up). A view: the monthly
    fact (incremental) with the user's columns and the run's as-of date. -#}
{{ config(materialized='view') }}
-- depends_on: {{ ref('fct_monthly_product_usage') }}
with params as (
    {{ marts_params_cte() }}
)

select
    m.user_key,
    {{ marts_user_columns('d') }},
    m.product_name,
    m.offering_name,
    m.licensing,
    m.usage_month,
    m.usage_days,
    m.tokens,
    ({{ marts_add_days(dbt.dateadd('month', 1, 'm.usage_month'), -1) }} <= p.as_of_date) as is_complete_month,
    p.as_of_date,
    {{ marts_var('low_usage_max_days') }} as low_usage_max_days,
    m.extracted_at
from {{ marts_monthly_product_usage() }} as m
cross join params as p
left join {{ ref('dim_users') }} as d on d.user_key = m.user_key
where m.usage_days >= 1
  and m.usage_days <= {{ marts_var('low_usage_max_days') }}
