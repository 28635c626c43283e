-- Every name a collection goes by (catalog name, aliases, product line code), lower-cased,
-- mapped to the canonical catalog collection name. Offering names in files and product
-- lines in API rows are resolved through it.
with collections as (
    select product_name, product_line_code, aliases
    from {{ ref('product_catalog') }}
    where is_collection
),

alias_parts as (
    select product_name, {{ explode_list('aliases') }} as alias_name
    from collections
),

names as (
    select product_name as collection_name, product_name as known_name from collections
    union all
    select product_name, product_line_code from collections
    union all
    select product_name, trim(alias_name) as alias_name from alias_parts where trim(alias_name) <> ''
)

select
    lower(known_name) as name_key,
    min(collection_name) as collection_name
from names
where known_name is not null
group by lower(known_name)
