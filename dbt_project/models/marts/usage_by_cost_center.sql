{#- usage_by_cost_center: one row per cost_center x user x product x usage_month (every
    licensing model, months up to the as-of date): usage_days, tokens, licensing (the
    model used, or 'mixed' when the user used the product on more than one that month).
    cost_center is the user's metadata value, 'Unmapped' without metadata. A view: the
    monthly fact (incremental) with the user's columns, prices and the run's as-of date. -#}
{{ config(materialized='view') }}
-- depends_on: {{ ref('fct_monthly_product_usage') }}
with params as (
    {{ marts_params_cte() }}
)

select
    {{ marts_cost_center_columns('d') }},
    m.user_key,
    m.product_name,
    m.usage_month,
    m.usage_days,
    m.tokens,
    m.licensing,
    m.tokens * {{ marts_var('token_price') }} as token_cost,
    p.as_of_date,
    m.extracted_at
from {{ marts_monthly_product_usage() }} as m
cross join params as p
left join {{ ref('dim_users') }} as d on d.user_key = m.user_key
