{#- collection_candidates: one row per user x catalog collection where the user, over the
    trailing `lookback_days`, used at least `collection_candidate_min_products` [2]
    distinct products of that collection outside any collection (standalone subscription or
    Flex), and did not use that collection itself in the window.
    current_cost_yearly = the standalone annual list price of each product used on a
    subscription + the Flex tokens of products used only on Flex scaled to 365 days x
    `token_price`; saving_yearly = current_cost_yearly - collection_price_yearly. -#}
with params as (
    {{ marts_params_cte() }}
),

{#- Each aggregate reads the window itself: DuckDB would otherwise materialise the shared
    rows (a CTE used twice), which cost more than a second scan of the fact. -#}
{%- set window_rows -%}
    from {{ ref('fct_daily_usage') }} as u
    cross join params as p
    where {{ marts_in_trailing_window('u.usage_date', 'p.as_of_date', marts_var('lookback_days')) }}
{%- endset %}

standalone_products as (
    select
        u.user_key,
        u.product_name,
        max(case when u.licensing = 'subscription' then 1 else 0 end) as used_on_subscription,
        sum(case when u.licensing = 'flex' then {{ marts_double('u.tokens') }} else 0 end) as flex_tokens,
        count(distinct u.usage_date) as usage_days
    {{ window_rows }}
      and not u.is_collection_usage
      and u.licensing in ('subscription', 'flex')
    group by u.user_key, u.product_name
),

collections_in_use as (
    select distinct u.user_key, u.collection_name
    {{ window_rows }}
      and u.is_collection_usage and u.collection_name is not null
),

per_product as (
    select
        s.user_key,
        cp.collection_name,
        s.product_name,
        s.usage_days,
        case when s.used_on_subscription = 1
             then pr.annual_price
             else s.flex_tokens * 365 / {{ marts_var('lookback_days') }} * {{ marts_var('token_price') }}
        end as current_cost_yearly
    from standalone_products as s
    inner join {{ ref('int_collection_products') }} as cp on cp.product_name = s.product_name
    left join {{ marts_prices() }} as pr on pr.product_name = s.product_name
),

per_collection as (
    select
        pp.user_key,
        pp.collection_name,
        count(distinct pp.product_name) as distinct_products,
        {{ marts_sorted_list('pp.product_name') }} as products_used,
        sum(pp.current_cost_yearly) as current_cost_yearly
    from per_product as pp
    left join collections_in_use as ciu
        on ciu.user_key = pp.user_key and ciu.collection_name = pp.collection_name
    where ciu.user_key is null
    group by pp.user_key, pp.collection_name
)

select
    c.user_key,
    {{ marts_user_columns('d') }},
    c.collection_name,
    c.products_used,
    c.distinct_products,
    c.current_cost_yearly,
    col.annual_price as collection_price_yearly,
    c.current_cost_yearly - col.annual_price as saving_yearly,
    cast({{ marts_var('lookback_days') }} as {{ dbt.type_int() }}) as lookback_days,
    p.as_of_date
from per_collection as c
cross join params as p
left join {{ ref('dim_users') }} as d on d.user_key = c.user_key
left join {{ marts_prices() }} as col on col.product_name = c.collection_name
where c.distinct_products >= {{ marts_var('collection_candidate_min_products') }}
