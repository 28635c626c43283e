"""Deterministic synthetic usage data for the sandbox, generated vectorised with numpy/pyarrow.

``generate(seed, users, days, end_date)`` builds people with personas (daily power users,
weekly and occasional users, assigned-but-inactive users, light and heavy Flex users,
collection holders using one product, users of several standalone products one collection
contains, ...), gives each person "slots" (an offering x product x source x version with a
daily probability of use), then draws the whole slots x days matrix at once. Every table
(Premium usage, seat assignments, subscriptions, Token Flex sessions, contract years,
enrichment, the customer's metadata file) derives from those draws, so the same flex
consumption is visible in both APIs and all totals agree.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from .products import COLLECTIONS, PRODUCTS

EPOCH = dt.date(1970, 1, 1)

SOURCES = ("sus", "flex", "ppu")
SUS, FLEX, PPU = 0, 1, 2
VERSIONS = ("2022", "2023", "2024", "2025", "2026")
VERSION_WEIGHTS = np.array([0.06, 0.1, 0.2, 0.34, 0.3])
MINOR_SUFFIXES = ("0", "0.1", "1", "1.1", "2")

# (context id, alias, geo, country, city, preferred collection code)
TEAM_CATALOG = (
    ("4865648", "New York Office", "AMER", "United States", "New York", "AECCOL"),
    ("5012734", "London Studio", "EMEA", "United Kingdom", "London", "MECOLL"),
    ("5230981", "Singapore Hub", "APAC", "Singapore", "Singapore", "AECCOL"),
    ("5477102", "Munich Engineering", "EMEA", "Germany", "Munich", "PDCOLL"),
)
REPORTING_BENEFITS = ["ReportingAPIAccess", "ReportingAdvanced", "ReportingFlexUsage", "ReportingSeatUsage", "InsightsTeam"]

FIRST_NAMES = (
    "Angel James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara "
    "Richard Susan Joseph Jessica Thomas Sarah Charles Karen Wei Mei Hiroshi Yuki Priya Arjun "
    "Fatima Omar Lena Jonas Sofia Lukas Chloe Mateo Aisha Noah Ingrid Pablo Zara Kenji"
).split()
LAST_NAMES = (
    "Schuy Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez "
    "Lopez Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Tan Chen Wong Kumar "
    "Patel Muller Schmidt Fischer Weber Rossi Dubois Novak Silva Sato Suzuki Khan Okafor Berg"
).split()
DEPARTMENTS = (
    ("Architecture", "CC-1100"),
    ("Structural Engineering", "CC-1200"),
    ("MEP Engineering", "CC-1300"),
    ("Civil Infrastructure", "CC-1400"),
    ("Mechanical Design", "CC-2100"),
    ("Manufacturing Engineering", "CC-2200"),
    ("Visualization", "CC-3100"),
    ("BIM Management", "CC-1500"),
)
PROJECTS = (
    "Harbor Tower", "Riverside Campus", "Metro Line 4", "Data Center West", "Airport Terminal B",
    "Gearbox X2", "Pump Series 9", "Studio Reel 2026", "Hospital Wing C", "Bridge 17",
)
SKILL_LEVELS = ("Beginner", "Intermediate", "Advanced", "Expert")
ENRICHMENT_NAMES = (
    "GEO", "Department", "Cost Center", "Country", "City", "Project", "Skill Level", "Team",
    "Employee Type", "Office Code",
)

# persona -> share of people. Every persona gets at least one person.
PERSONAS = {
    "power": 0.13,
    "weekly": 0.14,
    "occasional": 0.10,
    "inactive": 0.09,
    "flex_light": 0.10,
    "flex_heavy": 0.10,
    "collection_single": 0.11,
    "standalone_multi": 0.10,
    "mixed": 0.07,
    "ppu": 0.03,
    "tokenflex_only": 0.03,
}
PERSONA_NAMES = tuple(PERSONAS)

TOKENFLEX_CONTRACT_NUMBER = "110001234567"
TOKENFLEX_CONTRACT_NAME = "ACME Token Flex Enterprise"

_PRODUCT_INDEX = {p.code: i for i, p in enumerate(PRODUCTS)}
_COLLECTION_INDEX = {c.code: i for i, c in enumerate(COLLECTIONS)}
_STANDALONE = [i for i, p in enumerate(PRODUCTS) if not p.collections]


@dataclass
class SandboxData:
    """The generated tables (pyarrow). Column names are snake_case, as in extractor/schemas.py."""

    seed: int
    start_date: dt.date
    end_date: dt.date
    teams: pa.Table
    people: pa.Table
    usage: pa.Table
    users: pa.Table
    subscriptions: pa.Table
    tokenflex_usage: pa.Table
    contracts: pa.Table
    enrichment: pa.Table
    metadata: pa.Table
    contract_number: str = TOKENFLEX_CONTRACT_NUMBER
    extras: dict = field(default_factory=dict)

    @property
    def days(self) -> int:
        return (self.end_date - self.start_date).days + 1


def _yesterday() -> dt.date:
    return dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)


def _as_date(value) -> dt.date:
    if value is None:
        return _yesterday()
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))


def _take(values: Sequence, index: np.ndarray, type_: pa.DataType | None = None) -> pa.Array:
    """Vectorised lookup: values[index] as an Arrow array (index -1 = null)."""
    type_ = type_ or pa.string()
    dictionary = pa.array(list(values), type=type_)
    index = np.asarray(index)
    if index.size and index.min() < 0:
        return dictionary.take(pa.array(index, mask=index < 0))
    return dictionary.take(pa.array(index))


_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sandbox-gen")


def _materialize(columns: dict) -> pa.Table:
    """Build a table whose values may be callables; big ones run on two threads (Arrow's take
    releases the GIL, and string gathers dominate the generation time)."""
    names = list(columns)
    thunks = [columns[n] if callable(columns[n]) else (lambda v=columns[n]: v) for n in names]
    arrays = list(_POOL.map(lambda f: f(), thunks))
    return pa.table(dict(zip(names, arrays)))


def _hex_ids(values: np.ndarray, width: int = 12) -> pa.Array:
    """Upper-case hex strings of fixed width, vectorised (no Python loop per row)."""
    shifts = np.arange(width - 1, -1, -1, dtype=np.uint64) * np.uint64(4)
    digits = (values.astype(np.uint64)[:, None] >> shifts[None, :]) & np.uint64(15)
    chars = np.frombuffer(b"0123456789ABCDEF", dtype=np.uint8)[digits.astype(np.int64)]
    return pa.array(np.ascontiguousarray(chars).view(f"S{width}").ravel()).cast(pa.string())


def _distinct(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (a sort and a compare; numpy's hash-based unique is slower here)."""
    if values.size == 0:
        return values
    ordered = np.sort(values)
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]


def _dates(day_numbers: np.ndarray) -> pa.Array:
    return pa.array(day_numbers.astype(np.int32), type=pa.date32())


def _month_start(day_numbers: np.ndarray) -> np.ndarray:
    """First day of each day's month (day numbers since 1970); a lookup over the few distinct days."""
    if day_numbers.size == 0:
        return day_numbers.astype(np.int64)
    lo, hi = int(day_numbers.min()), int(day_numbers.max())
    days = np.arange(lo, hi + 1).astype("datetime64[D]")
    table = days.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
    return table[day_numbers - lo]


def _persona_counts(n: int) -> list[int]:
    counts = [max(1, int(round(share * n))) for share in PERSONAS.values()]
    counts[1] += n - sum(counts)  # 'weekly' absorbs the rounding
    if counts[1] < 1:
        raise ValueError(f"users must be at least {len(PERSONAS) + 1}, got {n}")
    return counts


def _people(rng: np.random.Generator, n: int, team_rows: list[tuple]) -> dict[str, np.ndarray | list]:
    persona = np.repeat(np.arange(len(PERSONAS)), _persona_counts(n))
    rng.shuffle(persona)
    team = rng.integers(0, len(team_rows), n)
    first_i = rng.integers(0, len(FIRST_NAMES), n)
    last_i = rng.integers(0, len(LAST_NAMES), n)
    first = [FIRST_NAMES[i] for i in first_i]
    last = [LAST_NAMES[i] for i in last_i]
    alphabet = np.array(list("ABCDEFGHJKLMNPQRSTUVWXYZ23456789"))
    id_chars = alphabet[rng.integers(0, len(alphabet), (n, 12))]
    user_id = ["".join(row) for row in id_chars]
    hashed = [hashlib.sha1(u.encode()).hexdigest() for u in user_id]
    email = [f"{f}.{surname}{i + 1}@acme-design.example".lower() for i, (f, surname) in enumerate(zip(first, last))]
    nt_id = [f"{f[0]}{surname}{i + 1}".lower() for i, (f, surname) in enumerate(zip(first, last))]
    dept = rng.integers(0, len(DEPARTMENTS), n)
    proj_a = rng.integers(0, len(PROJECTS), n)
    proj_b = (proj_a + rng.integers(1, len(PROJECTS), n)) % len(PROJECTS)
    two_projects = rng.random(n) < 0.25
    project = [
        f"{PROJECTS[a]};{PROJECTS[b]}" if two else PROJECTS[a]
        for a, b, two in zip(proj_a, proj_b, two_projects)
    ]
    skill = rng.integers(0, len(SKILL_LEVELS), n)
    is_tf_only = persona == PERSONA_NAMES.index("tokenflex_only")
    return {
        "persona": persona,
        "team": team,
        "first": first,
        "last": last,
        "user_id": user_id,
        "hashed": hashed,
        "email": email,
        "nt_id": nt_id,
        "dept": dept,
        "project": project,
        "skill": skill,
        "tf_only": is_tf_only,
    }


class _Slots:
    """Columns of the slot table, appended row by row (one row per offering x product a person uses)."""

    names = ("user", "product", "collection", "source", "version", "minor", "new_version", "switch_day",
             "p", "first_day", "last_day")

    def __init__(self) -> None:
        self.cols: dict[str, list] = {k: [] for k in self.names}

    def add(self, user, product, collection, source, p, version, minor, new_version=-1, switch_day=1 << 30,
            first_day=0, last_day=1 << 30) -> None:
        for k, v in zip(self.names, (user, product, collection, source, version, minor, new_version, switch_day,
                                     p, first_day, last_day)):
            self.cols[k].append(v)

    def arrays(self) -> dict[str, np.ndarray]:
        out = {k: np.asarray(v, dtype=np.int64) for k, v in self.cols.items() if k != "p"}
        out["p"] = np.asarray(self.cols["p"], dtype=np.float32)
        return out


def _plan_slots(rng: np.random.Generator, people: dict, team_rows: list[tuple], days: int) -> _Slots:
    slots = _Slots()
    n = len(people["persona"])
    # Draw every random number up front in bulk (a Python loop over draws is the slow part).
    u = rng.random((n, 16))
    vers = rng.choice(len(VERSIONS), size=(n, 4), p=VERSION_WEIGHTS)
    minors = rng.integers(0, len(MINOR_SUFFIXES), (n, 4))
    members = {c.code: [_PRODUCT_INDEX[p.code] for p in PRODUCTS if c.code in p.collections] for c in COLLECTIONS}
    # standalone-able pairs that one collection contains (collection_candidates)
    pairs = [("ACD", "RVT"), ("ACD", "CIV3D"), ("RVT", "NAVMAN"), ("INVPROSA", "ACD"), ("MAYA", "3DSMAX"),
             ("ACD", "ARCHDESK"), ("INVPROSA", "AMECH_PP")]
    flex_pool = [_PRODUCT_INDEX[c] for c in ("ACD", "RVT", "CIV3D", "NAVMAN", "3DSMAX", "MAYA", "INVPROSA",
                                               "RECAP", "ACDLT", "F360", "VLTO", "MFAA", "ALAUST", "PLNT3D")]

    def version(i, k):
        v = int(vers[i, k])
        # 30% of older-version slots upgrade to the next version somewhere in the window
        if v < len(VERSIONS) - 1 and u[i, 12 + k] < 0.3:
            return v, int(minors[i, k]), v + 1, int(u[i, 11] * days)
        return v, int(minors[i, k]), -1, 1 << 30

    def pick(seq, x):
        return seq[min(int(x * len(seq)), len(seq) - 1)]

    for i in range(n):
        persona = PERSONA_NAMES[people["persona"][i]]
        team_pref = team_rows[people["team"][i]][5]
        coll_code = team_pref if u[i, 0] < 0.7 else pick([c.code for c in COLLECTIONS], u[i, 1])
        coll = _COLLECTION_INDEX[coll_code]
        mem = members[coll_code]

        def add(product, collection, source, p, k, i=i, **kw):  # i: this user's row
            v, m, nv, sw = version(i, k)
            slots.add(i, product, collection, source, p, v, m, nv, sw, **kw)

        if persona == "power":
            a = pick(mem, u[i, 2])
            b = pick([x for x in mem if x != a], u[i, 3])
            add(a, coll, SUS, 0.85, 0)
            add(b, coll, SUS, 0.55, 1)
            if u[i, 4] < 0.5:
                add(pick([x for x in mem if x not in (a, b)], u[i, 5]), coll, SUS, 0.2, 2)
        elif persona == "weekly":
            if u[i, 2] < 0.5:
                add(pick(mem, u[i, 3]), coll, SUS, 0.3, 0)
                if u[i, 4] < 0.5:
                    add(pick(mem, u[i, 5]), coll, SUS, 0.15, 1)
            else:
                add(pick(_STANDALONE, u[i, 3]), -1, SUS, 0.3, 0)
        elif persona == "occasional":
            if u[i, 2] < 0.5:
                add(pick(mem, u[i, 3]), coll, SUS, 0.07, 0)
            else:
                add(pick(_STANDALONE + mem, u[i, 3]), -1, SUS, 0.07, 0)
        elif persona == "inactive":
            product = pick(mem, u[i, 3])
            if u[i, 2] < 0.5:  # assigned, never used
                add(product, coll, SUS, 0.0, 0)
            else:  # used, but stopped 35-150 days before the end
                add(product, coll if u[i, 4] < 0.6 else -1, SUS, 0.3, 0, last_day=days - 35 - int(u[i, 5] * 115))
        elif persona == "flex_light":
            add(pick(flex_pool, u[i, 2]), -1, FLEX, 0.10, 0)
            if u[i, 3] < 0.4:
                add(pick(flex_pool, u[i, 4]), -1, FLEX, 0.05, 1)
        elif persona == "flex_heavy":
            a = pick(flex_pool, u[i, 2])
            b = pick([x for x in flex_pool if x != a], u[i, 3])
            add(a, -1, FLEX, 0.75, 0)
            add(b, -1, FLEX, 0.5, 1)
            if u[i, 4] < 0.4:
                add(pick([x for x in flex_pool if x not in (a, b)], u[i, 5]), -1, FLEX, 0.3, 2)
        elif persona == "collection_single":
            if u[i, 2] < 0.6:  # one product of the collection, regularly
                add(pick(mem, u[i, 3]), coll, SUS, 0.5, 0)
            else:  # collection used rarely
                add(pick(mem, u[i, 3]), coll, SUS, 0.02, 0)
                add(pick(mem, u[i, 4]), coll, SUS, 0.01, 1)
        elif persona == "standalone_multi":
            a, b = pick(pairs, u[i, 2])
            add(_PRODUCT_INDEX[a], -1, SUS, 0.45, 0)
            add(_PRODUCT_INDEX[b], -1, SUS, 0.3, 1)
        elif persona == "mixed":
            add(pick(mem, u[i, 2]), coll, SUS, 0.5, 0)
            add(pick(flex_pool, u[i, 3]), -1, FLEX, 0.12, 1)
        elif persona == "ppu":
            add(pick(flex_pool, u[i, 2]), -1, PPU, 0.1, 0)
        elif persona == "tokenflex_only":
            add(pick(flex_pool, u[i, 2]), -1, FLEX, 0.35, 0)
    return slots


def _day_factor(start: dt.date, days: int) -> np.ndarray:
    day_numbers = np.arange(days) + (start - EPOCH).days
    weekday = (day_numbers + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
    factor = np.where(weekday == 5, 0.12, np.where(weekday == 6, 0.06, 1.0))
    month_day = day_numbers.astype("datetime64[D]")
    md = (month_day - month_day.astype("datetime64[M]")).astype(int)
    month = month_day.astype("datetime64[M]").astype(int) % 12
    factor = np.where((month == 11) & (md >= 22), factor * 0.3, factor)  # holidays
    return factor.astype(np.float32)


def _draw_usage(rng: np.random.Generator, slots: dict[str, np.ndarray], day_factor: np.ndarray):
    """Draw the slots x days matrix chunk by chunk; returns (slot index, day index) of each usage."""
    days = len(day_factor)
    chunk = max(1, 4_000_000 // days)
    day_index = np.arange(days)
    out_s, out_d = [], []
    for lo in range(0, len(slots["p"]), chunk):
        hi = min(lo + chunk, len(slots["p"]))
        draws = rng.random((hi - lo, days), dtype=np.float32)
        used = draws < slots["p"][lo:hi, None] * day_factor[None, :]
        used &= day_index[None, :] >= slots["first_day"][lo:hi, None]
        used &= day_index[None, :] <= slots["last_day"][lo:hi, None]
        s, d = np.nonzero(used)
        out_s.append(s + lo)
        out_d.append(d)
    if not out_s:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(out_s), np.concatenate(out_d)


def _subscription_id(team: int, offering_key: str) -> str:
    return str(60000000000000 + int(hashlib.md5(f"{team}|{offering_key}".encode()).hexdigest()[:10], 16) % 10**13)


def generate(
    seed: int = 42,
    users: int = 500,
    days: int = 365,
    end_date: dt.date | str | None = None,
    teams: int | Sequence[str] | None = None,
) -> SandboxData:
    """Generate the sandbox's tables; deterministic for (seed, users, days, end_date, teams)."""
    if days < 1 or days > 3 * 366:
        raise ValueError(f"days must be between 1 and {3 * 366}, got {days}")
    end = _as_date(end_date)
    start = end - dt.timedelta(days=days - 1)
    rng = np.random.default_rng(seed)

    if teams is None:
        team_rows = list(TEAM_CATALOG)
    elif isinstance(teams, int):
        if not 1 <= teams <= len(TEAM_CATALOG):
            raise ValueError(f"teams must be between 1 and {len(TEAM_CATALOG)}")
        team_rows = list(TEAM_CATALOG[:teams])
    else:
        team_rows = [
            (str(4865648 + 111111 * k), name, *TEAM_CATALOG[k % len(TEAM_CATALOG)][2:])
            for k, name in enumerate(teams)
        ]

    people = _people(rng, users, team_rows)
    slots = _plan_slots(rng, people, team_rows, days).arrays()
    # Token-Flex-only people's slots last: their rows then form the tail, and the Premium
    # rows are a prefix (a view, not a masked copy of every column)
    slot_order = np.argsort(people["tf_only"][slots["user"]], kind="stable")
    slots = {k: v[slot_order] for k, v in slots.items()}
    premium_slots = int(np.count_nonzero(~people["tf_only"][slots["user"]]))
    s, d = _draw_usage(rng, slots, _day_factor(start, days))
    start_num = (start - EPOCH).days
    day_num = d + start_num

    # version per row: upgraded slots switch to the next version on their switch day
    upgraded = (slots["new_version"][s] >= 0) & (d >= slots["switch_day"][s])
    row_version = np.where(upgraded, slots["new_version"][s], slots["version"][s])
    row_user = slots["user"][s]
    row_product = slots["product"][s]
    row_coll = slots["collection"][s]
    row_source = slots["source"][s]
    is_cloud = np.array([p.cloud for p in PRODUCTS])[row_product]

    ctx = _people_columns(people, team_rows)
    p = int(np.searchsorted(s, premium_slots))  # rows are ordered by slot
    tables = _premium_tables(
        people, ctx, team_rows, slots, row_user[:p], row_product[:p], row_coll[:p], row_source[:p],
        row_version[:p], day_num[:p], is_cloud[:p], slots["minor"][s[:p]], s[:p], end,
    )
    flex_mask = row_source == FLEX
    contracts, contract_years = _contract_years(start, end)
    tf = _tokenflex_usage(
        rng, people, ctx, row_user[flex_mask], row_product[flex_mask], row_version[flex_mask], day_num[flex_mask],
        is_cloud[flex_mask], contract_years,
    )
    contracts_table = _contracts_table(contracts, contract_years, tf, end)
    enrichment = pa.table({
        "contract_number": [TOKENFLEX_CONTRACT_NUMBER] * len(ENRICHMENT_NAMES),
        "custom_field": [f"customField{i + 1}" for i in range(len(ENRICHMENT_NAMES))],
        "category_name": list(ENRICHMENT_NAMES),
    })
    teams_table = pa.table({
        "context_id": [t[0] for t in team_rows],
        "team_name": [t[1] for t in team_rows],
        "reporting_benefits": [",".join(REPORTING_BENEFITS)] * len(team_rows),
        "geo": [t[2] for t in team_rows],
        "country": [t[3] for t in team_rows],
        "city": [t[4] for t in team_rows],
    })
    return SandboxData(
        seed=seed, start_date=start, end_date=end, teams=teams_table, people=ctx["table"],
        usage=tables["usage"], users=tables["users"], subscriptions=tables["subscriptions"],
        tokenflex_usage=tf, contracts=contracts_table, enrichment=enrichment, metadata=_metadata(people, ctx),
    )


def _people_columns(people: dict, team_rows: list[tuple]) -> dict:
    n = len(people["persona"])
    team = people["team"]
    dept = people["dept"]
    tf_user_name = [nt if tf else em for nt, em, tf in zip(people["nt_id"], people["email"], people["tf_only"])]
    table = pa.table({
        "user_index": pa.array(np.arange(n, dtype=np.int64)),
        "persona": _take(PERSONA_NAMES, people["persona"]),
        "user_id": people["user_id"],
        "hashed_user_id": people["hashed"],
        "email": people["email"],
        "first_name": people["first"],
        "last_name": people["last"],
        "full_name": [f"{f} {surname}" for f, surname in zip(people["first"], people["last"])],
        "user_name": [e.split("@")[0] for e in people["email"]],
        "tokenflex_user_name": tf_user_name,
        "context_id": _take([t[0] for t in team_rows], team),
        "team_name": _take([t[1] for t in team_rows], team),
        "geo": _take([t[2] for t in team_rows], team),
        "country": _take([t[3] for t in team_rows], team),
        "city": _take([t[4] for t in team_rows], team),
        "department": _take([x[0] for x in DEPARTMENTS], dept),
        "cost_center": _take([x[1] for x in DEPARTMENTS], dept),
        "project": people["project"],
        "skill_level": _take(SKILL_LEVELS, people["skill"]),
        "tokenflex_only": pa.array(people["tf_only"]),
    })
    return {"table": table}


def _premium_tables(people, ctx, team_rows, slots, user, product, coll, source, version, day_num, is_cloud,
                    minor, slot_index, end: dt.date) -> dict[str, pa.Table]:
    pt = ctx["table"]
    via_collection = coll >= 0
    n_prod = len(PRODUCTS)
    # product line vocabulary: products first, then collections
    line_names = [p.name for p in PRODUCTS] + [c.name for c in COLLECTIONS]
    line_codes = [p.code for p in PRODUCTS] + [c.code for c in COLLECTIONS]
    line = np.where(via_collection, n_prod + coll, product)
    tokens_per_day = np.array([p.tokens_per_day for p in PRODUCTS], dtype=np.float64)
    tokens = np.where(source == SUS, np.nan, tokens_per_day[product])
    version_index = np.where(is_cloud, -1, version)
    minor_vocab = [f"{v}.{m}" for v in VERSIONS for m in MINOR_SUFFIXES]
    minor_index = np.where(is_cloud, -1, version * len(MINOR_SUFFIXES) + minor)
    month = _month_start(day_num)
    week = day_num - ((day_num + 4) % 7)  # Sunday-start weeks (1970-01-04 was a Sunday)
    team = people["team"][user]
    offering_vocab = [p.name for p in PRODUCTS] + [c.name for c in COLLECTIONS] + ["Flex", "Pay Per Use"]
    offering = np.where(source == FLEX, n_prod + len(COLLECTIONS), np.where(source == PPU, n_prod + len(COLLECTIONS) + 1, line))
    # subscription ids: per team x offering
    n_off = len(offering_vocab)
    sub_ids = [[_subscription_id(t, offering_vocab[o]) for o in range(n_off)] for t in range(len(team_rows))]
    sub_flat = [sid for row in sub_ids for sid in row]
    sub_index = team * n_off + offering
    agreement = [f"1100011{int(t[0]) % 100000:05d}" for t in team_rows]
    contract = np.where(source == FLEX, len(team_rows), team)
    user_pa = pa.array(user)

    def person(column):
        return lambda: pt[column].take(user_pa)

    usage = _materialize({
        "usage_date": _dates(day_num),
        "usage_month": _dates(month),
        "usage_week": _dates(week),
        "context_id": person("context_id"),
        "team_name": person("team_name"),
        "product_name": lambda: _take(line_names, line),
        "child_product_name": lambda: _take([p.name for p in PRODUCTS], product),
        "product_line_code": lambda: _take(line_codes, line),
        "feature_id": lambda: _take([p.code for p in PRODUCTS], product),
        "version": lambda: _take(VERSIONS, version_index),
        "minor_version": lambda: _take(minor_vocab, minor_index),
        "source": lambda: _take(SOURCES, source),
        "tokens": pa.array(tokens, mask=np.isnan(tokens)),
        "user_id": person("user_id"),
        "hashed_user_id": person("hashed_user_id"),
        "email": person("email"),
        "first_name": person("first_name"),
        "last_name": person("last_name"),
        "full_name": person("full_name"),
        "user_name": person("user_name"),
        "is_parent_product": pa.array(via_collection.astype(np.int64)),
        "is_product_versioned": pa.array((~is_cloud).astype(np.int64)),
        "reporting_entity_id": lambda: _take(sub_flat, sub_index),
        "contract_number": lambda: _take(agreement + [TOKENFLEX_CONTRACT_NUMBER], contract),
        "offering_name": lambda: _take(offering_vocab, offering),
        "user_index": user_pa,
    })
    # reportingEntityId is the subscription id: share the column instead of gathering it twice
    usage = usage.add_column(usage.num_columns - 1, "subscription_id", usage["reporting_entity_id"])

    # Seat assignments: every (user, sus offering) slot, including slots never used (inactive users).
    sus = (slots["source"] == SUS) & ~people["tf_only"][slots["user"]]
    su, so = slots["user"][sus], np.where(slots["collection"][sus] >= 0, n_prod + slots["collection"][sus], slots["product"][sus])
    pairs = np.unique(np.stack([su, so], axis=1), axis=0) if su.size else np.zeros((0, 2), np.int64)
    au, ao = pairs[:, 0], pairs[:, 1]
    end_num = (end - EPOCH).days
    # last use and days used (trailing 30 days) per (user, offering)
    key = user * n_off + offering
    sus_rows = source == SUS
    # distinct (key, day) pairs, sorted: the last pair of each key holds its last day of use
    all_days = _distinct(key[sus_rows] * 100000 + day_num[sus_rows])
    last_used = np.full(len(people["persona"]) * n_off, -1, np.int64)
    if all_days.size:
        keys_sorted = all_days // 100000
        is_last = np.concatenate((keys_sorted[1:] != keys_sorted[:-1], [True]))
        last_used[keys_sorted[is_last]] = all_days[is_last] % 100000
    # days used: distinct days (one offering may have several products on one day)
    recent = sus_rows & (day_num > end_num - 30)
    uniq = _distinct(key[recent] * 100000 + day_num[recent])
    days_used = np.bincount(uniq // 100000, minlength=len(last_used)) if uniq.size else np.zeros(len(last_used), np.int64)
    days_total = np.bincount(all_days // 100000, minlength=len(last_used)) if all_days.size else np.zeros(len(last_used), np.int64)
    window_days = max(1, int(day_num.max() - day_num.min() + 1)) if day_num.size else 1
    akey = au * n_off + ao
    last = last_used[akey]
    ateam = people["team"][au]
    assign_rng = np.random.default_rng(int(np.sum(akey)) % (2**32) + len(akey))
    assigned = np.minimum(end_num - 400 + assign_rng.integers(0, 380, len(au)), np.where(last >= 0, last, end_num))
    au_pa = pa.array(au)
    users_table = pa.table({
        "team_name": pt["team_name"].take(au_pa),
        "team_id": pt["context_id"].take(au_pa),
        "user_id": pt["user_id"].take(au_pa),
        "hashed_user_id": pt["hashed_user_id"].take(au_pa),
        "email": pt["email"].take(au_pa),
        "first_name": pt["first_name"].take(au_pa),
        "last_name": pt["last_name"].take(au_pa),
        "full_name": pt["full_name"].take(au_pa),
        "user_name": pt["user_name"].take(au_pa),
        "offering_name": _take(offering_vocab, ao),
        "product_name": _take(offering_vocab, ao),
        "product_line_code": _take(line_codes, ao),
        "subscription_id": _take(sub_flat, ateam * n_off + ao),
        "role": _take(("User", "Admin"), (au % 23 == 0).astype(int)),
        "account_status": _take(("Active", "Pending"), (au % 31 == 5).astype(int)),
        "access_method": _take(("Named User",), np.zeros(len(au), int)),
        "plan": _take(("Premium",), np.zeros(len(au), int)),
        "term": _take(("Annual", "3-Year"), (ao % 3 == 0).astype(int)),
        "seat_assignment": _take(("Assigned",), np.zeros(len(au), int)),
        "assigned_date": _dates(assigned),
        "last_accessed": pa.array(last.astype(np.int32), type=pa.date32(), mask=last < 0),
        "days_inactive": pa.array(np.where(last >= 0, end_num - last, -1), mask=last < 0),
        "days_used": pa.array(days_used[akey]),
        "monthly_average": pa.array(np.round(days_total[akey] * 30.0 / window_days, 2)),
        "user_index": au_pa,
    })

    # Subscriptions: one per team x assigned offering; most have spare seats, some exactly full.
    tk = ateam * n_off + ao
    uk, counts = np.unique(tk, return_counts=True)
    st, so2 = uk // n_off, uk % n_off
    spare = np.where(uk % 4 == 0, 0, (uk % 5) + 1)
    # plus an offering per team that nobody is assigned to (unassigned seats)
    extra_prod = _PRODUCT_INDEX["RVTLTS"]
    extra = [(t, extra_prod) for t in range(len(team_rows)) if not np.any((st == t) & (so2 == extra_prod))]
    st = np.concatenate([st, np.array([e[0] for e in extra], np.int64)])
    so2 = np.concatenate([so2, np.array([e[1] for e in extra], np.int64)])
    qty = np.concatenate([counts + spare, np.full(len(extra), 3)])
    sub_start = end_num - 300 + (st * 37 + so2 * 11) % 200
    sub_end = sub_start + np.where(so2 % 3 == 0, 3 * 365, 365)
    subscriptions = pa.table({
        "team_name": _take([t[1] for t in team_rows], st),
        "team_id": _take([t[0] for t in team_rows], st),
        "subscription_id": _take(sub_flat, st * n_off + so2),
        "offering_name": _take(offering_vocab, so2),
        "product_line_code": _take(line_codes, so2),
        "plan": _take(("Premium",), np.zeros(len(st), int)),
        "term": _take(("Annual", "3-Year"), (so2 % 3 == 0).astype(int)),
        "usage_type": _take(("Commercial",), np.zeros(len(st), int)),
        "access_method": _take(("Named User",), np.zeros(len(st), int)),
        "seat_quantity": pa.array(qty.astype(np.int64)),
        "subscription_status": _take(("Active",), np.zeros(len(st), int)),
        "start_date": _dates(sub_start),
        "end_date": _dates(sub_end),
        "autorenew_date": _dates(sub_end - 30),
        "contract_number": _take(agreement, st),
        "contract_manager_email": _take([f"it.{t[1].split()[0].lower()}@acme-design.example" for t in team_rows], st),
        "reseller_name": _take(("Sandbox Reseller Ltd",), np.zeros(len(st), int)),
        "reseller_email": _take(("orders@reseller.example",), np.zeros(len(st), int)),
    })
    return {"usage": usage, "users": users_table, "subscriptions": subscriptions}


def _contract_years(start: dt.date, end: dt.date):
    """A three-year contract whose second year starts mid-window, so the window spans two years."""
    mid = start + (end - start) / 2
    first = dt.date(mid.year - 1, mid.month, 1)
    years = []
    k = 1
    while True:
        y0 = dt.date(first.year + k - 1, first.month, 1)
        y1 = dt.date(first.year + k, first.month, 1) - dt.timedelta(days=1)
        years.append((k, y0, y1))
        if y1 >= end and k >= 3:
            break
        k += 1
    contract = {
        "contract_number": TOKENFLEX_CONTRACT_NUMBER,
        "contract_name": TOKENFLEX_CONTRACT_NAME,
        "contract_start_date": years[0][1],
        "contract_end_date": years[-1][2],
        "is_active": years[-1][2] >= end,
    }
    return contract, years


def _tokenflex_usage(rng, people, ctx, user, product, version, day_num, is_cloud, contract_years) -> pa.Table:
    """One CHARGED session per flex usage day (plus some FREE re-launches the same day)."""
    pt = ctx["table"]
    n = len(user)
    free = rng.random(n) < 0.2  # a second, free session the same day
    idx = np.concatenate([np.arange(n), np.nonzero(free)[0]])
    charged = np.concatenate([np.ones(n, bool), np.zeros(int(free.sum()), bool)])
    m = len(idx)
    minutes = rng.integers(10, 480, m).astype(np.float64)
    start_minute = rng.integers(7 * 60, 12 * 60, m) + np.where(charged, 0, 300)
    item_ids = rng.integers(0, 2**47, m)
    # sort sessions by day, then start time, before building any column (one gather, not two)
    order = np.lexsort((item_ids, start_minute, day_num[idx]))
    idx, charged, minutes, start_minute, item_ids = idx[order], charged[order], minutes[order], start_minute[order], item_ids[order]
    user, product, version, day_num, is_cloud = user[idx], product[idx], version[idx], day_num[idx], is_cloud[idx]
    tokens_per_day = np.array([p.tokens_per_day for p in PRODUCTS], dtype=np.float64)
    tokens = np.where(charged, tokens_per_day[product], 0.0)
    start_us = (day_num.astype(np.int64) * 86400 + start_minute * 60) * 1_000_000
    end_us = start_us + (minutes * 60 * 1_000_000).astype(np.int64)
    year_starts = np.array([(y[1] - EPOCH).days for y in contract_years])
    contract_year = np.searchsorted(year_starts, day_num, side="right")
    user_pa = pa.array(user)
    team = people["team"][user]
    codes = [p.code for p in PRODUCTS]
    feature_vocab = [f"{c}_{v}_0F" for c in codes for v in VERSIONS]
    feature = np.where(is_cloud, -1, product * len(VERSIONS) + version)
    machine = user % 997
    first_project = pa.array([p.split(";")[0] for p in people["project"]])

    def person(column):
        return lambda: pt[column].take(user_pa)

    table = {
        "contract_number": lambda: _take((TOKENFLEX_CONTRACT_NUMBER,), np.zeros(m, np.int64)),
        "usage_date": _dates(day_num),
        "usage_month": _dates(_month_start(day_num)),
        "contract_year": pa.array(contract_year.astype(np.int64)),
        "usage_category": lambda: _take(("DESKTOP_PRODUCT", "CLOUD_PRODUCT"), is_cloud.astype(int)),
        "charge_category": lambda: _take(("FREE", "CHARGED"), charged.astype(int)),
        "product_line_code": lambda: _take(codes, product),
        "product_name": lambda: _take([p.name for p in PRODUCTS], product),
        "product_version": lambda: _take(VERSIONS, np.where(is_cloud, -1, version)),
        "product_feature_code": lambda: _take(feature_vocab, feature),
        "user_name": person("tokenflex_user_name"),
        "machine_name": lambda: _take([f"WS-{k:04d}" for k in range(997)], machine),
        "license_server_name": lambda: _take(("LICSRV-NY", "LICSRV-EU", "LICSRV-AP", "LICSRV-DE"), team % 4),
        "usage_type": lambda: _take(("Normal", "Borrowed"), (machine % 17 == 0).astype(int)),
        "charged_item_id": lambda: _hex_ids(item_ids),
        "session_start_date": pa.array(start_us, type=pa.timestamp("us", tz="UTC")),
        "session_end_date": pa.array(end_us, type=pa.timestamp("us", tz="UTC")),
        "hub_name": lambda: _take(("ACME Hub",), np.where(is_cloud, 0, -1)),
        "project_name": lambda: first_project.take(user_pa),
        "job_status": pa.nulls(m, pa.string()),
        "reason_type": pa.nulls(m, pa.string()),
        "token_pool": pa.nulls(m, pa.string()),
        "tokens_consumed": pa.array(tokens),
        "usage_minutes": pa.array(minutes),
        "usage_hours": pa.array(np.round(minutes / 60.0, 4)),
        "use_count": pa.array(np.ones(m, np.int64)),
        "license_server_time_zone_offset": lambda: _take(("-5:00", "0:00", "+8:00", "+1:00"), team % 4),
        "user_index": user_pa,
    }
    # customField1..10, in the order of ENRICHMENT_NAMES
    sources = {1: "geo", 2: "department", 3: "cost_center", 4: "country", 5: "city", 7: "skill_level", 8: "team_name"}
    for k in range(1, 11):
        if k in sources:
            table[f"custom_field{k}"] = person(sources[k])
        elif k == 6:
            table[f"custom_field{k}"] = lambda: first_project.take(user_pa)
        elif k == 9:
            table[f"custom_field{k}"] = lambda: _take(("Employee", "Contractor"), (user % 9 == 0).astype(int))
        else:
            table[f"custom_field{k}"] = lambda: _take(("NY1", "LN2", "SG3", "MU4"), team % 4)
    return _materialize(table)


def _contracts_table(contract: dict, years, tf: pa.Table, end: dt.date) -> pa.Table:
    """Contract x year rows; consumed tokens = the sum of that year's Token Flex usage rows."""
    rows = []
    by_year = tf.group_by("contract_year").aggregate([("tokens_consumed", "sum")]).to_pylist()
    consumed = {r["contract_year"]: r["tokens_consumed_sum"] for r in by_year}
    # provision 25% above the year's use (a year without use yet gets the previous year's amount)
    provisioned = []
    for k, _, _ in years:
        used = consumed.get(k, 0.0)
        prov = float(int(used * 1.25 // 1000 + 1) * 1000) if used else (provisioned[-1] if provisioned else 1000.0)
        provisioned.append(prov)
    provisioned_total = float(sum(provisioned))
    used_before = 0.0
    for (k, y0, y1), prov in zip(years, provisioned):
        used = float(consumed.get(k, 0.0))
        rows.append({
            **contract,
            "multiyear_provisioned_tokens": provisioned_total,
            "contract_year": k,
            "year_start_date": y0,
            "year_end_date": y1,
            "provisioned_tokens": prov,
            "consumed_tokens": used,
            "remaining_tokens": prov - used,
            "multiyear_tokens_at_start": provisioned_total - used_before,
            "multiyear_consumed_tokens": used_before + used,
        })
        used_before += used
    return pa.Table.from_pylist(rows)


def _metadata(people: dict, ctx: dict) -> pa.Table:
    """The customer's user file: most users (not all), keyed by email."""
    pt = ctx["table"]
    n = pt.num_rows
    keep = np.array([int(h[:4], 16) % 10 != 0 for h in people["hashed"]]) & ~people["tf_only"]
    idx = pa.array(np.nonzero(keep)[0])
    t = pt.take(idx)
    return pa.table({
        "email": t["email"],
        "full_name": t["full_name"],
        "geo": t["geo"],
        "country": t["country"],
        "city": t["city"],
        "department": t["department"],
        "cost_center": t["cost_center"],
        "project": t["project"],
        "skill_level": t["skill_level"],
    }) if n else pa.table({})
