{#- Incremental by month: a run rebuilds whole months that received new raw rows since the
    last build (delete+insert on DuckDB, insert_overwrite of usage_month partitions on Spark).
    --full-refresh rebuilds everything (needed after identity mappings change). -#}
-- depends_on: {{ ref('int_usage_loads') }}
{{ usage_month_incremental_config() }}

with premium_rows as (
    select * from {{ ref('int_premium_usage_unioned') }}
    where user_key is not null
),

tokenflex_rows as (
    select * from {{ ref('int_tokenflex_usage') }}
    where user_key is not null and product_name is not null
),

{% if is_incremental() %}
{%- set month_filter = changed_usage_months_filter('usage_date') %}

premium as (
    select * from premium_rows where {{ month_filter }}
),

tokenflex as (
    select * from tokenflex_rows where {{ month_filter }}
),
{% else %}
premium as (select * from premium_rows),
tokenflex as (select * from tokenflex_rows),
{% endif %}

-- One pass over Premium rows. Within one source (API queries, usage files) tokens add up
-- over versions and rows; the two sources can describe the same usage, so the larger
-- per-source total counts, never both (greatest() skips NULLs in DuckDB and Spark). The
-- offering is the collection's when any row of that source names one.
premium_daily as (
    select
        user_key, product_name, usage_date, licensing,
        'premium' as source_system,
        max(user_id) as user_id,
        max(hashed_user_id) as hashed_user_id,
        max(email) as email,
        max(user_name) as user_name,
        max(full_name) as full_name,
        min(team_name) as team_name,
        max(feature_code) as feature_code,
        greatest(
            coalesce(max(case when usage_source = 'api' and is_collection_usage then offering_name end),
                     max(case when usage_source = 'api' then offering_name end)),
            coalesce(max(case when usage_source = 'file' and is_collection_usage then offering_name end),
                     max(case when usage_source = 'file' then offering_name end))
        ) as offering_name,
        max(collection_name) as collection_name,
        max(case when is_collection_usage then 1 else 0 end) as is_collection_usage,
        max(version) as version,
        greatest(
            sum(case when usage_source = 'api' then tokens end),
            sum(case when usage_source = 'file' then tokens end)
        ) as tokens,
        max(_extracted_at) as extracted_at
    from premium
    group by user_key, product_name, usage_date, licensing
),

tokenflex_daily as (
    select
        user_key, product_name, usage_date,
        'flex' as licensing,
        'tokenflex' as source_system,
        max(user_id) as user_id,
        max(hashed_user_id) as hashed_user_id,
        max(email) as email,
        max(user_name) as user_name,
        cast(null as {{ dbt.type_string() }}) as full_name,
        cast(null as {{ dbt.type_string() }}) as team_name,
        max(feature_code) as feature_code,
        'Flex' as offering_name,
        cast(null as {{ dbt.type_string() }}) as collection_name,
        0 as is_collection_usage,
        max(version) as version,
        sum(tokens) as tokens,
        max(_extracted_at) as extracted_at
    from tokenflex
    group by user_key, product_name, usage_date
),

-- Only Flex rows can be in both Premium (source=flex) and Token Flex
flex_both_sources as (
    select * from premium_daily where licensing = 'flex'
    union all
    select * from tokenflex_daily
),

-- Flex usage seen in Premium and in Token Flex is one row: the premium row's identity,
-- the larger token count
flex_combined as (
    select
        user_key, product_name, usage_date, licensing,
        case when max(case when source_system = 'premium' then 1 else 0 end) = 1
            then 'premium' else 'tokenflex' end as source_system,
        coalesce(max(case when source_system = 'premium' then user_id end), max(user_id)) as user_id,
        coalesce(max(case when source_system = 'premium' then hashed_user_id end), max(hashed_user_id)) as hashed_user_id,
        coalesce(max(case when source_system = 'premium' then email end), max(email)) as email,
        coalesce(max(case when source_system = 'premium' then user_name end), max(user_name)) as user_name,
        max(full_name) as full_name,
        max(team_name) as team_name,
        max(feature_code) as feature_code,
        coalesce(max(case when source_system = 'premium' then offering_name end), max(offering_name)) as offering_name,
        max(collection_name) as collection_name,
        max(is_collection_usage) as is_collection_usage,
        max(version) as version,
        max(tokens) as tokens,
        max(extracted_at) as extracted_at
    from flex_both_sources
    group by user_key, product_name, usage_date, licensing
),

combined as (
    select * from premium_daily where licensing <> 'flex'
    union all
    select * from flex_combined
)

select
    {{ dbt.hash(dbt.concat([
        'user_key', "'|'", 'product_name', "'|'",
        'cast(usage_date as ' ~ dbt.type_string() ~ ')', "'|'", 'licensing'
    ])) }} as usage_key,
    user_key,
    user_id,
    hashed_user_id,
    email,
    user_name,
    full_name,
    team_name,
    product_name,
    feature_code,
    offering_name,
    collection_name,
    is_collection_usage = 1 as is_collection_usage,
    version,
    licensing,
    source_system,
    cast(usage_date as date) as usage_date,
    cast(coalesce(tokens, 0) as {{ type_double() }}) as tokens,
    extracted_at,
    cast({{ dbt.date_trunc('month', 'usage_date') }} as date) as usage_month
from combined
