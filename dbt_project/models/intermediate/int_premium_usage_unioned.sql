-- Premium usage from API queries and from usage files in one shape, with user_key,
-- collection detection and the offering the product was used through.
-- Collection usage: API rows whose product line differs from the feature (or whose line
-- the catalog names a collection); file rows whose offering is a catalog collection.
with api as (
    select
        usage.*,
        by_code.collection_name as code_collection,
        by_line.collection_name as line_collection
    from {{ ref('stg_premium__usage') }} as usage
    left join {{ ref('int_collection_names') }} as by_code
        on by_code.name_key = lower(usage.product_line_code)
    left join {{ ref('int_collection_names') }} as by_line
        on by_line.name_key = lower(usage.product_line_name)
),

api_shaped as (
    select
        'api' as usage_source,
        usage_date, team_name, user_id, hashed_user_id, email, first_name, last_name,
        full_name, user_name, product_name, product_line_code, feature_code, version,
        licensing, tokens, _extracted_at,
        case
            when licensing = 'flex' then false
            when product_line_code is not null and feature_code is not null
                and product_line_code <> feature_code then true
            when code_collection is not null or line_collection is not null then true
            else false
        end as is_collection_usage,
        coalesce(code_collection, line_collection, product_line_name) as line_collection_name,
        product_line_name as line_offering_name
    from api
),

files as (
    select
        usage.*,
        by_offering.collection_name as offering_collection,
        by_code.collection_name as code_collection
    from {{ ref('stg_premium__usage_files') }} as usage
    left join {{ ref('int_collection_names') }} as by_offering
        on by_offering.name_key = lower(usage.offering_name)
    left join {{ ref('int_collection_names') }} as by_code
        on by_code.name_key = lower(usage.product_line_code)
),

files_shaped as (
    select
        'file' as usage_source,
        usage_date, team_name, user_id, hashed_user_id, email, first_name, last_name,
        full_name, user_name, product_name, product_line_code, feature_code, version,
        licensing, tokens, _extracted_at,
        case
            when licensing = 'flex' then false
            when offering_collection is not null or code_collection is not null then true
            when product_line_code is not null and feature_code is not null
                and product_line_code <> feature_code then true
            else false
        end as is_collection_usage,
        coalesce(offering_collection, code_collection, offering_name) as line_collection_name,
        offering_name as line_offering_name
    from files
),

unioned as (
    select * from api_shaped
    union all
    select * from files_shaped
)

select
    {{ user_key('unioned') }} as user_key,
    unioned.user_id,
    unioned.hashed_user_id,
    coalesce(unioned.email, key_by_email.identity_value) as email,
    unioned.first_name,
    unioned.last_name,
    coalesce(
        unioned.full_name,
        case when unioned.first_name is not null or unioned.last_name is not null
            then trim({{ dbt.concat(["coalesce(unioned.first_name, '')", "' '", "coalesce(unioned.last_name, '')"]) }})
        end
    ) as full_name,
    unioned.user_name,
    unioned.team_name,
    unioned.product_name,
    coalesce(unioned.feature_code, catalog.feature_code) as feature_code,
    unioned.product_line_code,
    case
        when unioned.licensing = 'flex' then 'Flex'
        when unioned.is_collection_usage then unioned.line_collection_name
        else coalesce(unioned.line_offering_name, unioned.product_name)
    end as offering_name,
    case when unioned.is_collection_usage then unioned.line_collection_name end as collection_name,
    unioned.is_collection_usage,
    unioned.version,
    unioned.licensing,
    unioned.tokens,
    unioned.usage_date,
    unioned.usage_source,
    unioned._extracted_at
from unioned
{{ user_key_joins('unioned') }}
left join {{ ref('product_catalog') }} as catalog
    on catalog.product_name = unioned.product_name
where unioned.product_name is not null
