"""Which dates an API extraction covers: incremental ranges from the state, and windows.

Each (dataset, team/contract) remembers the last day it was extracted up to. The next run
starts ``lag_days`` before it (late-arriving usage is picked up again and replaced), or at
``--since`` when given, or ``DEFAULT_WINDOW_DAYS`` before ``--until`` on a first run.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from .errors import InputError

DEFAULT_WINDOW_DAYS = 365
DEFAULT_LAG_DAYS = 3


def utc_today() -> date:
    return datetime.now(UTC).date()


def parse_day(value: str | date | None, what: str) -> date | None:
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip()[:10])
    except ValueError:
        raise InputError(f"{what}: {value!r} is not a date (expected YYYY-MM-DD)") from None


def extracted_to(state: dict[str, Any], dataset: str, key: str) -> date | None:
    entry = state.get("datasets", {}).get(dataset, {}).get(str(key))
    if isinstance(entry, dict) and entry.get("extracted_to"):
        return parse_day(entry["extracted_to"], f"state {dataset}/{key}")
    return None


def plan_range(
    state: dict[str, Any],
    dataset: str,
    key: str,
    since: date | None,
    until: date | None,
    lag_days: int = DEFAULT_LAG_DAYS,
    default_days: int = DEFAULT_WINDOW_DAYS,
) -> tuple[date, date]:
    """(first day, last day), both included."""
    if lag_days < 0:
        raise InputError(f"--lag-days must be >= 0, got {lag_days}")
    end = until or utc_today()
    if since is not None:
        start = since
    else:
        last = extracted_to(state, dataset, key)
        start = (last - timedelta(days=lag_days)) if last else end - timedelta(days=default_days - 1)
        start = min(start, end)
    if start > end:
        raise InputError(f"--since {start} is after --until {end}")
    return start, end


def state_entry(previous: dict[str, Any] | None, start: date, end: date, extracted_at: str,
                **extra: Any) -> dict[str, Any]:
    """The new state after extracting [start, end]; never moves ``extracted_to`` backwards.
    ``extra``: what the API said about freshness (e.g. Token Flex's ``last_process_date``)."""
    prev_to = parse_day((previous or {}).get("extracted_to"), "state")
    return {
        "extracted_to": max(end, prev_to).isoformat() if prev_to else end.isoformat(),
        "last_range": [start.isoformat(), end.isoformat()],
        "extracted_at": extracted_at,
        **extra,
    }


def month_windows(start: date, end: date) -> list[tuple[date, date]]:
    """[start, end] cut at month boundaries."""
    out = []
    cur = start
    while cur <= end:
        nxt = date(cur.year + (cur.month == 12), cur.month % 12 + 1, 1)
        out.append((cur, min(end, nxt - timedelta(days=1))))
        cur = nxt
    return out


def day_windows(start: date, end: date, max_days: int) -> list[tuple[date, date]]:
    """[start, end] cut into pieces of at most ``max_days`` days (API range limits)."""
    out = []
    cur = start
    while cur <= end:
        last = min(end, cur + timedelta(days=max_days - 1))
        out.append((cur, last))
        cur = last + timedelta(days=1)
    return out
