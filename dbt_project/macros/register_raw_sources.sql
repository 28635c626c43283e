{#- on-run-start: make source('raw', <dataset>) readable. Each raw dataset is a Delta table
    under <data-dir>/raw/<dataset> (docs/design.md).
    DuckDB, a local data dir: raw.<dataset> is a view over the Parquet files of the table's
    current version, as listed by the extractor under the build's lock in
    <data-dir>/dbt/raw_files/<dataset>.txt (one path a line, relative to the table).
    DuckDB, object storage (s3://, az://, ...; DuckDB cannot read those files without
    extensions): dbt-duckdb's delta plugin copies each table's current version (an Arrow
    dataset) into table raw.<dataset> when the source is resolved (meta save_mode 'ignore':
    only when the relation is missing, so it leaves a local data dir's view alone). Last
    build's relations are dropped here and every raw source resolved once, in the main
    thread, before any model: each model then reads the same version, and the views or
    copies stay readable after the run (staging views read them).
    Spark (local, without the Delta jars): each table's current files, as listed by the
    extractor under the build's lock in <data-dir>/dbt/raw_files/<dataset>.txt (one path a
    line, relative to the table), are read as Parquet; an empty table becomes an empty table of the
    source's typed columns. On Databricks, declare the sources USING DELTA LOCATION instead
    (see docs/design.md). -#}
{% macro register_raw_sources() -%}
    {{ return(adapter.dispatch('register_raw_sources', 'aps_usage')()) }}
{%- endmacro %}

{% macro default__register_raw_sources() -%}
    {%- set statements = [] -%}
    {%- if execute -%}
        {%- do run_query('create schema if not exists raw') -%}
        {%- set data_dir = env_var('APS_USAGE_DATA_DIR', 'data') -%}
        {%- set local = '://' not in env_var('APS_USAGE_DATA_URL', data_dir) -%}
        {%- set kinds = {} -%}
        {%- for row in run_query("select table_name, table_type from information_schema.tables "
                                 ~ "where table_catalog = current_database() and table_schema = 'raw'") -%}
            {%- do kinds.update({row[0]: row[1]}) -%}
        {%- endfor -%}
        {%- for source_node in graph.sources.values() if source_node.source_name == 'raw' -%}
            {%- set relation = 'raw.' ~ source_node.name -%}
            {%- set drop = ('drop view ' if kinds.get(source_node.name) == 'VIEW' else 'drop table if exists ') ~ relation -%}
            {%- if local -%}
                {#- A local data dir: a view over exactly the current version's files (10M
                    usage rows: the plugin's copy took 17.6 s of a 25-32 s one-new-day build;
                    docs/marts.md). Run as the hook's SQL, so an unreadable file fails the
                    on-run-start node; the delta plugin later finds raw.<dataset> and leaves it
                    (save_mode ignore). -#}
                {%- do statements.append(drop) -%}
                {%- do statements.append('create view ' ~ relation ~ ' as ' ~ aps_usage.raw_files_select(source_node, data_dir)) -%}
            {%- else -%}
                {%- do run_query(drop) -%}
                {%- do source('raw', source_node.name) -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {{ statements | join(';\n') if statements else 'select 1' }}
{%- endmacro %}

{#- select of the source's declared columns from the Parquet files listed in
    <data-dir>/dbt/raw_files/<dataset>.txt (paths relative to the table's folder);
    for an empty table, no row of the declared types (every timestamp of the extractor is UTC). -#}
{% macro raw_files_select(source_node, data_dir) -%}
    {%- set folder = data_dir ~ '/raw/' ~ source_node.name -%}
    {%- set listed = (data_dir ~ '/dbt/raw_files/' ~ source_node.name ~ '.txt') | replace("'", "''") -%}
    {%- set listing = run_query("select content from read_text('" ~ listed ~ "')") -%}
    {%- set files = [] -%}
    {%- for line in listing.columns[0].values()[0].split('\n') if line.strip() -%}
        {%- do files.append("'" ~ (folder ~ '/' ~ line.strip()) | replace("'", "''") ~ "'") -%}
    {%- endfor -%}
    {%- set names = [] -%}
    {%- set typed_nulls = [] -%}
    {%- for column in source_node.columns.values() -%}
        {%- do names.append('"' ~ column.name ~ '"') -%}
        {%- set data_type = 'timestamptz' if column.data_type == 'timestamp' else column.data_type -%}
        {%- do typed_nulls.append('cast(null as ' ~ data_type ~ ') as "' ~ column.name ~ '"') -%}
    {%- endfor -%}
    {%- if files -%}
        select {{ names | join(', ') }} from read_parquet([{{ files | join(', ') }}], union_by_name = true, hive_partitioning = false)
    {%- else -%}
        select {{ typed_nulls | join(', ') }} where false
    {%- endif -%}
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
