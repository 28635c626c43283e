{#- The body of a CTE listing (user_key, team_name, offering_name) for every seat assignment
    the user used in the trailing `inactive_days` on a subscription. Shared by
    license_utilization and license_utilization_by_org so both count the same way; expects
    CTEs `params` (as_of_date) and `assignments` (user_key, team_name, offering_name,
    is_collection) in the calling model. -#}
{% macro marts_seats_in_use_sql() -%}
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
{%- endmacro %}
