{#- Custom schema names are used as-is (staging, intermediate, marts), not prefixed with the
    target schema, so BI tools always find marts.<model>. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema | trim }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
