-- Premium usage queries (insights/v1 usage-queries): one row per group of all fields.
-- product_name here is the product actually used (childProductName); the API's
-- productName is the product line (a collection name for collection usage).
-- One row per raw row: the extractor writes each row hash once (docs/design.md).
with source as (
    select * from {{ source('raw', 'premium_usage') }}
)

select
    cast(usage_date as date) as usage_date,
    {{ clean_text('context_id') }} as context_id,
    {{ clean_text('team_name') }} as team_name,
    {{ clean_user_identity() }},
    coalesce({{ clean_text('child_product_name') }}, {{ clean_text('product_name') }}) as product_name,
    {{ clean_text('product_name') }} as product_line_name,
    upper({{ clean_text('product_line_code') }}) as product_line_code,
    upper(coalesce({{ clean_text('feature_id') }}, {{ clean_text('product_line_code') }})) as feature_code,
    {{ clean_text('version') }} as version,
    {{ clean_text('minor_version') }} as minor_version,
    {{ licensing_from('source') }} as licensing,
    cast(coalesce(tokens, 0) as {{ type_double() }}) as tokens,
    {{ clean_text('contract_number') }} as contract_number,
    {{ clean_text('reporting_entity_id') }} as reporting_entity_id,
    _source,
    _extracted_at,
    _row_hash
from source
where usage_date is not null
