{#- Table and view materializations for DuckDB: one `create or replace` and one commit.

    dbt-duckdb (table) and dbt-core (view) build `<name>__dbt_tmp`, rename the old relation
    to `<name>__dbt_backup`, rename the new one into place, commit and drop the backup: six
    statements and three adapter macro calls per model, a swap that databases without
    transactional DDL need. DuckDB's DDL is transactional: `create or replace` inside the
    model's transaction is the same atomic swap. With 39 models that swap was about a third
    of a one-new-day build's time spent outside SQL (bench/bench_build.py; docs/marts.md).

    The project uses none of the features those materializations add (contracts, grants,
    indexes, persist_docs, Python models, DuckLake partitioning): a model that sets one
    stops with an error naming it instead of silently losing it. Other adapters (Spark)
    keep their own materializations. -#}

{% materialization table, adapter='duckdb' %}
  {{ return(duckdb_create_or_replace('table')) }}
{% endmaterialization %}

{% materialization view, adapter='duckdb' %}
  {{ return(duckdb_create_or_replace('view')) }}
{% endmaterialization %}


{% macro duckdb_create_or_replace(kind) %}
  {%- do duckdb_create_or_replace_check_config(kind) -%}
  {%- set existing_relation = load_cached_relation(this) -%}
  {%- set target_relation = this.incorporate(type=kind) -%}
  {%- set sql_header = config.get('sql_header', none) -%}

  {{ run_hooks(pre_hooks, inside_transaction=False) }}
  -- `BEGIN` happens here:
  {{ run_hooks(pre_hooks, inside_transaction=True) }}

  {#- a view where a table goes (or the reverse): `create or replace` cannot change the kind -#}
  {%- if existing_relation is not none and existing_relation.type != kind %}
    {{ adapter.drop_relation(existing_relation) }}
  {%- endif %}

  {% call statement('main') -%}
    {{ sql_header if sql_header is not none }}
    create or replace {{ kind }} {{ target_relation }} as (
      {{ sql }}
    );
  {%- endcall %}

  {{ run_hooks(post_hooks, inside_transaction=True) }}
  {{ adapter.commit() }}
  {{ run_hooks(post_hooks, inside_transaction=False) }}

  {{ return({'relations': [target_relation]}) }}
{% endmacro %}


{% macro duckdb_create_or_replace_check_config(kind) %}
  {%- set unsupported = [] -%}
  {%- if model.get('language', 'sql') != 'sql' -%}{%- do unsupported.append('a ' ~ model.language ~ ' model') -%}{%- endif -%}
  {%- if config.get('contract') is not none and config.get('contract').enforced -%}{%- do unsupported.append('contract') -%}{%- endif -%}
  {%- for option in ['grants', 'indexes', 'persist_docs', 'partitioned_by', 'sorted_by'] -%}
    {%- if config.get(option) -%}{%- do unsupported.append(option) -%}{%- endif -%}
  {%- endfor -%}
  {%- if unsupported -%}
    {{ exceptions.raise_compiler_error(
        "model " ~ model.name ~ ": " ~ (unsupported | join(', ')) ~ " is not supported by this project's "
        ~ kind ~ " materialization for DuckDB (macros/materializations/duckdb_create_or_replace.sql); "
        ~ "remove the setting or that file") }}
  {%- endif -%}
{% endmacro %}
