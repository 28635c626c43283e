{#- Usage per user x product x usage_month, built from fct_daily_usage and incremental the
    same way: a run re-aggregates only the months that received new raw rows, so the
    monthly marts (low_usage_users, usage_by_cost_center, flex_overuse) read a small table
    instead of every day of usage. -#}
{{ usage_month_incremental_config() }}

with usage as (
    select * from {{ ref('fct_daily_usage') }}
    {%- if is_incremental() %}
    where {{ changed_usage_months_filter('usage_date', ref('fct_daily_usage')) }}
    {%- endif %}
)

{{ monthly_product_usage_sql('usage') }}
