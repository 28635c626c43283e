{#- Month marts: the marts whose grain ends in usage_month and that read all usage
    (low_usage_users, usage_by_cost_center, flex_usage_by_cost_center,
    flex_multi_product_daily), rebuilt by month on DuckDB.

    A new day changes the rows of its own month only, except for two kinds of columns that
    every row takes from the run: the as-of date and what follows from it (is_complete_month,
    token_cost from var token_price), and the user's columns from dim_users (metadata,
    team). Rewriting millions of rows for those made these marts most of a daily build. So
    on DuckDB each of them is incremental:
    1. pre-hooks: delete the months to rebuild (month_mart_rebuilt_months), then set the
       user columns of the rows kept where dim_users changed;
    2. the model's query computes those months only, and its rows are appended;
    3. post-hook: the run columns are set in place.
    Every month is recomputed on a first build, a --full-refresh, with var as_of_date set,
    and when a var stored on the rows (a threshold that decides which rows exist) changed.
    Other targets (Spark) build these marts as tables. A mart's spec (month_mart_spec) is
    the one definition of those columns: its query selects them with
    month_mart_select_columns. -#}


{#- What the hooks and the query need to know about each month mart. Expressions use the
    aliases m (the mart's row, or the row being built), p (marts_params_cte) and d (dim_users).
    - upstream: the model the mart's months come from (a usage_month and extracted_at column),
      and upstream_where the rows of it the mart reads (so that a newer row the mart never
      holds does not make its month look changed on every run);
    - stored_vars: columns holding a var's value, as {column: value}; a change rebuilds all;
    - run_columns / user_columns: [column, expression] pairs refreshed in place. -#}
{% macro month_mart_spec(name) -%}
    {%- set unmapped = marts_unmapped_label() -%}
    {%- set org_columns = [
        ['cost_center', 'coalesce(d.cost_center, ' ~ unmapped ~ ')'],
        ['department', 'coalesce(d.department, ' ~ unmapped ~ ')'],
    ] -%}
    {%- set slim_user_columns = [] -%}
    {%- for column in ['email', 'full_name', 'team_name', 'geo', 'country', 'city'] -%}
        {%- do slim_user_columns.append([column, 'd.' ~ column]) -%}
    {%- endfor -%}
    {%- set all_user_columns = [] -%}
    {%- for column in marts_user_column_names() -%}
        {%- do all_user_columns.append([column, 'd.' ~ column]) -%}
    {%- endfor -%}
    {%- set token_cost = ['token_cost', 'm.tokens * ' ~ marts_var('token_price')] -%}
    {%- set as_of = ['as_of_date', 'p.as_of_date'] -%}
    {%- set specs = {
        'low_usage_users': {
            'upstream': 'fct_monthly_product_usage',
            'stored_vars': {'low_usage_max_days': marts_var('low_usage_max_days')},
            'user_columns': all_user_columns,
            'run_columns': [
                ['is_complete_month',
                 '(' ~ marts_add_days(dbt.dateadd('month', 1, 'm.usage_month'), -1) ~ ' <= p.as_of_date)'],
                as_of,
            ],
        },
        'usage_by_cost_center': {
            'upstream': 'fct_monthly_product_usage',
            'stored_vars': {},
            'user_columns': org_columns + slim_user_columns,
            'run_columns': [token_cost, as_of],
        },
        'flex_multi_product_daily': {
            'upstream': 'fct_daily_usage',
            'upstream_where': "licensing = 'flex'",
            'stored_vars': {
                'multi_product_min_products': marts_var('multi_product_min_products'),
                'multi_product_min_days': marts_var('multi_product_min_days'),
            },
            'user_columns': all_user_columns,
            'run_columns': [token_cost, as_of],
        },
        'flex_usage_by_cost_center': {
            'upstream': 'fct_daily_usage',
            'upstream_where': "licensing = 'flex'",
            'stored_vars': {},
            'user_columns': org_columns + slim_user_columns,
            'run_columns': [token_cost, as_of],
        },
    } -%}
    {%- if name not in specs -%}
        {{ exceptions.raise_compiler_error("month_mart_spec: '" ~ name ~ "' is not a month mart") }}
    {%- endif -%}
    {{- return(specs[name]) -}}
{%- endmacro %}


{#- The model's config: incremental with the hooks on DuckDB, a table elsewhere. -#}
{% macro month_mart_config() -%}
    {%- if target.type == 'duckdb' -%}
        {{ config(
            materialized='incremental',
            incremental_strategy='append',
            on_schema_change='sync_all_columns',
            pre_hook=["{{ month_mart_delete_rebuilt_months() }}", "{{ month_mart_refresh_user_columns() }}"],
            post_hook="{{ month_mart_refresh_run_columns() }}",
        ) }}
    {%- else -%}
        {{ config(materialized='table') }}
    {%- endif -%}
{%- endmacro %}


{#- `expression as column` for every pair of the spec's `kind` (run_columns, user_columns).
    The mart is named: in a unit test `model` is the test. -#}
{% macro month_mart_select_columns(mart, kind) -%}
    {%- for column, expression in month_mart_spec(mart)[kind] -%}
    {{ expression }} as {{ column }}{{ ",\n    " if not loop.last }}
    {%- endfor -%}
{%- endmacro %}


{#- True when this run rebuilds some months only: an incremental run on the default as-of
    date whose stored vars still hold, on a table that has every column the partial run
    reads and writes (a table built by an older version of the project is rebuilt whole,
    and on_schema_change='sync_all_columns' gives it the new columns first). -#}
{% macro month_mart_is_partial() -%}
    {#- a unit test has no `this` (and calls its own is_incremental only from the model) -#}
    {%- if not execute or this is none or not is_incremental() or as_of_date_var() is not none -%}
        {{- return(false) -}}
    {%- endif -%}
    {%- set spec = month_mart_spec(model.name) -%}
    {%- set needed = ['as_of_date', 'extracted_at'] + (spec['stored_vars'] | list) -%}
    {%- for pair in spec['run_columns'] + spec['user_columns'] -%}
        {%- do needed.append(pair[0]) -%}
    {%- endfor -%}
    {%- set present = adapter.get_columns_in_relation(this) | map(attribute='name') | map('lower') | list -%}
    {%- for column in needed -%}
        {%- if column not in present -%}
            {{- return(false) -}}
        {%- endif -%}
    {%- endfor -%}
    {%- for column, value in spec['stored_vars'].items() -%}
        {%- set changed -%}
            select count(*) from {{ this }} where {{ column }} is distinct from {{ value }}
        {%- endset -%}
        {%- if run_query(changed).columns[0].values()[0] > 0 -%}
            {{- return(false) -}}
        {%- endif -%}
    {%- endfor -%}
    {{- return(true) -}}
{%- endmacro %}


{#- A filter on `date_column` selecting the months to rebuild: those whose upstream rows were
    extracted after this mart's newest row (changed_usage_months_filter), and every month
    from the one of the stored as-of date on (an earlier run with var as_of_date may have
    cut them short). Call only when month_mart_is_partial(). -#}
{% macro month_mart_rebuilt_months(date_column) -%}
    {%- set spec = month_mart_spec(model.name) -%}
    {%- set upstream = ref(spec['upstream']) -%}
    {%- if spec.get('upstream_where') -%}
        {%- set upstream = '(select usage_month, extracted_at from ' ~ upstream ~ ' where ' ~ spec['upstream_where'] ~ ')' -%}
    {%- endif -%}
    {%- set changed = changed_usage_months_filter(date_column, upstream) -%}
    {%- set stored_as_of = run_query('select min(as_of_date) from ' ~ this).columns[0].values()[0] -%}
    {%- if stored_as_of is none -%}
        {{- '1 = 1' -}}
    {%- else -%}
        {%- set first_day = modules.datetime.date.fromisoformat((stored_as_of | string)[:10]).replace(day=1) -%}
        ({{ changed }} or {{ date_column }} >= cast('{{ first_day }}' as date))
    {%- endif -%}
{%- endmacro %}


{#- pre-hook: on an incremental run, delete what the query is about to append. -#}
{% macro month_mart_delete_rebuilt_months() -%}
    {%- if execute and is_incremental() -%}
        delete from {{ this }}
        {%- if month_mart_is_partial() %} where {{ month_mart_rebuilt_months('usage_month') }}{% endif %}
    {%- endif -%}
{%- endmacro %}


{#- pre-hook, after the delete: set the user columns (from dim_users) of the rows kept, when
    some user's columns changed. Every row of a user carries the same user columns: each
    run writes them from dim_users on every row it appends and, here, on every row it keeps.
    So one row per user (the first by DuckDB's rowid) tells whether any user changed: 20
    thousand rows compared (0.03 s on 2 million rows) instead of every row (0.15 s), and
    the update runs only when one did. -#}
{% macro month_mart_refresh_user_columns() -%}
    {%- if execute and is_incremental() -%}
        {%- set pairs = month_mart_spec(model.name)['user_columns'] -%}
        {%- set differs -%}
            not (
            {%- for column, expression in pairs %}
                m.{{ column }} is not distinct from {{ expression }}{{ " and" if not loop.last }}
            {%- endfor %}
            )
        {%- endset -%}
        {%- set changed_users -%}
            select count(*)
            from {{ this }} as m
            inner join {{ ref('dim_users') }} as d on d.user_key = m.user_key
            where m.rowid in (select min(rowid) from {{ this }} group by user_key)
              and {{ differs }}
        {%- endset -%}
        {%- if run_query(changed_users).columns[0].values()[0] > 0 -%}
        update {{ this }} as m
        set
            {%- for column, expression in pairs %}
            {{ column }} = {{ expression }}{{ "," if not loop.last }}
            {%- endfor %}
        from {{ ref('dim_users') }} as d
        where d.user_key = m.user_key and {{ differs }}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}


{#- post-hook: the run columns, one statement per column. A column whose value holds
    (token_cost while token_price holds, is_complete_month but for a month that completed)
    is read, not rewritten. as_of_date moves on every row with each new day; an UPDATE of
    millions of rows logs each row's id and value (55 MB for the three large marts on 10M
    usage rows) that the commit writes and the checkpoint replays, so the column is
    rewritten whole instead (ALTER ... USING a constant: one statement in the log). -#}
{% macro month_mart_refresh_run_columns() -%}
    {%- if execute and is_incremental() -%}
        {%- set as_of = run_query('select cast(as_of_date as ' ~ dbt.type_string() ~ ') from ('
                                  ~ marts_params_cte() ~ ') as p').columns[0].values()[0] -%}
        {%- set as_of_literal = "cast('" ~ as_of ~ "' as date)" if as_of is not none else "cast(null as date)" -%}
        {%- for column, expression in month_mart_spec(model.name)['run_columns'] %}
        {%- if column == 'as_of_date' %}
        alter table {{ this }} alter column as_of_date set data type date using ({{ as_of_literal }});
        {%- else %}
        update {{ this }} as m
        set {{ column }} = {{ expression }}
        from (select {{ as_of_literal }} as as_of_date) as p
        where m.{{ column }} is distinct from {{ expression }};
        {%- endif %}
        {%- endfor %}
    {%- endif -%}
{%- endmacro %}
