{#- The customer's metadata file must name each user once on the join key (var
    metadata_key). A duplicate would silently pick one of the rows, so the test fails
    with a message naming the duplicated key values (up to five) and their row counts. -#}
{% test no_duplicate_metadata_keys(model, column_name) %}
{%- set duplicates_sql -%}
    select {{ column_name }} as duplicate_key, count(*) as rows_with_key
    from {{ model }}
    where {{ column_name }} is not null
    group by {{ column_name }}
    having count(*) > 1
{%- endset -%}
{%- if execute and model.identifier is not none -%}
    {%- set relation = adapter.get_relation(database=model.database, schema=model.schema, identifier=model.identifier) -%}
    {%- if relation is not none -%}
        {%- set found = run_query(duplicates_sql ~ ' order by 1') -%}
        {%- if found.rows | length > 0 -%}
            {%- set examples = [] -%}
            {%- for row in found.rows[:5] -%}
                {%- do examples.append("'" ~ row[0] ~ "' (" ~ row[1] ~ " rows)") -%}
            {%- endfor -%}
            {{ exceptions.raise_compiler_error(
                "user metadata has " ~ (found.rows | length) ~ " duplicate key(s) on metadata_key="
                ~ var('metadata_key', 'email') ~ ": " ~ (examples | join(', '))
                ~ ". Each user must appear once in the metadata file."
            ) }}
        {%- endif -%}
    {%- endif -%}
{%- endif -%}
{{ duplicates_sql }}
{% endtest %}
