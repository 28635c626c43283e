{#- unmapped_users (data quality): one row per user with a seat or any usage who has no row
    in the metadata file (matched on var `metadata_key`), with the value to add to the file
    (key_value) and how much they used: usage_days (all time up to the as-of date) and
    recent_usage_days (trailing `lookback_days`). Sorted by BI tools, not here. -#}
with params as (
    {{ marts_params_cte() }}
),

unmapped as (
    select user_key from {{ ref('dim_users') }} where not has_metadata
),

-- only the unmapped users' usage is read (usually a few of them)
usage_days as (
    select
        u.user_key,
        count(distinct u.usage_date) as usage_days,
        count(distinct case when {{ marts_in_trailing_window('u.usage_date', 'p.as_of_date', marts_var('lookback_days')) }}
                            then u.usage_date end) as recent_usage_days,
        max(u.usage_date) as last_used_date
    from {{ ref('fct_daily_usage') }} as u
    inner join unmapped on unmapped.user_key = u.user_key
    cross join params as p
    where u.usage_date <= p.as_of_date
    group by u.user_key
)

select
    d.user_key,
    d.user_id,
    d.hashed_user_id,
    d.email,
    d.user_name,
    d.full_name,
    d.team_name,
    d.is_assigned,
    {#- normalised like metadata_key_expression() (macros/metadata_key.sql), which rejects other values -#}
    {%- set key = var('metadata_key', 'email') | string | trim | lower %}
    '{{ key }}' as metadata_key,
    {%- if key in ('email', 'user_id', 'user_name', 'hashed_user_id') %}
    d.{{ key }} as key_value,
    {%- else %}
    cast(null as {{ dbt.type_string() }}) as key_value,
    {%- endif %}
    coalesce(ud.usage_days, 0) as usage_days,
    coalesce(ud.recent_usage_days, 0) as recent_usage_days,
    ud.last_used_date,
    p.as_of_date
from {{ ref('dim_users') }} as d
cross join params as p
left join usage_days as ud on ud.user_key = d.user_key
where not d.has_metadata
