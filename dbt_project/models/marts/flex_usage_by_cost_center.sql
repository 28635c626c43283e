{#- flex_usage_by_cost_center: one row per cost_center x department x user x usage_month of
    Flex use (months up to the as-of date): tokens, usage_days (days with any Flex use),
    distinct_products, token_cost = tokens x `token_price`. -#}
with params as (
    {{ marts_params_cte() }}
),

monthly as (
    select
        u.user_key,
        u.usage_month,
        count(distinct u.usage_date) as usage_days,
        count(distinct u.product_name) as distinct_products,
        sum(u.tokens) as tokens
    from {{ ref('fct_daily_usage') }} as u
    cross join params as p
    where u.licensing = 'flex'
      and u.usage_date <= p.as_of_date
    group by u.user_key, u.usage_month
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
    m.usage_month,
    'flex' as licensing,
    m.tokens,
    m.usage_days,
    m.distinct_products,
    m.tokens * {{ marts_var('token_price') }} as token_cost,
    p.as_of_date
from monthly as m
cross join params as p
left join {{ ref('dim_users') }} as d on d.user_key = m.user_key
