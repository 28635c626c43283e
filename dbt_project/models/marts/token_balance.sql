{#- token_balance: one row per Token Flex contract x contract year.
    provisioned_tokens: the contract snapshot (GET /tokenflex/v1/contract/<n>).
    consumed_tokens: the sum of tokens of the Token Flex usage rows of that contract year up
    to the as-of date (all usage categories, adjustments included) when the year has usage
    rows; otherwise the snapshot's consumedTokens (consumed_source says which).
    snapshot_consumed_tokens keeps the snapshot value next to it for comparison.
    remaining_tokens = provisioned - consumed. avg_daily_burn = tokens used in the trailing
    `lookback_days` / lookback_days. projected_run_out_date = as-of date + remaining / burn
    (rounded up, capped at 100 years), the as-of date when nothing remains, NULL when burn
    is 0 or the contract year ended before the as-of date.
    A usage row without contract_year is placed by its date in the contract's years. -#}
with params as (
    {{ marts_params_cte() }}
),

contract_years as (
    select *
    from {{ ref('stg_tokenflex__contract_years') }}
    where contract_year is not null
),

usage_with_year as (
    select
        u.contract_number,
        coalesce(u.contract_year, y.contract_year) as contract_year,
        u.usage_date,
        u.tokens
    from {{ ref('stg_tokenflex__usage') }} as u
    left join contract_years as y
        on u.contract_year is null
       and y.contract_number = u.contract_number
       and u.usage_date >= y.year_start_date
       and u.usage_date <= y.year_end_date
),

usage_totals as (
    select
        w.contract_number,
        w.contract_year,
        count(*) as usage_rows,
        sum(w.tokens) as consumed_tokens,
        sum(case when {{ marts_in_trailing_window('w.usage_date', 'p.as_of_date', marts_var('lookback_days')) }}
                 then w.tokens else 0 end) as lookback_tokens,
        max(w.usage_date) as last_usage_date
    from usage_with_year as w
    cross join params as p
    where w.contract_number is not null
      and w.contract_year is not null
      and w.usage_date <= p.as_of_date
    group by w.contract_number, w.contract_year
),

keys as (
    select contract_number, contract_year from contract_years
    union
    select contract_number, contract_year from usage_totals
),

balances as (
    select
        k.contract_number,
        k.contract_year,
        y.contract_name,
        y.year_start_date,
        y.year_end_date,
        {{ marts_double('y.provisioned_tokens') }} as provisioned_tokens,
        {{ marts_double('y.consumed_tokens') }} as snapshot_consumed_tokens,
        {{ marts_double('y.remaining_tokens') }} as snapshot_remaining_tokens,
        {{ marts_double('case when ut.usage_rows > 0 then ut.consumed_tokens else y.consumed_tokens end') }}
            as consumed_tokens,
        case when ut.usage_rows > 0 then 'usage' when y.consumed_tokens is not null then 'snapshot' end
            as consumed_source,
        {{ marts_double('coalesce(ut.lookback_tokens, 0)') }} / {{ marts_var('lookback_days') }} as avg_daily_burn,
        ut.last_usage_date
    from keys as k
    left join contract_years as y
        on y.contract_number = k.contract_number and y.contract_year = k.contract_year
    left join usage_totals as ut
        on ut.contract_number = k.contract_number and ut.contract_year = k.contract_year
),

with_remaining as (
    select b.*, b.provisioned_tokens - b.consumed_tokens as remaining_tokens
    from balances as b
)

select
    r.contract_number,
    r.contract_name,
    r.contract_year,
    r.year_start_date,
    r.year_end_date,
    r.provisioned_tokens,
    r.consumed_tokens,
    r.consumed_source,
    r.remaining_tokens,
    r.snapshot_consumed_tokens,
    r.snapshot_remaining_tokens,
    r.avg_daily_burn,
    r.last_usage_date,
    case
        when r.remaining_tokens is null then null
        when r.year_end_date < p.as_of_date then null
        when r.remaining_tokens <= 0 then p.as_of_date
        when r.avg_daily_burn > 0
            then {{ marts_add_days('p.as_of_date', 'least(ceil(r.remaining_tokens / r.avg_daily_burn), 36500)') }}
    end as projected_run_out_date,
    r.remaining_tokens * {{ marts_var('token_price') }} as remaining_value,
    cast({{ marts_var('lookback_days') }} as {{ dbt.type_int() }}) as lookback_days,
    p.as_of_date
from with_remaining as r
cross join params as p
