-- When each month of usage last received rows: per usage dataset x usage_month, the latest
-- _extracted_at. Reads two columns of each usage staging view, so the incremental facts
-- find the months to rebuild without reading the usage itself.
{%- set datasets = {
    'premium_usage': 'stg_premium__usage',
    'premium_usage_files': 'stg_premium__usage_files',
    'tokenflex_usage': 'stg_tokenflex__usage',
} %}

{% for dataset, model in datasets.items() %}
select
    '{{ dataset }}' as dataset,
    cast({{ dbt.date_trunc('month', 'usage_date') }} as date) as usage_month,
    max(_extracted_at) as last_extracted_at,
    count(*) as usage_rows
from {{ ref(model) }}
group by cast({{ dbt.date_trunc('month', 'usage_date') }} as date)
{% if not loop.last %}union all{% endif %}
{% endfor %}
