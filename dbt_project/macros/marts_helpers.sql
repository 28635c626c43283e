{#- Small portable helpers used by the marts only (D1's macros cover the shared ground).
    Each dialect difference goes through adapter.dispatch so the marts stay plain SQL. -#}

{#- Days from start_date to end_date (end - start), as an integer.
    dbt.datediff on Spark wraps its arguments in assert_not_null, which fails a whole
    query when one side is NULL (a user who never used anything); we want NULL instead. -#}
{% macro marts_days_between(start_date, end_date) -%}
    {{ return(adapter.dispatch('marts_days_between')(start_date, end_date)) }}
{%- endmacro %}

{% macro default__marts_days_between(start_date, end_date) -%}
    {{ dbt.datediff(start_date, end_date, 'day') }}
{%- endmacro %}

{% macro duckdb__marts_days_between(start_date, end_date) -%}
    date_diff('day', cast({{ start_date }} as date), cast({{ end_date }} as date))
{%- endmacro %}

{% macro spark__marts_days_between(start_date, end_date) -%}
    datediff(cast({{ end_date }} as date), cast({{ start_date }} as date))
{%- endmacro %}


{#- date_expr + days_expr days, as a DATE (days_expr may be any integer expression). -#}
{% macro marts_add_days(date_expr, days_expr) -%}
    {{ return(adapter.dispatch('marts_add_days')(date_expr, days_expr)) }}
{%- endmacro %}

{% macro default__marts_add_days(date_expr, days_expr) -%}
    cast({{ dbt.dateadd('day', days_expr, date_expr) }} as date)
{%- endmacro %}

{% macro duckdb__marts_add_days(date_expr, days_expr) -%}
    cast(cast({{ date_expr }} as date) + cast({{ days_expr }} as integer) as date)
{%- endmacro %}

{% macro spark__marts_add_days(date_expr, days_expr) -%}
    date_add(cast({{ date_expr }} as date), cast({{ days_expr }} as int))
{%- endmacro %}


{#- "usage_date is in the trailing window of N days ending on as_of_date", both ends counted:
    as_of_date - N < usage_date <= as_of_date (docs/use-cases.md). -#}
{% macro marts_in_trailing_window(date_column, as_of_column, days) -%}
    {#- days_between(date, as_of) < N, written as a range on the bare column so that the
        engine can skip the row groups outside it -#}
    ({{ date_column }} <= {{ as_of_column }}
     and {{ date_column }} > {{ marts_add_days(as_of_column, '-' ~ days) }})
{%- endmacro %}


{#- Distinct values joined with '; ' in alphabetical order (a readable list for BI tools). -#}
{% macro marts_sorted_list(expr) -%}
    {{ return(adapter.dispatch('marts_sorted_list')(expr)) }}
{%- endmacro %}

{% macro default__marts_sorted_list(expr) -%}
    {{ dbt.listagg('distinct ' ~ expr, "'; '", 'order by ' ~ expr) }}
{%- endmacro %}

{#- a list aggregate: string_agg(distinct ... order by) costs DuckDB a hash set and a sort per group -#}
{% macro duckdb__marts_sorted_list(expr) -%}
    array_to_string(list_sort(list_distinct(list({{ expr }}) filter (where {{ expr }} is not null))), '; ')
{%- endmacro %}

{% macro spark__marts_sorted_list(expr) -%}
    array_join(array_sort(collect_set({{ expr }})), '; ')
{%- endmacro %}


{#- A version string as a number when it is one ('2025', '2025.1'), else NULL, so '2025' sorts
    above '2024' and above '999'. try_cast exists in DuckDB and Spark >= 3.2. -#}
{% macro marts_version_number(expr) -%}
    {{ return(adapter.dispatch('marts_version_number')(expr)) }}
{%- endmacro %}

{% macro default__marts_version_number(expr) -%}
    try_cast({{ expr }} as {{ dbt.type_float() }})
{%- endmacro %}


{#- One row holding the as-of date, to cross join: every mart carries it and every trailing
    window ends on it. as_of_date() is the var as a DATE literal or the latest usage_date;
    with no usage at all yet (only Users / Subscriptions reports imported) that is NULL, and
    today's date is used so seat holders still show as never used. -#}
{% macro marts_params_cte() -%}
    select cast(coalesce({{ as_of_date() }}, cast({{ dbt.current_timestamp() }} as date)) as date) as as_of_date
{%- endmacro %}


{#- Which licensing models a group of rows used: the one value, or 'mixed'. -#}
{% macro marts_licensing_label(column) -%}
    case when min({{ column }}) <> max({{ column }}) then 'mixed' else max({{ column }}) end
{%- endmacro %}


{#- DOUBLE in DuckDB and Spark. dbt.type_float() is a 4-byte float on both, and Spark makes
    decimals of literals like 30.0: money and ratios in the marts are cast to this. -#}
{% macro marts_type_double() -%}
    {{ return(adapter.dispatch('marts_type_double')()) }}
{%- endmacro %}

{% macro default__marts_type_double() -%}
    double
{%- endmacro %}

{#- cast(expr as double) -#}
{% macro marts_double(expr) -%}
    cast({{ expr }} as {{ marts_type_double() }})
{%- endmacro %}


{#- dim_products with its money columns as DOUBLE, as a subquery to join: `join {{ marts_prices() }} as pr`. -#}
{% macro marts_prices() -%}
    (select
        product_name,
        is_collection,
        {{ marts_double('tokens_per_day') }} as tokens_per_day,
        {{ marts_double('annual_price') }} as annual_price
     from {{ ref('dim_products') }})
{%- endmacro %}


{#- The user's identity and org columns every per-user mart carries, so BI users slice each
    mart by team, department, cost center, geo, country and city the same way. -#}
{% macro marts_user_column_names() -%}
    {{- return(['email', 'full_name', 'user_name', 'team_name', 'geo', 'country', 'city',
                'department', 'cost_center', 'project', 'skill_level']) -}}
{%- endmacro %}

{% macro marts_user_columns(alias) -%}
    {%- for column in marts_user_column_names() -%}
    {{ alias }}.{{ column }}{{ ",\n    " if not loop.last }}
    {%- endfor -%}
{%- endmacro %}


{#- The charge-back marts' user columns: cost_center and department (the unmapped label
    without metadata), then the user's identity and location. -#}
{% macro marts_cost_center_columns(alias) -%}
    coalesce({{ alias }}.cost_center, {{ marts_unmapped_label() }}) as cost_center,
    coalesce({{ alias }}.department, {{ marts_unmapped_label() }}) as department,
    {%- for column in ['email', 'full_name', 'team_name', 'geo', 'country', 'city'] %}
    {{ alias }}.{{ column }}{{ "," if not loop.last }}
    {%- endfor -%}
{%- endmacro %}
