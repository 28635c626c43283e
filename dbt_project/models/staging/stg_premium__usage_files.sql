-- Usage report rows from Premium exports and usage files downloaded by hand.
-- product_name is the product used; offering_name the subscription it was used through.
-- The same usage can arrive in several overlapping files in different column layouts
-- (so with different row hashes): one row is kept per business key, the newest.
with source as (
    select * from {{ source('raw', 'premium_usage_files') }}
),

cleaned as (
    select
        cast(usage_date as date) as usage_date,
        {{ clean_text('team_name') }} as team_name,
        {{ clean_text('team_id') }} as team_id,
        {{ clean_user_identity() }},
        {{ clean_text('product_name') }} as product_name,
        {{ clean_text('offering_name') }} as offering_name,
        upper({{ clean_text('product_line_code') }}) as product_line_code,
        upper({{ clean_text('feature_id') }}) as feature_code,
        {{ clean_text('version') }} as version,
        {{ licensing_from('usage_type', 'offering_name') }} as licensing,
        {{ clean_text('usage_type') }} as usage_type,
        cast(coalesce(tokens, 0) as {{ type_double() }}) as tokens,
        {{ clean_text('subscription_id') }} as subscription_id,
        {{ clean_text('contract_number') }} as contract_number,
        _source,
        _extracted_at,
        _row_hash
    from source
    where usage_date is not null
),

deduped as (
    {{ dedupe('cleaned', [
        'usage_date',
        "coalesce(user_id, '')", "coalesce(hashed_user_id, '')", "coalesce(email, '')",
        "coalesce(user_name, '')",
        "coalesce(team_name, team_id, '')",
        'product_name', "coalesce(offering_name, '')", "coalesce(version, '')", 'licensing',
    ]) }}
)

select
    usage_date, team_name, team_id, user_id, hashed_user_id, email, first_name, last_name,
    full_name, user_name, product_name, offering_name, product_line_code, feature_code,
    version, licensing, usage_type, tokens, subscription_id, contract_number,
    _source, _extracted_at, _row_hash
from deduped
