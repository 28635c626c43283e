{#- usage_by_cost_center: one row per cost_center x user x product x usage_month (every
    licensing model, months up to the as-of date): usage_days, tokens, licensing (the
    model used, or 'mixed' when the user used the product on more than one that month).
    cost_center is the user's metadata value, 'Unmapped' without metadata. -#}
-- depends_on: {{ ref('fct_monthly_product_usage') }}
with params as (
    {{ marts_params_cte() }}
),

monthly as (
    select * from {{ marts_monthly_product_usage() }} as monthly_usage
)

select
    coalesce(d.cost_center, {{ marts_unmapped_label() }}) as cost_center,
    coalesce(d.department, {{ marts_unmapped_label() }}) as department,
    m.user_key,
    d.email,
    d.full_name,
    d.team_name,
    d.geo,
    d.country,
    d.city,
    m.product_name,
    m.usage_month,
    m.usage_days,
    m.tokens,
    m.licensing,
    m.tokens * {{ marts_var('token_price') }} as token_cost,
    p.as_of_date
from monthly as m
cross join params as p
left join {{ ref('dim_users') }} as d on d.user_key = m.user_key
