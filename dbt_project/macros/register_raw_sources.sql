{#- on-run-start: make source('raw', <dataset>) readable.
    DuckDB reads the Parquet folders through each source's meta.external_location, so
    nothing is needed. Spark registers each raw/<dataset>/ folder as an external Parquet
    table raw.<dataset> (recursiveFileLookup: the month=YYYY-MM folders are not partitions;
    mergeSchema: files written at different times may hold extra columns). -#}
{% macro register_raw_sources() -%}
    {{ return(adapter.dispatch('register_raw_sources', 'aps_usage')()) }}
{%- endmacro %}

{% macro default__register_raw_sources() -%}
    select 1
{%- endmacro %}

{% macro spark__register_raw_sources() -%}
    {%- if execute -%}
        {%- set data_dir = env_var('APS_USAGE_DATA_DIR', 'data') -%}
        {%- do run_query('create database if not exists raw') -%}
        {%- for source_node in graph.sources.values() if source_node.source_name == 'raw' -%}
            {%- set table = 'raw.' ~ source_node.name -%}
            {%- do run_query('drop table if exists ' ~ table) -%}
            {%- do run_query(
                "create table " ~ table ~ " using parquet options ("
                ~ "path '" ~ data_dir ~ "/raw/" ~ source_node.name ~ "', "
                ~ "recursiveFileLookup 'true', mergeSchema 'true')"
            ) -%}
        {%- endfor -%}
    {%- endif -%}
    select 1
{%- endmacro %}

{% macro databricks__register_raw_sources() -%}
    {{ return(spark__register_raw_sources()) }}
{%- endmacro %}
