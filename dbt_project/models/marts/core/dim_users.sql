-- Users: every user with an assigned seat or any usage (grain user_key).
select
    user_key,
    user_id,
    hashed_user_id,
    email,
    user_name,
    full_name,
    team_name,
    geo,
    country,
    city,
    department,
    cost_center,
    project,
    skill_level,
    has_metadata,
    first_used_date,
    last_used_date,
    is_assigned
from {{ ref('int_users') }}
