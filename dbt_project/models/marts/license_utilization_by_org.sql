{#- license_utilization_by_org: seats_assigned and seats_in_use (same rule as
    license_utilization, trailing `inactive_days`) per team x offering x geo x country x
    city x department of the assigned users. Purchased seats belong to a team, not to a
    department, so they are only in license_utilization (sums never double count). -#}
with params as (
    {{ marts_params_cte() }}
),

assignments as (
    select * from {{ ref('int_seats_in_use') }}
)

select
    a.team_name,
    a.offering_name,
    d.geo,
    d.country,
    d.city,
    d.department,
    count(distinct a.user_key) as seats_assigned,
    count(distinct case when a.is_in_use then a.user_key end) as seats_in_use,
    cast({{ marts_var('inactive_days') }} as {{ dbt.type_int() }}) as inactive_days,
    max(p.as_of_date) as as_of_date
from assignments as a
cross join params as p
inner join {{ ref('dim_users') }} as d on d.user_key = a.user_key
group by a.team_name, a.offering_name, d.geo, d.country, d.city, d.department
