"""The five kinds of hand-downloaded file, where each one goes, and how to tell them apart.

| kind | dataset | what an import of it replaces |
|---|---|---|
| usage | premium_usage_files | nothing: rows are added (duplicates dropped by row hash) |
| users | premium_users | the rows of the teams the file holds (snapshot) |
| subscriptions | premium_subscriptions | the rows of the teams the file holds (snapshot) |
| tokenflex | tokenflex_usage | nothing: rows are added (duplicates dropped by row hash) |
| metadata | user_metadata | the whole dataset |

Detection looks only at the (normalised) headers. Each kind has columns it must have, one
group of which at least one must be present, and columns it must not have; the rules are
written so that at most one kind fits a real Autodesk or customer file. If several still
fit, the one with the most of its own typical columns wins; a tie is an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..dataset import Replace
from ..errors import InputError
from ..schemas import (
    PREMIUM_SUBSCRIPTIONS,
    PREMIUM_USAGE_FILES,
    PREMIUM_USERS,
    TOKENFLEX_USAGE,
    USER_METADATA,
    DatasetSpec,
)

IDENTITY = ("email", "user_id", "hashed_user_id", "user_name", "first_name", "last_name", "full_name")
METADATA_KEYS = ("email", "user_id", "user_name", "hashed_user_id")
METADATA_ATTRIBUTES = ("geo", "country", "city", "department", "cost_center", "project", "skill_level")
TOKENFLEX_ONLY = (
    "tokens_consumed", "usage_category", "charge_category", "charged_item_id", "machine_name",
    "license_server_name", "product_feature_code", "contract_year", "usage_minutes", "usage_hours",
    "use_count", "token_pool", "reason_type", "session_start_date", "session_end_date",
    *(f"custom_field{i}" for i in range(1, 11)),
)


@dataclass(frozen=True)
class Kind:
    name: str
    spec: DatasetSpec
    must_have: tuple[str, ...]  # every one of these
    any_of: tuple[tuple[str, ...], ...] = ()  # at least one column of each group
    must_not_have: tuple[str, ...] = ()
    typical: tuple[str, ...] = ()  # tie-breaker: columns typical of this kind
    aliases: dict[str, str] = field(default_factory=dict)  # this kind's own header aliases
    description: str = ""

    @property
    def dataset(self) -> str:
        return self.spec.name

    def replace(self) -> Replace | None:
        if self.name in ("users", "subscriptions"):
            return Replace(snapshot=True)
        if self.name == "metadata":
            return Replace(everything=True)
        return None

    def missing(self, names: set[str]) -> list[str]:
        """What keeps ``names`` from being this kind (empty: it fits)."""
        problems = [f"no '{c}'" for c in self.must_have if c not in names]
        for group in self.any_of:
            if not names.intersection(group):
                problems.append("none of " + "/".join(group))
        problems += [f"has '{c}'" for c in self.must_not_have if c in names]
        return problems

    def required_missing(self, names: set[str]) -> list[str]:
        """Columns the dataset contract requires (used when the kind is given, not guessed)."""
        missing = [c for c in self.spec.required if c not in names]
        if self.name == "metadata" and not names.intersection(METADATA_KEYS):
            missing.append("/".join(METADATA_KEYS))
        return missing


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind(
            "usage",
            PREMIUM_USAGE_FILES,
            must_have=("usage_date", "product_name"),
            must_not_have=("tokens_consumed", "usage_category", "charge_category", "charged_item_id"),
            typical=("offering_name", "team_name", "tokens", "usage_type", "access_method", "plan",
                     "email", "user_id", "hashed_user_id", "version", "days_used", "monthly_average"),
            aliases={"product_version": "version", "release": "version", "status": "account_status"},
            description="usage report (Autodesk Account export / Premium USAGE export)",
        ),
        Kind(
            "users",
            PREMIUM_USERS,
            must_have=("offering_name",),
            any_of=(IDENTITY,),
            must_not_have=("usage_date", "seat_quantity", "tokens", *METADATA_ATTRIBUTES),  # tokens: a usage file without its date
            typical=("role", "account_status", "assigned_date", "last_accessed", "seat_assignment",
                     "days_inactive", "team_name"),
            aliases={"status": "account_status", "name": "full_name", "user_full_name": "full_name"},
            description="users report (seat assignments)",
        ),
        Kind(
            "subscriptions",
            PREMIUM_SUBSCRIPTIONS,
            must_have=("offering_name", "seat_quantity"),
            must_not_have=("usage_date", *IDENTITY),
            typical=("subscription_id", "subscription_status", "start_date", "end_date", "autorenew_date",
                     "term", "plan", "contract_number", "reseller_name"),
            aliases={"status": "subscription_status"},
            description="subscriptions report",
        ),
        Kind(
            "tokenflex",
            TOKENFLEX_USAGE,
            must_have=("usage_date", "tokens_consumed"),
            must_not_have=("offering_name",),
            typical=TOKENFLEX_ONLY + ("product_line_code", "user_name", "product_name"),
            description="Token Flex usage export (API field names)",
        ),
        Kind(
            "metadata",
            USER_METADATA,
            must_have=(),
            any_of=(METADATA_KEYS, METADATA_ATTRIBUTES),
            must_not_have=("usage_date", "product_name", "offering_name", "seat_quantity", "tokens_consumed"),
            typical=METADATA_ATTRIBUTES,
            aliases={"name": "full_name"},
            description="the customer's user metadata (geo, department, cost center ...)",
        ),
    )
}


def kind_by_name(name: str) -> Kind:
    try:
        return KINDS[name]
    except KeyError:
        raise InputError(f"unknown kind '{name}' (known: {', '.join(KINDS)})") from None


def _headers_text(headers: list[str], limit: int = 15) -> str:
    shown = [str(h) for h in headers[:limit]]
    more = f", ... ({len(headers)} in all)" if len(headers) > limit else ""
    return ", ".join(repr(h) for h in shown) + more


def detect_kind(names: list[str], headers: list[str], source: str) -> Kind:
    """The kind whose rules ``names`` (normalised headers) fit; InputError if none or a tie."""
    present = set(names)
    fits = [k for k in KINDS.values() if not k.missing(present | _kind_aliased(k, present))]
    if len(fits) == 1:
        return fits[0]
    if not fits:
        ranked = sorted(KINDS.values(), key=lambda k: len(k.missing(present)))
        closest = "; ".join(f"{k.name} ({', '.join(k.missing(present))})" for k in ranked[:2])
        raise InputError(
            f"{source}: cannot tell what kind of file this is from its headers ({_headers_text(headers)}); "
            f"closest: {closest}. Name it with --kind {'|'.join(KINDS)}"
        )
    scores = {k.name: len(present.intersection(k.typical)) for k in fits}
    best = max(scores.values())
    winners = [k for k in fits if scores[k.name] == best]
    if len(winners) == 1:
        return winners[0]
    raise InputError(
        f"{source}: the headers ({_headers_text(headers)}) fit several kinds: "
        f"{', '.join(k.name for k in winners)}; choose one with --kind"
    )


def _kind_aliased(kind: Kind, present: set[str]) -> set[str]:
    return {kind.aliases[n] for n in present if n in kind.aliases}


def looks_like_header(names: list[str]) -> bool:
    """At least one known column among the names: the header row, not a title line."""
    known = {c for k in KINDS.values() for c in k.spec.columns}
    return len([n for n in names if n]) >= 2 and bool(known.intersection(names))
