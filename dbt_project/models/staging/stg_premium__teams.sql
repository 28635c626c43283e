-- Premium teams (contexts): one row per team, the newest snapshot.
with source as (
    select * from {{ source('raw', 'premium_teams') }}
),

cleaned as (
    select
        {{ clean_text('context_id') }} as context_id,
        {{ clean_text('team_name') }} as team_name,
        {{ clean_text('reporting_benefits') }} as reporting_benefits,
        _source,
        _extracted_at,
        _row_hash
    from source
    where {{ clean_text('context_id') }} is not null
),

deduped as (
    {{ dedupe('cleaned', ['context_id']) }}
)

select context_id, team_name, reporting_benefits, _source, _extracted_at, _row_hash
from deduped
