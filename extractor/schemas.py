"""The raw datasets: their names, typed columns and partitioning. The one contract between
the extractor (API and file import) and the dbt sources.

Columns not listed here are kept as strings ("unknown extra columns are kept"). The row hash
is computed over the listed columns only, so an extra column in one file does not make an
otherwise identical row look new.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

S = pa.string()
D = pa.date32()
F = pa.float64()
I = pa.int64()
B = pa.bool_()
TS = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    columns: dict[str, pa.DataType]
    #: DATE column whose month partitions the dataset (``usage_month=YYYY-MM-01``); None = one file
    date_column: str | None = None
    #: columns an API extraction scopes its replace on (team / contract)
    scope_columns: tuple[str, ...] = ()
    #: columns a hand-imported snapshot file replaces by (rows of the teams the file holds)
    snapshot_columns: tuple[str, ...] = ()
    description: str = ""
    required: tuple[str, ...] = field(default=())

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([(k, v) for k, v in self.columns.items()])


_USER_IDENTITY = {
    "user_id": S,  # Autodesk O2 id (autodesk_id / userId)
    "hashed_user_id": S,  # hashedUserId / hashed_autodesk_id
    "email": S,
    "first_name": S,
    "last_name": S,
    "full_name": S,
    "user_name": S,
}

PREMIUM_TEAMS = DatasetSpec(
    "premium_teams",
    {"context_id": S, "team_name": S, "reporting_benefits": S},
    description="GET /insights/v1/contexts: one row per team (context).",
    required=("context_id",),
)

PREMIUM_USAGE = DatasetSpec(
    "premium_usage",
    {
        "usage_date": D,
        "usage_month": D,
        "context_id": S,
        "team_name": S,
        "product_name": S,
        "child_product_name": S,
        "product_line_code": S,
        "feature_id": S,
        "version": S,
        "minor_version": S,
        "source": S,  # sus | flex | ppu
        "tokens": F,  # metric totalTokens
        **_USER_IDENTITY,
        "is_parent_product": I,
        "is_product_versioned": I,
        "reporting_entity_id": S,
        "contract_number": S,
    },
    date_column="usage_date",
    scope_columns=("context_id",),
    description="Premium usage queries (POST /insights/v1/usage-queries), one row per group of all fields.",
    required=("usage_date", "product_name"),
)

PREMIUM_USAGE_FILES = DatasetSpec(
    "premium_usage_files",
    {
        "usage_date": D,  # day_used / "Day Used" / "Date"
        "team_name": S,  # team_alias / "Team" / group
        "team_id": S,
        **_USER_IDENTITY,
        "product_name": S,
        "offering_name": S,
        "product_line_code": S,
        "feature_id": S,
        "version": S,
        "tokens": F,  # tokens_used
        "usage_type": S,
        "plan": S,
        "term": S,
        "access_method": S,
        "access_option": S,
        "role": S,
        "account_status": S,
        "subscription_id": S,
        "contract_number": S,
        "seat_quantity": I,
        "subscription_status": S,
        "start_date": D,
        "end_date": D,
        "autorenew_date": D,
        "contract_manager_email": S,
        "reseller_name": S,
        "reseller_email": S,
        "days_used": I,
        "days_inactive": I,
        "last_accessed": D,
        "monthly_average": F,
        "assigned_date": D,
        "seat_assignment": S,
    },
    date_column="usage_date",
    scope_columns=("team_id",),
    description="Usage report rows from Premium exports (API USAGE report) and files downloaded by hand.",
    required=("usage_date", "product_name"),
)

PREMIUM_USERS = DatasetSpec(
    "premium_users",
    {
        "team_name": S,
        "team_id": S,
        **_USER_IDENTITY,
        "offering_name": S,
        "product_name": S,
        "subscription_id": S,
        "role": S,
        "account_status": S,
        "access_method": S,
        "plan": S,
        "term": S,
        "seat_assignment": S,
        "assigned_date": D,
        "last_accessed": D,
        "days_inactive": I,
        "days_used": I,
    },
    scope_columns=("team_id",),
    snapshot_columns=("team_name",),
    description="Users report (seat assignments): one row per user x assigned offering.",
    required=("offering_name",),
)

PREMIUM_SUBSCRIPTIONS = DatasetSpec(
    "premium_subscriptions",
    {
        "team_name": S,
        "team_id": S,
        "subscription_id": S,
        "offering_name": S,
        "product_line_code": S,
        "plan": S,
        "term": S,
        "usage_type": S,
        "access_method": S,
        "seat_quantity": I,
        "subscription_status": S,
        "start_date": D,
        "end_date": D,
        "autorenew_date": D,
        "contract_number": S,
        "contract_manager_email": S,
        "reseller_name": S,
        "reseller_email": S,
    },
    scope_columns=("team_id",),
    snapshot_columns=("team_name",),
    description="Subscriptions report: one row per subscription with its seat quantity.",
    required=("offering_name", "seat_quantity"),
)

TOKENFLEX_USAGE = DatasetSpec(
    "tokenflex_usage",
    {
        "contract_number": S,
        "usage_date": D,
        "usage_month": D,
        "contract_year": I,
        "usage_category": S,
        "charge_category": S,
        "product_line_code": S,
        "product_name": S,
        "product_version": S,
        "product_feature_code": S,
        "user_name": S,
        "machine_name": S,
        "license_server_name": S,
        "usage_type": S,
        "charged_item_id": S,
        "session_start_date": TS,
        "session_end_date": TS,
        "hub_name": S,
        "project_name": S,
        "job_status": S,
        "reason_type": S,
        "token_pool": S,
        "tokens_consumed": F,
        "usage_minutes": F,
        "usage_hours": F,
        "use_count": I,
        **{f"custom_field{i}": S for i in range(1, 11)},
    },
    date_column="usage_date",
    scope_columns=("contract_number",),
    description="Token Flex export CSV rows (POST /tokenflex/v1/export/<n>/requests), or a file imported by hand.",
    required=("usage_date", "tokens_consumed"),
)

TOKENFLEX_CONTRACTS = DatasetSpec(
    "tokenflex_contracts",
    {
        "contract_number": S,
        "contract_name": S,
        "contract_start_date": D,
        "contract_end_date": D,
        "is_active": B,
        "multiyear_provisioned_tokens": F,
        "contract_year": I,
        "year_start_date": D,
        "year_end_date": D,
        "provisioned_tokens": F,
        "consumed_tokens": F,
        "remaining_tokens": F,
        "multiyear_tokens_at_start": F,
        "multiyear_consumed_tokens": F,
    },
    scope_columns=("contract_number",),
    description="GET /tokenflex/v1/contract/<n>: one row per contract x contract year (snapshot).",
    required=("contract_number",),
)

TOKENFLEX_ENRICHMENT = DatasetSpec(
    "tokenflex_enrichment",
    {"contract_number": S, "custom_field": S, "category_name": S},
    scope_columns=("contract_number",),
    description="GET /tokenflex/v1/contract/<n>/enrichment: customField1..10 -> the customer's name for it.",
    required=("contract_number", "custom_field"),
)

USER_METADATA = DatasetSpec(
    "user_metadata",
    {
        "email": S,
        "user_id": S,
        "user_name": S,
        "hashed_user_id": S,
        "full_name": S,
        "geo": S,
        "country": S,
        "city": S,
        "department": S,
        "cost_center": S,
        "project": S,  # several projects separated by ';'
        "skill_level": S,
    },
    description="The customer's user metadata file (replaced whole on each import).",
)

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        PREMIUM_TEAMS,
        PREMIUM_USAGE,
        PREMIUM_USAGE_FILES,
        PREMIUM_USERS,
        PREMIUM_SUBSCRIPTIONS,
        TOKENFLEX_USAGE,
        TOKENFLEX_CONTRACTS,
        TOKENFLEX_ENRICHMENT,
        USER_METADATA,
    )
}

# Every row of every dataset also carries these, after its listed and extra columns.
META_COLUMNS: dict[str, pa.DataType] = {
    "_source": S,
    "_extracted_at": TS,
    "_row_hash": S,
}
