-- What Premium knows about each hashed id and each email: the Autodesk user id (and the
-- hashed id) they belong to. Lets a row that carries only a hashed id or only an email
-- (Token Flex) resolve to the same user_key as the rows that carry the user id.
-- A table: four models join it, two of them twice.
{{ config(materialized='table') }}

with identities as (
    select user_id, hashed_user_id, email from {{ ref('stg_premium__usage_identities') }}
    union all
    select user_id, hashed_user_id, email from {{ ref('stg_premium__usage_file_identities') }}
    union all
    select user_id, hashed_user_id, email from {{ ref('stg_premium__users') }}
),

by_hashed as (
    select
        hashed_user_id as identity_value,
        min(user_id) as user_id
    from identities
    where hashed_user_id is not null
    group by hashed_user_id
),

by_email as (
    select
        identities.email as identity_value,
        min(coalesce(identities.user_id, by_hashed.user_id)) as user_id,
        min(identities.hashed_user_id) as hashed_user_id
    from identities
    left join by_hashed on by_hashed.identity_value = identities.hashed_user_id
    where identities.email is not null
    group by identities.email
)

select 'hashed_user_id' as identity_type, identity_value, user_id, cast(null as {{ dbt.type_string() }}) as hashed_user_id
from by_hashed
union all
select 'email' as identity_type, identity_value, user_id, hashed_user_id
from by_email
