-- Every user with a seat (Users report) or any usage, with identity, main team, usage
-- dates and the customer's metadata joined on var metadata_key.
{{ config(materialized='table') }}

{%- set unmapped = marts_unmapped_label() %}

with seat_users as (
    select
        {{ user_key('users') }} as user_key,
        users.user_id, users.hashed_user_id, users.email, users.user_name,
        coalesce(
            users.full_name,
            case when users.first_name is not null or users.last_name is not null
                then trim({{ dbt.concat(["coalesce(users.first_name, '')", "' '", "coalesce(users.last_name, '')"]) }})
            end
        ) as full_name,
        coalesce(users.team_name, users.team_id) as team_name
    from {{ ref('stg_premium__users') }} as users
    {{ user_key_joins('users') }}
),

-- usage per user x team x month (incremental): team days add up over months
usage_months as (
    select * from {{ ref('int_user_team_months') }}
),

identities as (
    select user_key, user_id, hashed_user_id, email, user_name, full_name, 1 as from_seat
    from seat_users where user_key is not null
    union all
    select user_key, user_id, hashed_user_id, email, user_name, full_name, 0 as from_seat
    from usage_months
),

population as (
    select
        user_key,
        max(user_id) as user_id,
        max(hashed_user_id) as hashed_user_id,
        max(email) as email,
        max(user_name) as user_name,
        max(full_name) as full_name,
        max(from_seat) = 1 as is_assigned
    from identities
    group by user_key
),

-- main team: the team with the most usage days, else the team of a seat
team_days as (
    select user_key, team_name, sum(usage_days) as usage_days, 1 as team_rank_source
    from usage_months
    where team_name is not null
    group by user_key, team_name
    union all
    select user_key, team_name, 0 as usage_days, 0 as team_rank_source
    from seat_users
    where user_key is not null and team_name is not null
),

main_team as (
    select user_key, team_name
    from (
        select
            user_key, team_name,
            row_number() over (
                partition by user_key
                order by team_rank_source desc, usage_days desc, team_name
            ) as team_rank
        from team_days
    ) as ranked
    where team_rank = 1
),

usage_dates as (
    select user_key, min(first_used_date) as first_used_date, max(last_used_date) as last_used_date
    from usage_months
    group by user_key
),

-- one metadata row per key (duplicates fail the no_duplicate_metadata_keys test)
metadata as (
    select * from (
        select
            metadata.*,
            row_number() over (partition by metadata_key order by _row_hash) as key_rank
        from {{ ref('stg_customer__user_metadata') }} as metadata
        where metadata_key is not null
    ) as ranked
    where key_rank = 1
)

select
    population.user_key,
    population.user_id,
    population.hashed_user_id,
    population.email,
    population.user_name,
    coalesce(population.full_name, metadata.full_name) as full_name,
    main_team.team_name,
    {%- for column in ['geo', 'country', 'city', 'department', 'cost_center', 'project', 'skill_level'] %}
    coalesce(metadata.{{ column }}, {{ unmapped }}) as {{ column }},
    {%- endfor %}
    metadata.project as project_list,
    metadata.metadata_key is not null as has_metadata,
    usage_dates.first_used_date,
    usage_dates.last_used_date,
    population.is_assigned
from population
left join main_team on main_team.user_key = population.user_key
left join usage_dates on usage_dates.user_key = population.user_key
left join metadata on metadata.metadata_key = {{ metadata_key_expression('population.') }}
