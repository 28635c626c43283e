-- The distinct user identities (user id, hashed id, email) in the Premium usage inputs
-- (usage queries and usage files), with the same row filter and cleaning as their staging
-- models. Read without the row-hash dedupe (a repeated row repeats its identity), distinct
-- before cleaning: int_user_identity_map costs a scan of three columns instead of all usage.
with raw_identities as (
    {%- for dataset in ['premium_usage', 'premium_usage_files'] %}
    select distinct user_id, hashed_user_id, email
    from {{ source('raw', dataset) }}
    where usage_date is not null
    {%- if not loop.last %}
    union
    {%- endif %}
    {%- endfor %}
)

select distinct
    {{ clean_text('user_id') }} as user_id,
    {{ clean_text('hashed_user_id') }} as hashed_user_id,
    {{ clean_email('email') }} as email
from raw_identities
