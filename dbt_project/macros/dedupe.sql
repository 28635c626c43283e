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
