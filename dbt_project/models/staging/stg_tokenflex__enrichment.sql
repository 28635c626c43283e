-- Token Flex enrichment: the customer's name for each customFieldN, newest snapshot.
with source as (
    select * from {{ source('raw', 'tokenflex_enrichment') }}
),

cleaned as (
    select
        {{ clean_text('contract_number') }} as contract_number,
        lower(replace({{ clean_text('custom_field') }}, '_', '')) as custom_field,
        {{ clean_text('category_name') }} as category_name,
        _source,
        _extracted_at,
        _row_hash
    from source
    where {{ clean_text('custom_field') }} is not null
)

select contract_number, custom_field, category_name, _source, _extracted_at, _row_hash
from (
    {{ dedupe('cleaned', ['contract_number', 'custom_field']) }}
) as newest
