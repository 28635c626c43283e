{#- Usage per user x team x usage_month, from fct_daily_usage: what int_users needs of every
    day of usage (identity, usage days per team, first and last use), kept incremental like
    the fact so a daily build re-aggregates one month, not the whole history. Token Flex-only
    rows have a NULL team. -#}
{{ usage_month_incremental_config() }}

select
    user_key,
    team_name,
    usage_month,
    count(distinct usage_date) as usage_days,
    min(usage_date) as first_used_date,
    max(usage_date) as last_used_date,
    max(user_id) as user_id,
    max(hashed_user_id) as hashed_user_id,
    max(email) as email,
    max(user_name) as user_name,
    max(full_name) as full_name,
    max(extracted_at) as extracted_at
from {{ ref('fct_daily_usage') }}
{%- if is_incremental() %}
where {{ changed_usage_months_filter('usage_date', ref('fct_daily_usage')) }}
{%- endif %}
group by user_key, team_name, usage_month
