-- Seats bought per team x offering: the seat quantities of the team's active
-- subscriptions to that offering (collections by their canonical catalog name).
with subscriptions as (
    select * from {{ ref('stg_premium__subscriptions') }}
    where is_active
)

select
    coalesce(subscriptions.team_name, subscriptions.team_id) as team_name,
    coalesce(collection.collection_name, subscriptions.offering_name) as offering_name,
    max(case when collection.collection_name is not null then 1 else 0 end) = 1 as is_collection,
    sum(subscriptions.seat_quantity) as seats_purchased
from subscriptions
left join {{ ref('int_collection_names') }} as collection
    on collection.name_key = lower(subscriptions.offering_name)
group by
    coalesce(subscriptions.team_name, subscriptions.team_id),
    coalesce(collection.collection_name, subscriptions.offering_name)
