{#- inactive_users: one row per user who has not used any product in the trailing
    `inactive_days` days (or never). Population: users with an assigned seat or any usage
    on/before the as-of date. Last use is taken on/before the as-of date, so a rebuild
    with an earlier as_of_date answers as of that day. -#}
with params as (
    {{ marts_params_cte() }}
),

usage_until_as_of as (
    select u.user_key, u.usage_date
    from {{ ref('fct_daily_usage') }} as u
    cross join params as p
    where u.usage_date <= p.as_of_date
),

last_use as (
    select user_key, max(usage_date) as last_used_date
    from usage_until_as_of
    group by user_key
),

assigned as (
    select
        user_key,
        count(distinct offering_name) as offerings_assigned_count,
        {{ marts_sorted_list('offering_name') }} as offerings_assigned
    from {{ ref('int_seat_assignments') }}
    group by user_key
),

population as (
    select user_key from last_use
    union
    select user_key from assigned
)

select
    d.user_key,
    {{ marts_user_columns('d') }},
    coalesce(a.offerings_assigned_count, 0) as offerings_assigned_count,
    a.offerings_assigned,
    (a.user_key is not null) as is_assigned,
    l.last_used_date,
    {{ marts_days_between('l.last_used_date', 'p.as_of_date') }} as days_since_last_use,
    cast({{ marts_var('inactive_days') }} as {{ dbt.type_int() }}) as inactive_days,
    p.as_of_date
from population as pop
inner join {{ ref('dim_users') }} as d on d.user_key = pop.user_key
left join last_use as l on l.user_key = pop.user_key
left join assigned as a on a.user_key = pop.user_key
cross join params as p
where l.last_used_date is null
   or l.last_used_date <= {{ marts_add_days('p.as_of_date', '-' ~ marts_var('inactive_days')) }}
