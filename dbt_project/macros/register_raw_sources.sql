{#- on-run-start: make source('raw', <dataset>) readable. Each raw dataset is a Delta table
    under <data-dir>/raw/<dataset> (docs/design.md).
    DuckDB: dbt-duckdb's delta plugin copies each table's current version (an Arrow dataset)
    into table raw.<dataset> when the source is resolved (meta save_mode 'ignore': only
    when the table is missing). The copies of the previous build are dropped here and every
    raw source resolved once, in the main thread, before any model: each model then reads the
    same version, and the copies stay readable after the run (staging views read them).
    Spark (local, without the Delta jars): each table's current files, as listed by the
    extractor under the build's lock in <data-dir>/dbt/raw_files/<dataset>.txt (one path a
    line, relative to the table), are read as Parquet; an empty table becomes an empty table of the
    source's typed columns. On Databricks, declare the sources USING DELTA LOCATION instead
    (see docs/design.md). -#}
{% macro register_raw_sources() -%}
    {{ return(adapter.dispatch('register_raw_sources', 'aps_usage')()) }}
{%- endmacro %}

{% macro default__register_raw_sources() -%}
    {%- if execute -%}
        {%- do run_query('create schema if not exists raw') -%}
        {%- for source_node in graph.sources.values() if source_node.source_name == 'raw' -%}
            {%- do run_query('drop table if exists raw.' ~ source_node.name) -%}
            {%- do source('raw', source_node.name) -%}
        {%- endfor -%}
    {%- endif -%}
    select 1
{%- endmacro %}

{% macro spark__register_raw_sources() -%}
    {%- if execute -%}
        {%- set data_dir = env_var('APS_USAGE_DATA_DIR', 'data') -%}
        {%- do run_query('create database if not exists raw') -%}
        {%- set views = run_query('show views in raw').columns[1].values() | list -%}
        {%- for source_node in graph.sources.values() if source_node.source_name == 'raw' -%}
            {%- set relation = 'raw.' ~ source_node.name -%}
            {%- set folder = data_dir ~ '/raw/' ~ source_node.name -%}
            {%- set listed = run_query("select value from text.`" ~ data_dir ~ "/dbt/raw_files/" ~ source_node.name ~ ".txt`") -%}
            {%- set files = listed.columns[0].values() | list -%}
            {%- set names = [] -%}
            {%- set typed_nulls = [] -%}
            {%- for column in source_node.columns.values() -%}
                {%- do names.append('`' ~ column.name ~ '`') -%}
                {%- do typed_nulls.append('cast(null as ' ~ column.data_type ~ ') as `' ~ column.name ~ '`') -%}
            {%- endfor -%}
            {#- one select per current file (the declared columns: every file has them all) -#}
            {%- set selects = [] -%}
            {%- for file in files -%}
                {%- do selects.append('select ' ~ names | join(', ') ~ ' from parquet.`' ~ folder ~ '/' ~ file ~ '`') -%}
            {%- endfor -%}
            {%- if not selects -%}
                {%- do selects.append('select ' ~ typed_nulls | join(', ') ~ ' where false') -%}
            {%- endif -%}
            {%- if source_node.name in views -%}
                {%- do run_query('drop view ' ~ relation) -%}
            {%- else -%}
                {%- do run_query('drop table if exists ' ~ relation) -%}
            {%- endif -%}
            {%- do run_query('create view ' ~ relation ~ ' as ' ~ selects | join(' union all ')) -%}
        {%- endfor -%}
    {%- endif -%}
    select 1
{%- endmacro %}

{#- Databricks reads the Delta tables themselves (object storage the workspace can reach). -#}
{% macro databricks__register_raw_sources() -%}
    {%- if execute -%}
        {%- set data_dir = env_var('APS_USAGE_DATA_DIR') -%}
        {%- do run_query('create schema if not exists raw') -%}
        {%- for source_node in graph.sources.values() if source_node.source_name == 'raw' -%}
            {%- do run_query("create table if not exists raw." ~ source_node.name
                             ~ " using delta location '" ~ data_dir ~ "/raw/" ~ source_node.name ~ "'") -%}
        {%- endfor -%}
    {%- endif -%}
    select 1
{%- endmacro %}
