{#- For the incremental models keyed on usage_month: a filter on `date_column` selecting the
    months that received rows since this model's last build (its max(extracted_at)), read
    before the query runs and inlined as date ranges (so it reaches the Parquet scans through
    the staging views). The changes come from `upstream`, a relation with usage_month and
    extracted_at columns (the models built from fct_daily_usage pass the fact: a month the
    fact rebuilt without a newer row has not changed for them), by default from the light
    lineage view int_usage_loads over the usage staging views. Call only when is_incremental(). -#}
{% macro changed_usage_months_filter(date_column='usage_date', upstream=none) -%}
    {%- if upstream is none -%}
        {%- set changes -%}
            select usage_month, last_extracted_at from {{ ref('int_usage_loads') }}
        {%- endset -%}
    {%- else -%}
        {%- set changes -%}
            select usage_month, max(extracted_at) as last_extracted_at from {{ upstream }} as upstream_rows group by usage_month
        {%- endset -%}
    {%- endif -%}
    {%- set months_sql -%}
        select distinct cast(loads.usage_month as {{ dbt.type_string() }}) as usage_month
        from ({{ changes }}) as loads
        cross join (select max(extracted_at) as extracted_at from {{ this }}) as last_build
        where last_build.extracted_at is null or loads.last_extracted_at > last_build.extracted_at
        order by 1
    {%- endset -%}
    {%- set changed_months = run_query(months_sql).columns[0].values() if execute else [] -%}
    {%- set month_ranges = [] -%}
    {%- for month in changed_months -%}
        {%- set first_day = modules.datetime.date.fromisoformat((month | string)[:10]) -%}
        {%- set next_month = (first_day.replace(day=28) + modules.datetime.timedelta(days=4)).replace(day=1) -%}
        {%- do month_ranges.append("(" ~ date_column ~ " >= cast('" ~ first_day ~ "' as date) and "
                                   ~ date_column ~ " < cast('" ~ next_month ~ "' as date))") -%}
    {%- endfor -%}
    {{- (month_ranges | join(' or ')) if month_ranges else '1 = 0' -}}
{%- endmacro %}


{#- The config every usage_month-incremental model shares: delete+insert by month on DuckDB,
    insert_overwrite of usage_month partitions on Spark. -#}
{% macro usage_month_incremental_config() -%}
    {%- set is_spark = target.type in ('spark', 'databricks') -%}
    {{ config(
        materialized='incremental',
        incremental_strategy=('insert_overwrite' if is_spark else 'delete+insert'),
        unique_key=(none if is_spark else 'usage_month'),
        partition_by=(['usage_month'] if is_spark else none),
        file_format=('parquet' if target.type == 'spark' else none),
    ) }}
{%- endmacro %}
