{#- var as_of_date as text, or none when it is unset (null, '', 'none', 'null'). -#}
{% macro as_of_date_var() -%}
    {%- set value = var('as_of_date', none) -%}
    {%- if value is none or (value | string | trim) in ('', 'none', 'None', 'null') -%}
        {{- return(none) -}}
    {%- endif -%}
    {{- return(value | string | trim) -}}
{%- endmacro %}


{#- The as-of date every trailing window ends on: var as_of_date as a DATE literal, or the
    latest usage_date in fct_daily_usage (so the same data always gives the same answer). -#}
{% macro as_of_date() -%}
    {%- set value = as_of_date_var() -%}
    {%- if value is none -%}
        (select max(usage_date) from {{ ref('fct_daily_usage') }})
    {%- else -%}
        cast('{{ value }}' as date)
    {%- endif -%}
{%- endmacro %}
