-- Token Flex export rows (sessions, cloud usage, manual adjustments).
-- user_name is an email for most users and an NT id for some: an email is also the email.
-- One row per raw row: the extractor writes each row hash once (docs/design.md).
with source as (
    select * from {{ source('raw', 'tokenflex_usage') }}
)

select
    {{ clean_text('contract_number') }} as contract_number,
    cast(usage_date as date) as usage_date,
    contract_year,
    upper({{ clean_text('usage_category') }}) as usage_category,
    upper({{ clean_text('charge_category') }}) as charge_category,
    upper({{ clean_text('product_line_code') }}) as product_line_code,
    {{ clean_text('product_name') }} as product_name,
    {{ clean_text('product_version') }} as version,
    {{ clean_text('product_feature_code') }} as product_feature_code,
    {{ clean_text('user_name') }} as user_name,
    {{ email_from_user_name('user_name') }} as email,
    {{ clean_text('machine_name') }} as machine_name,
    {{ clean_text('license_server_name') }} as license_server_name,
    {{ clean_text('usage_type') }} as usage_type,
    {{ clean_text('charged_item_id') }} as charged_item_id,
    session_start_date as session_start_at,
    session_end_date as session_end_at,
    {{ clean_text('hub_name') }} as hub_name,
    {{ clean_text('project_name') }} as project_name,
    {{ clean_text('job_status') }} as job_status,
    {{ clean_text('reason_type') }} as reason_type,
    {{ clean_text('token_pool') }} as token_pool,
    cast(coalesce(tokens_consumed, 0) as {{ type_double() }}) as tokens,
    usage_minutes,
    usage_hours,
    use_count,
    {%- for i in range(1, 11) %}
    {{ clean_text('custom_field' ~ i) }} as custom_field{{ i }},
    {%- endfor %}
    _source,
    _extracted_at,
    _row_hash
from source
where usage_date is not null
