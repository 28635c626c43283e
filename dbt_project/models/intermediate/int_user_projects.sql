-- One row per (user, project) after splitting the metadata's 'A;B' project lists
-- (trimmed, empty parts dropped); users without a project get the unmapped label.
{%- set unmapped = "'" ~ (var('unmapped_label', 'Unmapped') | replace("'", "''")) ~ "'" %}

with users as (
    select user_key, project from {{ ref('int_users') }}
),

parts as (
    select user_key, trim(project_part) as project
    from (
        select user_key, {{ explode_list('project') }} as project_part
        from users
    ) as exploded
),

named as (
    select distinct user_key, project from parts where project <> ''
)

select user_key, project from named
union all
select users.user_key, {{ unmapped }} as project
from users
where not exists (select 1 from named where named.user_key = users.user_key)
