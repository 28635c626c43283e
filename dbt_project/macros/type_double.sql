{#- 64-bit floating point on every adapter (dbt.type_float() is a 32-bit FLOAT on Spark). -#}
{% macro type_double() -%}
    {{ return(adapter.dispatch('type_double', 'aps_usage')()) }}
{%- endmacro %}

{% macro default__type_double() -%}
    double
{%- endmacro %}
