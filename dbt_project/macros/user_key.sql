{#- user_key = Autodesk user id when known, else the hashed id, else the lower-cased email,
    else the lower-cased (Token Flex) user name. "Known" includes what int_user_identity_map
    learnt from other Premium rows with the same hashed id or email.
    Use with user_key_joins(row_alias) in the FROM clause. -#}
{% macro user_key(row_alias) -%}
    coalesce(
        {{ row_alias }}.user_id,
        key_by_hashed.user_id,
        key_by_email.user_id,
        {{ row_alias }}.hashed_user_id,
        key_by_email.hashed_user_id,
        {{ row_alias }}.email,
        lower({{ row_alias }}.user_name)
    )
{%- endmacro %}

{% macro user_key_joins(row_alias) -%}
    left join {{ ref('int_user_identity_map') }} as key_by_hashed
        on key_by_hashed.identity_type = 'hashed_user_id'
        and key_by_hashed.identity_value = {{ row_alias }}.hashed_user_id
    left join {{ ref('int_user_identity_map') }} as key_by_email
        on key_by_email.identity_type = 'email'
        and key_by_email.identity_value = {{ row_alias }}.email
{%- endmacro %}
