{#- single_product_collection_users: one row per user x collection used in the trailing
    `lookback_days` where the user used only one product of the collection
    (reason single_product), or used the collection on at most `infrequent_max_days` days
    (reason infrequent), or both (single_product_and_infrequent).
    Collection use = fct_daily_usage rows with is_collection_usage (product line is a
    collection). For a single product, saving_yearly = collection price - that product's
    standalone price. -#}
with params as (
    {{ marts_params_cte() }}
),

collection_rows as (
    select u.user_key, u.collection_name, u.product_name, u.usage_date
    from {{ ref('fct_daily_usage') }} as u
    cross join params as p
    where u.is_collection_usage
      and u.collection_name is not null
      and {{ marts_in_trailing_window('u.usage_date', 'p.as_of_date', marts_var('lookback_days')) }}
),

collection_days as (
    select
        user_key,
        collection_name,
        count(distinct usage_date) as usage_days,
        max(usage_date) as last_used_date
    from collection_rows
    group by user_key, collection_name
),

-- the products from one row per user x collection x product, not one per day: the list
-- aggregate is the costly part of this mart
collection_products as (
    select user_key, collection_name, product_name
    from collection_rows
    group by user_key, collection_name, product_name
),

collection_use as (
    select
        cp.user_key,
        cp.collection_name,
        count(cp.product_name) as distinct_products,
        cd.usage_days,
        {{ marts_sorted_list('cp.product_name') }} as products_used,
        max(cp.product_name) as any_product_name,
        cd.last_used_date
    from collection_products as cp
    inner join collection_days as cd
        on cd.user_key = cp.user_key and cd.collection_name = cp.collection_name
    group by cp.user_key, cp.collection_name, cd.usage_days, cd.last_used_date
),

flagged as (
    select
        c.*,
        (c.distinct_products = 1) as is_single_product,
        (c.usage_days <= {{ marts_var('infrequent_max_days') }}) as is_infrequent
    from collection_use as c
)

select
    f.user_key,
    {{ marts_user_columns('d') }},
    f.collection_name,
    case
        when f.is_single_product and f.is_infrequent then 'single_product_and_infrequent'
        when f.is_single_product then 'single_product'
        else 'infrequent'
    end as reason,
    f.distinct_products,
    f.products_used,
    case when f.is_single_product then f.any_product_name end as product_name,
    f.usage_days,
    f.last_used_date,
    cp.annual_price as collection_price_yearly,
    case when f.is_single_product then sp.annual_price end as product_price_yearly,
    case when f.is_single_product then cp.annual_price - sp.annual_price end as saving_yearly,
    cast({{ marts_var('lookback_days') }} as {{ dbt.type_int() }}) as lookback_days,
    p.as_of_date
from flagged as f
cross join params as p
left join {{ ref('dim_users') }} as d on d.user_key = f.user_key
left join {{ marts_prices() }} as cp on cp.product_name = f.collection_name
left join {{ marts_prices() }} as sp on sp.product_name = f.any_product_name
where f.is_single_product or f.is_infrequent
