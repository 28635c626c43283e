-- The distinct user identities of the Premium usage files, filtered and cleaned like
-- stg_premium__usage_files (int_user_identity_map reads them).
{{ distinct_clean_identities(source('raw', 'premium_usage_files')) }}
