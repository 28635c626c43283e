"""Three headline findings an admin acts on, computed from the marts (shown by the demo and the report)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import duckdb

from .warehouse import first_line, mart_ref

log = logging.getLogger("aps_usage")


FINDINGS: tuple[tuple[str, Callable[[tuple[Any, ...]], str]], ...] = (
    (f"SELECT count(*) FILTER (WHERE is_assigned), count(*), max(inactive_days) FROM {mart_ref('inactive_users')}",
     lambda r: f"{r[0]} users hold a seat but used nothing in the last {r[2]} days "
               f"({r[1]} inactive users in all): seats to reclaim."),
    (f"SELECT count(DISTINCT user_key), coalesce(sum(saving_yearly), 0) FROM {mart_ref('flex_candidates')} "
     "WHERE saving_yearly > 0",
     lambda r: f"{r[0]} light subscription users would cost {r[1]:,.0f} less per year on Flex."),
    (f"SELECT count(DISTINCT user_key), coalesce(sum(excess_cost), 0) FROM {mart_ref('flex_overuse')}",
     lambda r: f"{r[0]} Flex users paid {r[1]:,.0f} more in tokens than subscriptions would have cost."),
)


def headline_findings(con: duckdb.DuckDBPyConnection) -> list[str]:
    """One sentence per finding; a finding whose mart or column is missing is left out (with a warning)."""
    found = []
    for sql, sentence in FINDINGS:
        try:
            row = con.execute(sql).fetchone()
        except duckdb.Error as err:
            log.warning("finding skipped: %s", first_line(err))
            continue
        found.append(sentence(row))
    return found
