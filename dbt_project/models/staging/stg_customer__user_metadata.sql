-- The customer's user metadata file (geo, country, city, department, cost_center,
-- project, skill_level), keyed by the column named in var metadata_key.
with source as (
    select * from {{ source('raw', 'user_metadata') }}
),

cleaned as (
    select
        {{ clean_email('email') }} as email,
        {{ clean_text('user_id') }} as user_id,
        {{ clean_text('user_name') }} as user_name,
        {{ clean_text('hashed_user_id') }} as hashed_user_id,
        {{ clean_text('full_name') }} as full_name,
        {{ clean_text('geo') }} as geo,
        {{ clean_text('country') }} as country,
        {{ clean_text('city') }} as city,
        {{ clean_text('department') }} as department,
        {{ clean_text('cost_center') }} as cost_center,
        {{ clean_text('project') }} as project,
        {{ clean_text('skill_level') }} as skill_level,
        _source,
        _extracted_at,
        _row_hash
    from source
)

select
    {{ metadata_key_expression() }} as metadata_key,
    *
from cleaned
