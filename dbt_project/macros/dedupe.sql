{#- Keep one row per key (the newest by _extracted_at): portable row_number() dedupe.
    `relation` is a relation or a CTE name; `key` a list of column expressions. -#}
{% macro dedupe(relation, key, order_by='_extracted_at desc, _source desc') -%}
    select * from (
        select
            deduped_source.*,
            row_number() over (partition by {{ key | join(', ') }} order by {{ order_by }}) as dedupe_rank
        from {{ relation }} as deduped_source
    ) as ranked
    where dedupe_rank = 1
{%- endmacro %}


{#- The same result as dedupe(relation, [date_column, '_row_hash']) for the big usage datasets,
    emitted as two CTEs (`<name>_repeated`, `<name>`) for the model's WITH list. The extractor
    writes each row hash once per month, so a repeat is rare (a stray copy of a file): a
    cheap aggregate finds the repeated pairs and only their rows are ranked; the rest pass
    through without the window that would otherwise sort every row with all its columns. -#}
{% macro dedupe_by_row_hash_ctes(relation, date_column, name='deduped', order_by='_extracted_at desc, _source desc') -%}
{{ name }}_repeated as (
    select {{ date_column }} as repeated_date, _row_hash as repeated_hash
    from {{ relation }}
    group by {{ date_column }}, _row_hash
    having count(*) > 1
),

{{ name }} as (
    select once.*, 1 as dedupe_rank
    from {{ relation }} as once
    left join {{ name }}_repeated as repeated
        on repeated.repeated_date = once.{{ date_column }}
       and repeated.repeated_hash = once._row_hash
    where repeated.repeated_hash is null
    union all
    select * from (
        select
            twice.*,
            row_number() over (partition by twice.{{ date_column }}, twice._row_hash order by {{ order_by }}) as dedupe_rank
        from {{ relation }} as twice
        inner join {{ name }}_repeated as repeated
            on repeated.repeated_date = twice.{{ date_column }}
           and repeated.repeated_hash = twice._row_hash
    ) as ranked
    where dedupe_rank = 1
)
{%- endmacro %}
