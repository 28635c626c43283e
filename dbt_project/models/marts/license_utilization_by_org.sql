{#- license_utilization_by_org: seats_assigned and seats_in_use (same rule as
    license_utilization, trailing `inactive_days`) per team x offering x geo x country x
    city x department of the assigned users. Purchased seats belong to a team, not to a
    department, so they are only in license_utilization (sums never double count). -#}
with params as (
    {{ marts_params_cte() }}
),

assignments as (
    select distinct user_key, team_name, offering_name, is_collection
    from {{ ref('int_seat_assignments') }}
),

seats_in_use_by_user as (
    {{ marts_seats_in_use_sql() }}
)

select
    a.team_name,
    a.offering_name,
    d.geo,
    d.country,
    d.city,
    d.department,
    count(distinct a.user_key) as seats_assigned,
    count(distinct iu.user_key) as seats_in_use,
    cast({{ marts_var('inactive_days') }} as {{ dbt.type_int() }}) as inactive_days,
    max(p.as_of_date) as as_of_date
from assignments as a
cross join params as p
inner join {{ ref('dim_users') }} as d on d.user_key = a.user_key
left join seats_in_use_by_user as iu
    on iu.user_key = a.user_key
   and iu.team_name = a.team_name
   and iu.offering_name = a.offering_name
group by a.team_name, a.offering_name, d.geo, d.country, d.city, d.department
