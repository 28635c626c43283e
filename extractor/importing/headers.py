"""Column headers of hand-downloaded files -> the canonical names of ``extractor/schemas.py``.

Autodesk has used two naming schemes for the same usage export (``day_used``, ``team_alias``,
``tokens_used`` ... and the 2026 display headers "Date", "Team", "Tokens" ...), Token Flex
exports use the API's camelCase field names (``usageDate``, ``tokensConsumed``), and
customers write metadata headers by hand ("Cost Center", "E-mail"). :func:`normalise_header`
turns any of these into one snake_case name, then maps known aliases onto the canonical one.
Names that are not aliases pass through normalised: unknown columns are kept, not dropped.
"""

from __future__ import annotations

import re
import unicodedata

# normalised header -> canonical column. Keys are already normalised (snake_case); no value
# is itself a key, so normalising twice gives the same name.
ALIASES: dict[str, str] = {
    # --- usage export, the older names (docs/apis.md "Usage export columns")
    "autodesk_id": "user_id",
    "day_used": "usage_date",
    "hashed_autodesk_id": "hashed_user_id",
    "team_alias": "team_name",
    "tokens_used": "tokens",
    # --- 2026 names and display headers
    "date": "usage_date",
    "usage_day": "usage_date",
    "date_used": "usage_date",
    "team": "team_name",
    "group": "team_name",  # 2026: Autodesk Account "groups" replace teams (filter groupId[])
    "group_name": "team_name",
    "group_id": "team_id",
    "context_id": "team_id",  # Premium API contextId = the team
    "product": "product_name",
    "offering": "offering_name",
    "token": "tokens",
    "tokens_charged": "tokens",
    "username": "user_name",
    "o2_id": "user_id",
    "autodesk_user_id": "user_id",
    "hashed_id": "hashed_user_id",
    "masked_user_id": "hashed_user_id",
    "user_full_name": "full_name",
    "given_name": "first_name",
    "firstname": "first_name",
    "surname": "last_name",
    "family_name": "last_name",
    "lastname": "last_name",
    "email_address": "email",
    "e_mail": "email",
    "e_mail_address": "email",
    "user_email": "email",
    "email_id": "email",
    "seats": "seat_quantity",
    "quantity": "seat_quantity",
    "seat_qty": "seat_quantity",
    "seat_count": "seat_quantity",
    "number_of_seats": "seat_quantity",
    "user_status": "account_status",
    "agreement_number": "contract_number",
    "contract": "contract_number",
    "contract_no": "contract_number",
    "auto_renew_date": "autorenew_date",
    "renewal_date": "autorenew_date",
    "last_access": "last_accessed",
    "last_access_date": "last_accessed",
    "last_accessed_date": "last_accessed",
    "monthly_avg": "monthly_average",
    "assigned_on": "assigned_date",
    "assignment_date": "assigned_date",
    "plc": "product_line_code",
    "pfc": "product_feature_code",
    "feature_code": "feature_id",
    **{f"custom_field_{i}": f"custom_field{i}" for i in range(1, 11)},  # "Custom Field 1"
    # --- customer metadata
    "cost_centre": "cost_center",
    "costcenter": "cost_center",
    "skill": "skill_level",
    "skills": "skill_level",
    "geography": "geo",
    "dept": "department",
    "projects": "project",
}

_BOM_AND_SPACE = "\ufeff\ufffe\u200b\u00a0 \t\r\n"
_CAMEL_LOWER_UPPER = re.compile(r"([a-z0-9])([A-Z])")  # usageDate -> usage_Date
_CAMEL_ACRONYM = re.compile(r"([A-Z]+)([A-Z][a-z])")  # HTTPServer -> HTTP_Server
_NOT_WORD = re.compile(r"[\W_]+")  # spaces, punctuation, repeated underscores


def _fold(text: str) -> str:
    """Accents off (Région -> Region) but letters of other scripts kept."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def snake_case(text: str) -> str:
    """``"  Usage Date "`` / ``usageDate`` / ``USAGE-DATE`` -> ``usage_date``; no alias mapping."""
    text = _fold(text.strip(_BOM_AND_SPACE))
    text = _CAMEL_ACRONYM.sub(r"\1_\2", _CAMEL_LOWER_UPPER.sub(r"\1_\2", text))
    text = _fold(text.lower())  # lower() can itself produce combining marks (İ)
    return _NOT_WORD.sub("_", text).strip("_")


def normalise_header(text: str) -> str:
    """A header as the canonical column name (aliases of both Autodesk schemes mapped)."""
    name = snake_case(text)
    return ALIASES.get(name, name)


def _priority(plain: str, name: str) -> int:
    """Which header gets a canonical name two headers map to: the name itself, then aliases
    in the order of :data:`ALIASES` (``Team`` before ``Group``)."""
    if plain == name:
        return -1
    keys = list(ALIASES)
    return keys.index(plain) if plain in ALIASES else len(keys)


def column_names(headers: list[str], source: str, aliases: dict[str, str] | None = None) -> list[str]:
    """Canonical names for a header row; an empty header becomes ``column_<n>``.

    ``aliases`` are the kind's own extra aliases (``status`` means a different thing in a
    Users and a Subscriptions report). Two headers that normalise to the same text
    (``Email`` and ``EMAIL``) are an error: which one to keep cannot be guessed. When two
    different headers are aliases of one column (2026 Users reports have both ``Team`` and
    ``Group``), the better one takes the canonical name and the other keeps its own.
    """
    from ..errors import InputError

    texts = ["" if h is None else str(h) for h in headers]
    plain = [snake_case(t) or f"column_{i}" for i, t in enumerate(texts, start=1)]
    first_seen: dict[str, int] = {}
    for i, name in enumerate(plain):
        if name in first_seen:
            raise InputError(
                f"{source}: duplicate column '{name}' (headers {texts[first_seen[name]]!r} and {texts[i]!r})"
            )
        first_seen[name] = i
    wanted = []
    for p in plain:
        name = ALIASES.get(p, p)
        wanted.append(aliases.get(name, aliases.get(p, name)) if aliases else name)
    names = list(plain)
    for target in dict.fromkeys(wanted):
        claimants = [i for i, w in enumerate(wanted) if w == target]
        winner = min(claimants, key=lambda i: _priority(plain[i], target))
        names[winner] = target
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise InputError(f"{source}: duplicate column(s) {', '.join(dupes)} after normalising the headers")
    return names
