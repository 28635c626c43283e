"""The Premium reports (Subscriptions, Users, Usage, usage summaries) as tables, in either
column naming: "old" (access_method, day_used, email, ...) or "2026" (display headers such as
"Team", "Email", "Days Used"). Shared by the API exports and the hand-download files.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc

from .data import SandboxData

MASK = "*****"
PERSONAL_SOURCE_COLUMNS = {"email", "first_name", "last_name", "user_id", "full_name", "user_name"}

# (column in the generated table, old name, 2026 display name)
USAGE_COLUMNS = [
    ("team_name", "team_alias", "Team"),
    ("context_id", "team_id", "Team ID"),
    ("email", "email", "Email"),
    ("first_name", "first_name", "First Name"),
    ("last_name", "last_name", "Last Name"),
    ("user_id", "autodesk_id", "User ID"),
    ("hashed_user_id", "hashed_autodesk_id", "Hashed User ID"),
    ("child_product_name", "product_name", "Product"),
    ("offering_name", "offering_name", "Offering"),
    ("version", "version", "Version"),
    ("usage_date", "day_used", "Date"),
    ("tokens", "tokens_used", "Tokens Used"),
    ("source", "usage_type", "Usage Type"),
    ("subscription_id", "subscription_id", "Subscription ID"),
    ("contract_number", "contract_number", "Contract Number"),
    ("access_method", "access_method", "Access Method"),
    ("access_option", "access_option", "Access Option"),
    ("plan", "plan", "Plan"),
    ("term", "term", "Term"),
    ("role", "role", "Role"),
    ("account_status", "account_status", "Account Status"),
    ("seat_quantity", "seat_quantity", "Seat Quantity"),
    ("subscription_status", "subscription_status", "Subscription Status"),
    ("start_date", "start_date", "Start Date"),
    ("end_date", "end_date", "End Date"),
    ("autorenew_date", "autorenew_date", "Autorenew Date"),
    ("contract_manager_email", "contract_manager_email", "Contract Manager Email"),
    ("reseller_name", "reseller_name", "Reseller Name"),
    ("reseller_email", "reseller_email", "Reseller Email"),
]
USERS_COLUMNS = [
    ("team_name", "team_alias", "Team"),
    ("team_id", "team_id", "Team ID"),
    ("email", "email", "Email"),
    ("first_name", "first_name", "First Name"),
    ("last_name", "last_name", "Last Name"),
    ("user_id", "autodesk_id", "User ID"),
    ("hashed_user_id", "hashed_autodesk_id", "Hashed User ID"),
    ("offering_name", "offering_name", "Offering"),
    ("product_name", "product_name", "Product"),
    ("subscription_id", "subscription_id", "Subscription ID"),
    ("role", "role", "Role"),
    ("account_status", "account_status", "Account Status"),
    ("access_method", "access_method", "Access Method"),
    ("plan", "plan", "Plan"),
    ("term", "term", "Term"),
]
USERS_2026_EXTRA = [
    ("seat_assignment", "seat_assignment", "Seat Assignment"),
    ("assigned_date", "assigned_date", "Assigned Date"),
    ("last_accessed", "last_accessed", "Last Accessed"),
    ("days_inactive", "days_inactive", "Days Inactive"),
    ("days_used", "days_used", "Days Used"),
    ("monthly_average", "monthly_average", "Monthly Average"),
    ("team_name", "group", "Group"),
]
SUBSCRIPTIONS_COLUMNS = [
    ("team_name", "team_alias", "Team"),
    ("team_id", "team_id", "Team ID"),
    ("subscription_id", "subscription_id", "Subscription ID"),
    ("offering_name", "offering_name", "Offering"),
    ("plan", "plan", "Plan"),
    ("term", "term", "Term"),
    ("usage_type", "usage_type", "Usage Type"),
    ("access_method", "access_method", "Access Method"),
    ("seat_quantity", "seat_quantity", "Seat Quantity"),
    ("subscription_status", "subscription_status", "Subscription Status"),
    ("start_date", "start_date", "Start Date"),
    ("end_date", "end_date", "End Date"),
    ("autorenew_date", "autorenew_date", "Autorenew Date"),
    ("contract_number", "contract_number", "Contract Number"),
    ("contract_manager_email", "contract_manager_email", "Contract Manager Email"),
    ("reseller_name", "reseller_name", "Reseller Name"),
    ("reseller_email", "reseller_email", "Reseller Email"),
]


def _select(table: pa.Table, columns, naming: str, hide_personal: bool) -> pa.Table:
    out = {}
    for source, old, new in columns:
        col = table[source]
        if hide_personal and source in PERSONAL_SOURCE_COLUMNS:
            col = pa.array([MASK] * table.num_rows, pa.string())
        out[old if naming == "old" else new] = col
    return pa.table(out)


def _in(table: pa.Table, column: str, values) -> pa.Table:
    if values is None:
        return table
    return table.filter(pc.is_in(table[column], value_set=pa.array(list(values), table[column].type)))


def usage_rows(data: SandboxData, *, start: dt.date | None = None, end: dt.date | None = None,
               team_ids=None, filters: dict | None = None) -> pa.Table:
    """Usage rows (generated column names) filtered by date range, teams and export filters."""
    t = data.usage
    if start is not None:
        t = t.filter(pc.greater_equal(t["usage_date"], pa.scalar(start, pa.date32())))
    if end is not None:
        t = t.filter(pc.less_equal(t["usage_date"], pa.scalar(end, pa.date32())))
    t = _in(t, "context_id", team_ids)
    filters = filters or {}
    t = _in(t, "context_id", filters.get("groupId"))
    t = _in(t, "product_line_code", filters.get("productLineCode"))
    t = _in(t, "source", filters.get("source"))
    t = _in(t, "user_id", filters.get("userId"))
    t = _in(t, "version", filters.get("versionId"))
    return t


def usage_report(data: SandboxData, naming: str = "old", *, hide_personal: bool = False, **kw) -> pa.Table:
    """Usage rows joined with their subscription and seat (as Autodesk Account's usage export)."""
    import duckdb

    con = duckdb.connect()
    con.register("u", usage_rows(data, **kw))
    con.register("s", data.subscriptions)
    con.register("a", data.users)
    t = con.sql("""
        SELECT u.*, s.plan, s.term, s.seat_quantity, s.subscription_status, s.start_date, s.end_date,
               s.autorenew_date, s.contract_manager_email, s.reseller_name, s.reseller_email,
               CASE u.source WHEN 'sus' THEN 'Named User' WHEN 'flex' THEN 'Flex' ELSE 'Pay Per Use' END AS access_method,
               CASE u.source WHEN 'sus' THEN 'Single User' WHEN 'flex' THEN 'Token Flex' ELSE 'Pay Per Use' END
                 AS access_option,
               coalesce(a.role, 'User') AS role, coalesce(a.account_status, 'Active') AS account_status
        FROM u LEFT JOIN s USING (subscription_id)
        LEFT JOIN a ON a.user_index = u.user_index AND a.offering_name = u.offering_name
        ORDER BY u.usage_date, u.hashed_user_id, u.child_product_name, u.version, u.source
    """).to_arrow_table()
    con.close()
    return _select(t, USAGE_COLUMNS, naming, hide_personal)


def users_report(data: SandboxData, naming: str = "old", *, hide_personal: bool = False, team_ids=None) -> pa.Table:
    t = _in(data.users, "team_id", team_ids)
    cols = USERS_COLUMNS + (USERS_2026_EXTRA if naming != "old" else [c for c in USERS_2026_EXTRA if c[1] != "group"])
    return _select(t, cols, naming, hide_personal)


def subscriptions_report(data: SandboxData, naming: str = "old", *, team_ids=None) -> pa.Table:
    return _select(_in(data.subscriptions, "team_id", team_ids), SUBSCRIPTIONS_COLUMNS, naming, False)


def usage_summary_report(data: SandboxData, kind: str, *, hide_personal: bool = False, **kw) -> pa.Table:
    """USAGE_REPORT_BY_PRODUCT (team x product x source) or USAGE_REPORT_BY_USER (user x product)."""
    import duckdb

    t = usage_rows(data, **{k: v for k, v in kw.items() if k != "assigned"})
    con = duckdb.connect()
    con.register("u", t)
    if kind == "USAGE_REPORT_BY_USER":
        email = f"'{MASK}'" if hide_personal else "email"
        sql = f"""SELECT team_name AS team_alias, {email} AS email, hashed_user_id AS hashed_autodesk_id,
                  child_product_name AS product_name, source AS usage_type,
                  COUNT(DISTINCT usage_date) AS days_used, COALESCE(SUM(tokens), 0) AS tokens_used,
                  MAX(usage_date) AS last_accessed
                  FROM u GROUP BY ALL ORDER BY ALL"""
    else:
        sql = """SELECT team_name AS team_alias, child_product_name AS product_name, source AS usage_type,
                 COUNT(DISTINCT hashed_user_id) AS users, COUNT(*) AS days_used,
                 COALESCE(SUM(tokens), 0) AS tokens_used
                 FROM u GROUP BY ALL ORDER BY ALL"""
    result = con.sql(sql).to_arrow_table()
    con.close()
    return result
