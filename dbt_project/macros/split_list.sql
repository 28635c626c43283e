{#- One output row per element of a ';'-separated list column, as a select-list expression:
    `select key, {{ explode_list('col') }} as part from t`. NULL lists give no rows; callers
    trim the parts and drop empty ones. -#}
{% macro explode_list(column, separator=';') -%}
    {{ return(adapter.dispatch('explode_list', 'aps_usage')(column, separator)) }}
{%- endmacro %}

{% macro default__explode_list(column, separator) -%}
    unnest(string_split({{ column }}, '{{ separator }}'))
{%- endmacro %}

{% macro spark__explode_list(column, separator) -%}
    explode(split({{ column }}, '{{ separator }}'))
{%- endmacro %}
