-- When each month of usage last received rows: per usage dataset x usage_month, the latest
-- _extracted_at. Reads only two columns of the raw files, so fct_daily_usage's incremental
-- runs find the months to rebuild without scanning the usage itself.
{%- set datasets = ['premium_usage', 'premium_usage_files', 'tokenflex_usage'] %}

{% for dataset in datasets %}
select
    '{{ dataset }}' as dataset,
    cast({{ dbt.date_trunc('month', 'usage_date') }} as date) as usage_month,
    max(_extracted_at) as last_extracted_at,
    count(*) as raw_rows
from {{ source('raw', dataset) }}
where usage_date is not null
group by cast({{ dbt.date_trunc('month', 'usage_date') }} as date)
{% if not loop.last %}union all{% endif %}
{% endfor %}
