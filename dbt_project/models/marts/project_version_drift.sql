{#- project_version_drift: one row per project x product x version used in the trailing
    `lookback_days`, with the number of users on it; only project x product pairs where
    more than one version is in use appear. A user's projects come from the metadata file
    (`a;b` split into one row each); users without one are left out.
    is_latest_version marks the newest version in the pair (numeric order when versions
    are numbers, else text order). -#}
with params as (
    {{ marts_params_cte() }}
),

-- distinct before the project join: a user with two projects would double every day row
user_versions as (
    select distinct u.user_key, u.product_name, u.version
    from {{ ref('fct_daily_usage') }} as u
    cross join params as p
    where u.version is not null
      and trim(u.version) <> ''
      and {{ marts_in_trailing_window('u.usage_date', 'p.as_of_date', marts_var('lookback_days')) }}
),

per_version as (
    select
        up.project,
        uv.product_name,
        uv.version,
        count(*) as users  -- one row per user: int_user_projects is unique per (user, project)
    from user_versions as uv
    inner join {{ ref('int_user_projects') }} as up on up.user_key = uv.user_key
    group by up.project, uv.product_name, uv.version
),

ranked as (
    select
        v.*,
        count(*) over (partition by project, product_name) as versions_in_use,
        row_number() over (
            partition by project, product_name
            order by
                case when {{ marts_version_number('version') }} is null then 1 else 0 end,
                {{ marts_version_number('version') }} desc,
                version desc
        ) as version_rank
    from per_version as v
)

select
    r.project,
    r.product_name,
    r.version,
    r.users,
    r.versions_in_use,
    (r.version_rank = 1) as is_latest_version,
    cast({{ marts_var('lookback_days') }} as {{ dbt.type_int() }}) as lookback_days,
    p.as_of_date
from ranked as r
cross join params as p
where r.versions_in_use > 1
