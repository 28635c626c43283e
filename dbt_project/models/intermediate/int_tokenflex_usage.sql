-- Token Flex usage with user_key and the catalog's product name (Token Flex names the
-- product line code: ACD -> AutoCAD). Rows without a user (manual adjustments) keep a
-- NULL user_key; fct_daily_usage leaves them out, token balances keep them.
with usage as (
    select * from {{ ref('stg_tokenflex__usage') }}
),

with_product as (
    select
        usage.*,
        coalesce(by_code.product_name, by_name.product_name, usage.product_name) as catalog_product_name,
        coalesce(by_code.feature_code, by_name.feature_code, usage.product_line_code) as catalog_feature_code
    from usage
    left join {{ ref('product_catalog') }} as by_code
        on by_code.feature_code = usage.product_line_code
    left join {{ ref('product_catalog') }} as by_name
        on lower(by_name.product_name) = lower(usage.product_name)
)

select
    case
        when with_product.user_name is null then null
        else coalesce(key_by_email.user_id, key_by_email.hashed_user_id, with_product.email, lower(with_product.user_name))
    end as user_key,
    key_by_email.user_id,
    key_by_email.hashed_user_id,
    with_product.email,
    with_product.user_name,
    with_product.contract_number,
    with_product.contract_year,
    with_product.usage_category,
    with_product.charge_category,
    with_product.catalog_product_name as product_name,
    with_product.catalog_feature_code as feature_code,
    with_product.product_line_code,
    with_product.version,
    with_product.tokens,
    with_product.usage_date,
    with_product.machine_name,
    with_product.project_name,
    {%- for i in range(1, 11) %}
    with_product.custom_field{{ i }},
    {%- endfor %}
    with_product._extracted_at
from with_product
left join {{ ref('int_user_identity_map') }} as key_by_email
    on key_by_email.identity_type = 'email'
    and key_by_email.identity_value = with_product.email
