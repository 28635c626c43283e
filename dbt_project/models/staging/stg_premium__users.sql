-- Users report: one row per user x assigned offering (seat assignments).
with source as (
    select * from {{ source('raw', 'premium_users') }}
)

select
    {{ clean_text('team_name') }} as team_name,
    {{ clean_text('team_id') }} as team_id,
    {{ clean_user_identity() }},
    {{ clean_text('offering_name') }} as offering_name,
    {{ clean_text('product_name') }} as product_name,
    {{ clean_text('subscription_id') }} as subscription_id,
    {{ clean_text('role') }} as role,
    {{ clean_text('account_status') }} as account_status,
    {{ clean_text('access_method') }} as access_method,
    {{ clean_text('plan') }} as plan,
    {{ clean_text('term') }} as term,
    {{ clean_text('seat_assignment') }} as seat_assignment,
    cast(assigned_date as date) as assigned_date,
    cast(last_accessed as date) as last_accessed_date,
    days_inactive,
    days_used,
    _source,
    _extracted_at,
    _row_hash
from source
where {{ clean_text('offering_name') }} is not null
