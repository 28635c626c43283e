-- Subscriptions report: one row per subscription with its seat quantity.
-- A subscription seen in several snapshots keeps its newest row.
with source as (
    select * from {{ source('raw', 'premium_subscriptions') }}
),

cleaned as (
    select
        {{ clean_text('team_name') }} as team_name,
        {{ clean_text('team_id') }} as team_id,
        {{ clean_text('subscription_id') }} as subscription_id,
        {{ clean_text('offering_name') }} as offering_name,
        upper({{ clean_text('product_line_code') }}) as product_line_code,
        {{ clean_text('plan') }} as plan,
        {{ clean_text('term') }} as term,
        {{ clean_text('usage_type') }} as usage_type,
        {{ clean_text('access_method') }} as access_method,
        cast(coalesce(seat_quantity, 0) as {{ dbt.type_bigint() }}) as seat_quantity,
        {{ clean_text('subscription_status') }} as subscription_status,
        coalesce(lower({{ clean_text('subscription_status') }}), 'active')
            not in ('expired', 'inactive', 'terminated', 'canceled', 'cancelled', 'suspended', 'closed')
            as is_active,
        cast(start_date as date) as start_date,
        cast(end_date as date) as end_date,
        cast(autorenew_date as date) as autorenew_date,
        {{ clean_text('contract_number') }} as contract_number,
        {{ clean_email('contract_manager_email') }} as contract_manager_email,
        {{ clean_text('reseller_name') }} as reseller_name,
        _source,
        _extracted_at,
        _row_hash
    from source
    where {{ clean_text('offering_name') }} is not null
),

deduped as (
    {{ dedupe('cleaned', ["coalesce(subscription_id, _row_hash)", "coalesce(team_name, team_id, '')"]) }}
)

select
    team_name, team_id, subscription_id, offering_name, product_line_code, plan, term,
    usage_type, access_method, seat_quantity, subscription_status, is_active, start_date,
    end_date, autorenew_date, contract_number, contract_manager_email, reseller_name,
    _source, _extracted_at, _row_hash
from deduped
