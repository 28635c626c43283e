-- One row per (user, project) after splitting the metadata's 'A;B' project lists
-- (trimmed, empty parts dropped). A user without a project has no row: not being in a
-- project is not a project (unmapped_users lists the users without metadata).
with users as (
    select user_key, project_list from {{ ref('int_users') }}
    where project_list is not null
),

parts as (
    select user_key, trim(project_part) as project
    from (
        select user_key, {{ explode_list('project_list') }} as project_part
        from users
    ) as exploded
)

select distinct user_key, project
from parts
where project <> ''
