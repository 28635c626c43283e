{#- Usage per user x product x usage_month from rows shaped like fct_daily_usage (grain user x
    product x day x licensing). One definition for fct_monthly_product_usage and for the
    marts when var as_of_date cuts a month short (see marts_monthly_product_usage). -#}
{% macro monthly_product_usage_sql(usage_relation) -%}
    select
        u.user_key,
        u.product_name,
        u.usage_month,
        count(distinct u.usage_date) as usage_days,
        sum(u.tokens) as tokens,
        {{ marts_licensing_label('u.licensing') }} as licensing,
        {{ marts_sorted_list('u.offering_name') }} as offering_name,
        {#- one row per day and licensing model: Flex rows are distinct days -#}
        sum(case when u.licensing = 'flex' then 1 else 0 end) as flex_usage_days,
        sum(case when u.licensing = 'flex' then u.tokens else 0 end) as flex_tokens,
        min(u.usage_date) as first_used_date,
        max(u.usage_date) as last_used_date,
        max(u.extracted_at) as extracted_at
    from {{ usage_relation }} as u
    group by u.user_key, u.product_name, u.usage_month
{%- endmacro %}


{#- What the monthly marts read: fct_monthly_product_usage (incremental, so a daily build
    re-aggregates one month) when the as-of date is the latest usage date, which every row
    is on or before. An explicit var as_of_date may end inside a month: then the same
    aggregate is computed from fct_daily_usage rows up to that date. A mart calling this
    declares `-- depends_on: {{ ref('fct_monthly_product_usage') }}`. -#}
{% macro marts_monthly_product_usage() -%}
    {%- if as_of_date_var() is none -%}
        {{ ref('fct_monthly_product_usage') }}
    {%- else -%}
        ({{ monthly_product_usage_sql(
            "(select * from " ~ ref('fct_daily_usage') ~ " where usage_date <= " ~ as_of_date() ~ ")"
        ) }})
    {%- endif -%}
{%- endmacro %}
