-- The distinct user identities (user id, hashed id, email) in the Premium inputs: usage
-- queries, usage files and the Users report, with the same row filters and cleaning as
-- their staging models. Read without the row-hash dedupe (a repeated row repeats its
-- identity), distinct before cleaning: int_user_identity_map costs a scan of three
-- columns instead of all usage.
{%- set inputs = [
    ('premium_usage', 'usage_date is not null'),
    ('premium_usage_files', 'usage_date is not null'),
    ('premium_users', clean_text('offering_name') ~ ' is not null'),
] %}

with raw_identities as (
    {%- for dataset, row_filter in inputs %}
    select distinct user_id, hashed_user_id, email
    from {{ source('raw', dataset) }}
    where {{ row_filter }}
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
