-- Every seat assignment (user x team x offering, Users report) and whether the user used
-- that offering on a subscription in the trailing `inactive_days`: the product itself for
-- a standalone offering, any product of the collection for a collection, and any usage
-- row that names the offering. license_utilization and license_utilization_by_org count
-- from it, so both count alike.
with params as (
    {{ marts_params_cte() }}
),

assignments as (
    select distinct user_key, team_name, offering_name, is_collection
    from {{ ref('int_seat_assignments') }}
),

in_use as (
    select distinct a.user_key, a.team_name, a.offering_name
    from assignments as a
    cross join params as p
    inner join {{ ref('fct_daily_usage') }} as u
        on u.user_key = a.user_key
       and u.licensing = 'subscription'
       and {{ marts_in_trailing_window('u.usage_date', 'p.as_of_date', marts_var('inactive_days')) }}
    left join {{ ref('int_collection_products') }} as cp
        on a.is_collection
       and cp.collection_name = a.offering_name
       and cp.product_name = u.product_name
    where u.offering_name = a.offering_name
       or (not a.is_collection and u.product_name = a.offering_name)
       or (a.is_collection and (u.collection_name = a.offering_name or cp.product_name is not null))
)

select
    a.user_key,
    a.team_name,
    a.offering_name,
    a.is_collection,
    iu.user_key is not null as is_in_use
from assignments as a
left join in_use as iu
    on iu.user_key = a.user_key
   and iu.team_name = a.team_name
   and iu.offering_name = a.offering_name
