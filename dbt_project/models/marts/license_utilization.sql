{#- license_utilization: one row per team x offering (from the Subscriptions and Users
    reports): seats_purchased, seats_assigned, seats_in_use = assigned users who used that
    offering on a subscription in the trailing `inactive_days` (the product itself for a
    standalone offering, any product of the collection for a collection; a usage row whose
    offering_name is the offering always counts). utilization_pct = in use / purchased. -#}
with params as (
    {{ marts_params_cte() }}
),

assigned_counts as (
    select
        team_name,
        offering_name,
        max(case when is_collection then 1 else 0 end) as is_collection_flag,
        count(distinct user_key) as seats_assigned,
        count(distinct case when is_in_use then user_key end) as seats_in_use
    from {{ ref('int_seats_in_use') }}
    group by team_name, offering_name
),

purchased as (
    select team_name, offering_name, sum(seats_purchased) as seats_purchased
    from {{ ref('int_seats_purchased') }}
    group by team_name, offering_name
),

team_offerings as (
    select team_name, offering_name from assigned_counts
    union
    select team_name, offering_name from purchased
)

select
    t.team_name,
    t.offering_name,
    coalesce(ac.is_collection_flag = 1, col.product_name is not null) as is_collection,
    coalesce(pu.seats_purchased, 0) as seats_purchased,
    coalesce(ac.seats_assigned, 0) as seats_assigned,
    coalesce(ac.seats_in_use, 0) as seats_in_use,
    greatest(coalesce(pu.seats_purchased, 0) - coalesce(ac.seats_assigned, 0), 0) as seats_unassigned,
    case when coalesce(pu.seats_purchased, 0) > 0
         then round({{ marts_double('100 * coalesce(ac.seats_in_use, 0)') }} / pu.seats_purchased, 1)
    end as utilization_pct,
    case when coalesce(ac.seats_assigned, 0) > 0
         then round({{ marts_double('100 * ac.seats_in_use') }} / ac.seats_assigned, 1)
    end as assigned_in_use_pct,
    cast({{ marts_var('inactive_days') }} as {{ dbt.type_int() }}) as inactive_days,
    p.as_of_date
from team_offerings as t
cross join params as p
left join assigned_counts as ac on ac.team_name = t.team_name and ac.offering_name = t.offering_name
left join purchased as pu on pu.team_name = t.team_name and pu.offering_name = t.offering_name
left join {{ ref('dim_products') }} as col
    on col.product_name = t.offering_name and col.is_collection
