-- Token Flex contracts: one row per contract x contract year, the newest snapshot.
with source as (
    select * from {{ source('raw', 'tokenflex_contracts') }}
),

cleaned as (
    select
        {{ clean_text('contract_number') }} as contract_number,
        {{ clean_text('contract_name') }} as contract_name,
        cast(contract_start_date as date) as contract_start_date,
        cast(contract_end_date as date) as contract_end_date,
        is_active,
        cast(multiyear_provisioned_tokens as {{ type_double() }}) as multiyear_provisioned_tokens,
        contract_year,
        cast(year_start_date as date) as year_start_date,
        cast(year_end_date as date) as year_end_date,
        cast(provisioned_tokens as {{ type_double() }}) as provisioned_tokens,
        cast(consumed_tokens as {{ type_double() }}) as consumed_tokens,
        cast(remaining_tokens as {{ type_double() }}) as remaining_tokens,
        cast(multiyear_tokens_at_start as {{ type_double() }}) as multiyear_tokens_at_start,
        cast(multiyear_consumed_tokens as {{ type_double() }}) as multiyear_consumed_tokens,
        _source,
        _extracted_at,
        _row_hash
    from source
    where {{ clean_text('contract_number') }} is not null
),

deduped as (
    {{ dedupe('cleaned', ['contract_number', 'coalesce(contract_year, -1)']) }}
)

select
    contract_number, contract_name, contract_start_date, contract_end_date, is_active,
    multiyear_provisioned_tokens, contract_year, year_start_date, year_end_date,
    provisioned_tokens, consumed_tokens, remaining_tokens, multiyear_tokens_at_start,
    multiyear_consumed_tokens, _source, _extracted_at, _row_hash
from deduped
