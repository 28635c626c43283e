-- Seats from the Users report: one row per user x team x offering. Collection offerings
-- are named by their canonical catalog name (the same name fct_daily_usage uses).
-- A table: four marts read it.
{{ config(materialized='table') }}

with users as (
    select * from {{ ref('stg_premium__users') }}
),

keyed as (
    select
        {{ user_key('users') }} as user_key,
        coalesce(users.team_name, users.team_id) as team_name,
        coalesce(collection.collection_name, users.offering_name) as offering_name,
        collection.collection_name is not null as is_collection,
        users.assigned_date
    from users
    {{ user_key_joins('users') }}
    left join {{ ref('int_collection_names') }} as collection
        on collection.name_key = lower(users.offering_name)
)

select
    user_key,
    team_name,
    offering_name,
    is_collection,
    min(assigned_date) as assigned_date
from keyed
where user_key is not null
group by user_key, team_name, offering_name, is_collection
