-- Which products each catalog collection contains: one row per (collection, product).
with products as (
    select product_name, collections
    from {{ ref('product_catalog') }}
    where not is_collection
),

parts as (
    select product_name, {{ explode_list('collections') }} as collection_part
    from products
)

select distinct
    names.collection_name,
    parts.product_name
from parts
inner join {{ ref('int_collection_names') }} as names
    on names.name_key = lower(trim(parts.collection_part))
