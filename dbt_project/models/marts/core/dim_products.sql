-- Products and collections of the catalog seed (grain product_name). Prices and tokens
-- per day are illustrative list values, meant to be replaced by the customer's own.
select
    product_name,
    feature_code,
    product_line_code,
    is_collection,
    cast(tokens_per_day as {{ type_double() }}) as tokens_per_day,
    cast(annual_price as {{ type_double() }}) as annual_price
from {{ ref('product_catalog') }}
