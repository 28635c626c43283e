"""The raw datasets: their names, typed columns, descriptions and partitioning. The one
contract between the extractor (API and file import) and the dbt sources: the dbt sources
file (dbt_project/models/staging/_sources.yml) and the README's dataset table are generated
from it (``python -m extractor.generate --write``; a test fails when they are stale).

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
INT = pa.int64()
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
    #: column -> what it holds, where the name does not say it (others: "as delivered")
    docs: dict[str, str] = field(default_factory=dict)

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([(k, v) for k, v in self.columns.items()])


_USER_IDENTITY = {
    "user_id": S,
    "hashed_user_id": S,
    "email": S,
    "first_name": S,
    "last_name": S,
    "full_name": S,
    "user_name": S,
}

_USER_IDENTITY_DOCS = {
    "user_id": "Autodesk user id (O2 id: autodesk_id / userId).",
    "hashed_user_id": "Hashed Autodesk id (hashedUserId / hashed_autodesk_id).",
    "email": "The user's email ('*****' when Autodesk masks personal data).",
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
        "source": S,
        "tokens": F,
        **_USER_IDENTITY,
        "is_parent_product": INT,
        "is_product_versioned": INT,
        "reporting_entity_id": S,
        "contract_number": S,
    },
    date_column="usage_date",
    scope_columns=("context_id",),
    description="Premium usage queries (POST /insights/v1/usage-queries), one row per group of all fields.",
    required=("usage_date", "product_name"),
    docs={
        **_USER_IDENTITY_DOCS,
        "usage_date": "Day of use.",
        "usage_month": "First day of the month of usage_date (the partition).",
        "context_id": "Premium team (context) id.",
        "product_name": "Product line name (a collection's name for collection usage).",
        "child_product_name": "The product actually used.",
        "source": "Licensing model: sus | flex | ppu.",
        "tokens": "Metric totalTokens (Flex usage).",
    },
)

PREMIUM_USAGE_FILES = DatasetSpec(
    "premium_usage_files",
    {
        "usage_date": D,
        "team_name": S,
        "team_id": S,
        **_USER_IDENTITY,
        "product_name": S,
        "offering_name": S,
        "product_line_code": S,
        "feature_id": S,
        "version": S,
        "tokens": F,
        "usage_type": S,
        "plan": S,
        "term": S,
        "access_method": S,
        "access_option": S,
        "role": S,
        "account_status": S,
        "subscription_id": S,
        "contract_number": S,
        "seat_quantity": INT,
        "subscription_status": S,
        "start_date": D,
        "end_date": D,
        "autorenew_date": D,
        "contract_manager_email": S,
        "reseller_name": S,
        "reseller_email": S,
        "days_used": INT,
        "days_inactive": INT,
        "last_accessed": D,
        "monthly_average": F,
        "assigned_date": D,
        "seat_assignment": S,
    },
    date_column="usage_date",
    scope_columns=("team_id",),
    description="Usage report rows from Premium exports (API USAGE report) and files downloaded by hand.",
    required=("usage_date", "product_name"),
    docs={
        **_USER_IDENTITY_DOCS,
        "usage_date": "Day of use (day_used / 'Day Used' / 'Date').",
        "team_name": "Team (team_alias / 'Team' / group).",
        "product_name": "The product used.",
        "offering_name": "The subscription offering it was used through.",
        "tokens": "Tokens used (tokens_used).",
    },
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
        "days_inactive": INT,
        "days_used": INT,
    },
    scope_columns=("team_id",),
    snapshot_columns=("team_name",),
    description="Users report (seat assignments): one row per user x assigned offering.",
    required=("offering_name",),
    docs={**_USER_IDENTITY_DOCS, "offering_name": "The offering the seat is assigned to."},
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
        "seat_quantity": INT,
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
    docs={"seat_quantity": "Seats bought on the subscription."},
)

TOKENFLEX_USAGE = DatasetSpec(
    "tokenflex_usage",
    {
        "contract_number": S,
        "usage_date": D,
        "usage_month": D,
        "contract_year": INT,
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
        "use_count": INT,
        **{f"custom_field{i}": S for i in range(1, 11)},
    },
    date_column="usage_date",
    scope_columns=("contract_number",),
    description="Token Flex export CSV rows (POST /tokenflex/v1/export/<n>/requests), or a file imported by hand.",
    required=("usage_date", "tokens_consumed"),
    docs={
        "usage_date": "Day of use.",
        "usage_month": "First day of the month of usage_date (the partition).",
        "user_name": "The user: an email for most users, an NT id for some.",
        "tokens_consumed": "Tokens charged.",
        **{f"custom_field{i}": f"customField{i}; its meaning is in tokenflex_enrichment." for i in range(1, 11)},
    },
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
        "contract_year": INT,
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
    docs={"provisioned_tokens": "Tokens provisioned for the contract year."},
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
        "project": S,
        "skill_level": S,
    },
    description="The customer's user metadata file (replaced whole on each import).",
    docs={"project": "The user's projects, several separated by ';'."},
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
META_DOCS: dict[str, str] = {
    "_source": "API call or file name the row came from (never a signed URL).",
    "_extracted_at": "When the extractor wrote the row (UTC).",
    "_row_hash": "128-bit hash (hex) of the dataset's listed columns' values; identical rows share it, and a dataset holds each once.",
}


def column_doc(spec: DatasetSpec, column: str) -> str:
    """What a column of a dataset holds (its description in the dbt sources and the docs site)."""
    return spec.docs.get(column) or META_DOCS.get(column) or f"`{column}` as delivered by the API or file."


# Text as it comes from a CSV import: dictionary-encoded (each distinct value stored once, the
# cells as indices into them). A column declared ``string`` may hold either form in memory;
# its Parquet and Delta type is ``string`` either way.
TEXT = pa.dictionary(pa.int32(), pa.string())


def plain_text(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """``column`` with dictionary-encoded text decoded (for code that needs ``string``)."""
    return column.cast(pa.string()) if column.type == TEXT else column
