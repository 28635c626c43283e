{#- Text cleaning shared by the staging models. -#}

{#- Trimmed text; empty strings and masked personal data ('*****') become NULL. -#}
{% macro clean_text(column) -%}
    case
        when trim({{ column }}) = '' then null
        when replace(trim({{ column }}), '*', '') = '' then null
        else trim({{ column }})
    end
{%- endmacro %}

{#- Emails are compared trimmed and lower-cased everywhere. -#}
{% macro clean_email(column) -%}
    lower({{ clean_text(column) }})
{%- endmacro %}

{#- A Token Flex user name that is an email address is that user's email. -#}
{% macro email_from_user_name(column) -%}
    case when {{ clean_text(column) }} like '%_@_%' then lower({{ clean_text(column) }}) end
{%- endmacro %}

{#- Licensing model from an API `source`, a file's usage_type and offering:
    sus -> subscription, flex, ppu. Unknown values fall back to subscription. -#}
{% macro licensing_from(value, offering=none) -%}
    case
        when lower(trim({{ value }})) in ('flex', 'token flex', 'tokens', 'token') then 'flex'
        when lower(trim({{ value }})) in ('ppu', 'pay per use', 'pay-per-use', 'payperuse') then 'ppu'
        when lower(trim({{ value }})) in ('sus', 'subscription', 'single user subscription', 'standard') then 'subscription'
        {%- if offering is not none %}
        when lower(trim({{ offering }})) = 'flex' then 'flex'
        {%- endif %}
        when lower(trim({{ value }})) like '%flex%' then 'flex'
        else 'subscription'
    end
{%- endmacro %}


{#- The user identity columns every Premium input carries (extractor/schemas.py
    _USER_IDENTITY), cleaned alike so the same person keys alike whichever input named them. -#}
{% macro clean_user_identity() -%}
    {%- for column in ['user_id', 'hashed_user_id', 'email', 'first_name', 'last_name', 'full_name', 'user_name'] -%}
    {{ clean_email(column) if column == 'email' else clean_text(column) }} as {{ column }}{{ ",\n    " if not loop.last }}
    {%- endfor -%}
{%- endmacro %}


{#- The distinct user identities (user_id, hashed_user_id, email) of a usage relation's
    dated rows, cleaned like its staging model. Distinct before cleaning: three columns of
    the raw usage are read and each identity is cleaned once, not every usage row. -#}
{% macro distinct_clean_identities(relation) -%}
select distinct
    {{ clean_text('user_id') }} as user_id,
    {{ clean_text('hashed_user_id') }} as hashed_user_id,
    {{ clean_email('email') }} as email
from (
    select distinct user_id, hashed_user_id, email
    from {{ relation }}
    where usage_date is not null
) as identities
{%- endmacro %}
