{#- The normalised join key of a user or metadata row for var metadata_key
    (email | user_id | user_name | hashed_user_id). Emails and user names compare lower-cased. -#}
{% macro metadata_key_expression(prefix='') -%}
    {%- set key = var('metadata_key', 'email') | string | trim | lower -%}
    {%- if key == 'email' -%}
        lower({{ prefix }}email)
    {%- elif key == 'user_name' -%}
        lower({{ prefix }}user_name)
    {%- elif key in ('user_id', 'hashed_user_id') -%}
        {{ prefix }}{{ key }}
    {%- else -%}
        {{ exceptions.raise_compiler_error("var metadata_key must be one of email, user_id, user_name, hashed_user_id; got '" ~ key ~ "'") }}
    {%- endif -%}
{%- endmacro %}
