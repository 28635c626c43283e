-- The distinct user identities of the Premium usage queries, filtered and cleaned like
-- stg_premium__usage (int_user_identity_map reads them).
{{ distinct_clean_identities(source('raw', 'premium_usage')) }}
