"""The fields and metrics of insights/v1 and tokenflex/v1 as the sandbox serves them.

Each field maps to trusted SQL over the generated tables (``usage`` / ``tokenflex_usage``)
plus the rules of the seeds: personal (*), not filterable (*, ***), session-level (Token
Flex *, export only).
"""

from __future__ import annotations

from dataclasses import dataclass

from .where import WhereField


@dataclass(frozen=True)
class ApiField(WhereField):
    output: str = "plain"  # plain | date | week (ISO timestamp at midnight UTC) | timestamp
    session: bool = False  # Token Flex: only allowed in exports


_PERSONAL_NOT_FILTERABLE = "personal data fields cannot be filtered"

PREMIUM_FIELDS: dict[str, ApiField] = {
    "productName": ApiField("product_name"),
    "usageDate": ApiField("usage_date", "date", output="date"),
    "usageMonth": ApiField("usage_month", "date", output="date"),
    "version": ApiField("version"),
    "childProductName": ApiField("child_product_name"),
    "tokens": ApiField("tokens", "num"),
    "emailAddress": ApiField("email", filterable=False, personal=True, why_not=_PERSONAL_NOT_FILTERABLE),
    "firstName": ApiField("first_name", filterable=False, personal=True, why_not=_PERSONAL_NOT_FILTERABLE),
    "lastName": ApiField("last_name", filterable=False, personal=True, why_not=_PERSONAL_NOT_FILTERABLE),
    "userName": ApiField("user_name", filterable=False, personal=True, why_not=_PERSONAL_NOT_FILTERABLE),
    "profileImage": ApiField(
        "('https://sandbox-avatars.invalid/' || hashed_user_id || '.png')",
        filterable=False, personal=True, why_not=_PERSONAL_NOT_FILTERABLE,
    ),
    "fullName": ApiField("full_name", filterable=False, personal=True, why_not=_PERSONAL_NOT_FILTERABLE),
    "userId": ApiField("user_id", personal=True),
    "hashedUserId": ApiField("hashed_user_id"),
    "isParentProduct": ApiField("is_parent_product", "num"),
    "minorVersion": ApiField("minor_version"),
    "reportingEntityId": ApiField("reporting_entity_id"),
    "contractNumber": ApiField("contract_number"),
    "productLineCode": ApiField("product_line_code"),
    "featureId": ApiField("feature_id"),
    "source": ApiField("source"),
    "usageWeek": ApiField("usage_week", "date", output="week"),
    "isProductVersioned": ApiField("is_product_versioned", "num"),
    "contextId": ApiField("context_id"),
    "teamName": ApiField("team_name", filterable=False, why_not="use the contextId query parameter instead"),
}

# metric -> (SQL aggregate, output kind)
PREMIUM_METRICS: dict[str, tuple[str, str]] = {
    "uniqueUsers": ("COUNT(DISTINCT hashed_user_id)", "plain"),
    "uniqueProducts": ("COUNT(DISTINCT product_name)", "plain"),
    "earliestUsageDate": ("MIN(usage_date)", "week"),
    "latestUsageDate": ("MAX(usage_date)", "week"),
    "uniqueChildProducts": ("COUNT(DISTINCT child_product_name)", "plain"),
    "uniqueVersions": ("COUNT(DISTINCT version)", "plain"),
    "uniqueMinorVersions": ("COUNT(DISTINCT minor_version)", "plain"),
    "totalTokens": ("COALESCE(SUM(tokens), 0.0)", "plain"),
    "averageTokens": ("AVG(tokens)", "plain"),
    "totalUniqueDays": ("COUNT(DISTINCT usage_date)", "plain"),
}

_S = True  # session-level (export only)
TOKENFLEX_FIELDS: dict[str, ApiField] = {
    "productLineCode": ApiField("product_line_code"),
    "productName": ApiField("product_name"),
    "userName": ApiField("user_name"),
    "usageDate": ApiField("usage_date", "date", output="date"),
    "usageMonth": ApiField("usage_month", "date", output="date"),
    "contractYear": ApiField("contract_year", "num"),
    "usageCategory": ApiField("usage_category"),
    "chargedItemID": ApiField("charged_item_id", session=_S),
    **{f"customField{i}": ApiField(f"custom_field{i}") for i in range(1, 11)},
    "chargeCategory": ApiField("charge_category", session=_S),
    "sessionStartDate": ApiField("session_start_date", "date", output="timestamp", session=_S),
    "sessionEndDate": ApiField("session_end_date", "date", output="timestamp", session=_S),
    "productVersion": ApiField("product_version"),
    "productFeatureCode": ApiField("product_feature_code"),
    "machineName": ApiField("machine_name"),
    "licenseServerName": ApiField("license_server_name"),
    "licenseServerTimeZoneOffset": ApiField("license_server_time_zone_offset", session=_S),
    "usageType": ApiField("usage_type"),
    "hubId": ApiField("CASE WHEN hub_name IS NULL THEN NULL ELSE 'urn:adsk.plm:tenant:' || replace(hub_name, ' ', '') END", session=_S),
    "hubName": ApiField("hub_name", session=_S),
    "projectId": ApiField("CASE WHEN hub_name IS NULL THEN NULL ELSE 'urn:adsk.workspace:project:' || md5(project_name) END", session=_S),
    "projectName": ApiField("project_name", session=_S),
    "jobStatus": ApiField("job_status", session=_S),
    "transactionDate": ApiField("CASE WHEN usage_category LIKE 'MANUAL%' THEN usage_date END", "date", output="date", session=_S),
    "reasonType": ApiField("reason_type"),
    "reasonComment": ApiField("CAST(NULL AS VARCHAR)", session=_S),
    "tokenPool": ApiField("token_pool"),
}

TOKENFLEX_METRICS: dict[str, tuple[str, str]] = {
    "uniqueProducts": ("COUNT(DISTINCT product_name)", "plain"),
    "uniqueUsers": ("COUNT(DISTINCT user_name)", "plain"),
    "tokensConsumed": ("COALESCE(SUM(tokens_consumed), 0.0)", "plain"),
    "usageMinutes": ("COALESCE(SUM(usage_minutes), 0.0)", "plain"),
    "usageHours": ("COALESCE(SUM(usage_hours), 0.0)", "plain"),
    "useCount": ("COALESCE(SUM(use_count), 0)", "plain"),
}

USAGE_CATEGORIES = ("DESKTOP_PRODUCT", "CLOUD_PRODUCT", "CLOUD_SERVICE", "MANUAL_ADJUSTMENT", "MANUAL_CONSUMPTION")


def query_fields(fields: dict[str, ApiField], *, allow_session: bool) -> dict[str, ApiField]:
    """The where-able view of a field table (Token Flex session fields only in exports)."""
    if allow_session:
        return fields
    return {
        k: (v if not v.session else ApiField(v.sql, v.kind, False, v.personal, "session-level fields are only allowed in exports", v.output, True))
        for k, v in fields.items()
    }
