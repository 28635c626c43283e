{#- The marts' numeric vars, checked: a bad value (`--vars '{lookback_days: 0}'`, 'abc', 7.5
    days) stops the build with one line naming the var, instead of a division by zero or a
    silently empty mart. Returns the value as a number for the SQL. -#}


{% macro marts_var(name) -%}
    {%- set whole = {
        'inactive_days': 1, 'lookback_days': 1, 'low_usage_max_days': 1, 'flex_overuse_min_days': 0,
        'multi_product_min_products': 1, 'multi_product_min_days': 0, 'infrequent_max_days': 0,
        'collection_candidate_min_products': 1,
    } -%}
    {%- set decimal = {'flex_candidate_max_days': 0, 'token_price': 0} -%}
    {%- set defaults = {'collection_candidate_min_products': 2} -%}
    {%- if name not in whole and name not in decimal -%}
        {{ exceptions.raise_compiler_error("marts_var: '" ~ name ~ "' is not a numeric var of the marts") }}
    {%- endif -%}
    {%- set value = var(name, defaults.get(name)) -%}
    {%- set text = (value | string | trim) -%}
    {%- if name in whole -%}
        {%- set ok = modules.re.fullmatch('[0-9]+', text) is not none and (text | int) >= whole[name] -%}
        {%- set wanted = 'a whole number >= ' ~ whole[name] -%}
    {%- else -%}
        {%- set ok = modules.re.fullmatch('[0-9]+([.][0-9]+)?', text) is not none -%}
        {%- set wanted = 'a number >= 0' -%}
    {%- endif -%}
    {%- if not ok -%}
        {{ exceptions.raise_compiler_error("var " ~ name ~ " must be " ~ wanted ~ ", got '" ~ text ~ "'") }}
    {%- endif -%}
    {{- return(text | int if name in whole else text | float) -}}
{%- endmacro %}


{#- var unmapped_label as a SQL string literal (quotes doubled). -#}
{% macro marts_unmapped_label() -%}
    '{{ var("unmapped_label", "Unmapped") | string | replace("'", "''") }}'
{%- endmacro %}
