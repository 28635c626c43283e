"""The marts end to end: hand-made files -> import -> dbt build on DuckDB -> every mart's rows.

The files are in tests/dbt/fixtures/marts/ (its README says what each holds). Every expected
row below was worked out by hand from those files, with the reasoning next to it; none is
read back from the warehouse. As-of date: the latest usage date, 2026-03-31 (gina's AutoCAD).

Identities: alice A1, bob B1, carol C1, dave D1 (seat, never used), erin E1 (Premium id; her
Token Flex user name is her email, so her Token Flex rows are E1 too), frank01 (Token Flex NT
id only), gina G1. dave and frank01 are not in the metadata file.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from click.testing import CliRunner

from extractor.cli import cli
from extractor.dataset import DataDir, Replace

os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "False")

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures" / "marts"
IMPORT_FILES = [
    "usage_export_a.csv",
    "usage_export_b.csv",
    "users_report.csv",
    "subscriptions_report.csv",
    "tokenflex_export.csv",
    "user_metadata.csv",
]
AS_OF = dt.date(2026, 3, 31)
MARTS = [
    "inactive_users", "flex_candidates", "low_usage_users", "flex_overuse", "flex_multi_product_daily",
    "single_product_collection_users", "collection_candidates", "license_utilization",
    "license_utilization_by_org", "project_version_drift", "usage_by_cost_center",
    "flex_usage_by_cost_center", "unmapped_users", "token_balance",
]


def d(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


# ----------------------------------------------------------------------------- setup


def import_files(data_dir: Path, paths: list[Path]) -> None:
    """Through the real import path: `aps-usage import` (kind detected from the headers)."""
    result = CliRunner().invoke(cli, ["--quiet", "--data-dir", str(data_dir), "import", *map(str, paths)], obj=None)
    assert result.exit_code == 0, f"aps-usage import failed ({result.exit_code}): {result.output}"


def write_contract_snapshot(data_dir: Path) -> None:
    """The Token Flex contract as `aps-usage extract tokenflex` stores it (no file kind for it)."""
    dd = DataDir(data_dir)
    row = {
        "contract_number": "110001", "contract_name": "ACME Flex",
        "contract_start_date": d("2025-06-01"), "contract_end_date": d("2028-05-31"), "is_active": True,
        "multiyear_provisioned_tokens": 3000.0, "contract_year": 1,
        "year_start_date": d("2025-06-01"), "year_end_date": d("2026-05-31"),
        "provisioned_tokens": 1000.0, "consumed_tokens": 100.0, "remaining_tokens": 900.0,
        "multiyear_tokens_at_start": 3000.0, "multiyear_consumed_tokens": 100.0,
    }
    with dd.lock("test contracts"), dd.transaction() as tx:
        tx.write("tokenflex_contracts", pa.Table.from_pylist([row]), source="tokenflex/v1/contract/110001",
                 replace=Replace(match={"contract_number": "110001"}))


def run_build_command(data_dir: Path) -> dict:
    """`aps-usage build` (dbt build: seeds, models, tests, unit tests) on the data dir; returns
    dbt's run_results.json (written under <data-dir>/dbt/target/)."""
    result = CliRunner().invoke(cli, ["--quiet", "--data-dir", str(data_dir), "build"], obj=None)
    assert result.exit_code == 0, f"aps-usage build failed ({result.exit_code}): {result.output}"
    return json.loads((data_dir / "dbt" / "target" / "run_results.json").read_text())


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("marts") / "data"
    import_files(data_dir, [FIXTURES / name for name in IMPORT_FILES])
    write_contract_snapshot(data_dir)
    run_results = run_build_command(data_dir)
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
    yield {"con": con, "results": run_results["results"], "data_dir": data_dir}
    con.close()


def rows(build, sql: str) -> list[dict]:
    cur = build["con"].cursor()
    try:
        cur.execute(sql)
        names = [c[0] for c in cur.description]
        return [dict(zip(names, values)) for values in cur.fetchall()]
    finally:
        cur.close()


def mart(build, name: str, columns: str, order: str) -> list[tuple]:
    return [tuple(r.values()) for r in rows(build, f"select {columns} from marts.{name} order by {order}")]


# ----------------------------------------------------------------------------- the dbt run itself


def test_every_mart_unit_test_ran_and_passed(build):
    unit = {
        r["unique_id"].split(".")[-1]: r["status"]
        for r in build["results"]
        if r["unique_id"].startswith("unit_test.aps_usage.") and r["unique_id"].split(".")[2] in MARTS
    }
    # at least one unit test per mart, all passed
    tested = {name for name in MARTS if any(test.startswith(name) for test in unit)}
    assert tested == set(MARTS), f"marts without unit tests: {set(MARTS) - tested}"
    assert all(status == "pass" for status in unit.values()), unit


def test_every_mart_carries_as_of_date_and_the_org_columns(build):
    org = {"team_name", "department", "cost_center", "geo", "country", "city"}
    for name in MARTS:
        cols = {r["column_name"] for r in rows(
            build,
            f"select column_name from information_schema.columns where table_schema = 'marts' and table_name = '{name}'",
        )}
        assert "as_of_date" in cols, name
        # seats, projects and contracts are not per user; unmapped users have no org by definition
        if name not in ("license_utilization", "license_utilization_by_org", "project_version_drift", "token_balance",
                        "unmapped_users"):
            assert org <= cols, (name, org - cols)
        dates = rows(build, f"select distinct as_of_date from marts.{name}")
        assert dates in ([], [{"as_of_date": AS_OF}]), (name, dates)


def test_every_mart_and_column_is_documented(build):
    manifest = json.loads((build["data_dir"] / "dbt" / "target" / "manifest.json").read_text())
    for name in MARTS:
        node = manifest["nodes"][f"model.aps_usage.{name}"]
        for part in ("Grain", "Rule", "Vars"):
            assert f"**{part}:**" in node["description"], (name, part)
        documented = {c for c, v in node["columns"].items() if v.get("description")}
        actual = {r["column_name"] for r in rows(
            build,
            f"select column_name from information_schema.columns where table_schema = 'marts' and table_name = '{name}'",
        )}
        assert actual == documented, (name, "undocumented", actual - documented, "not in the table", documented - actual)


# ----------------------------------------------------------------------------- the marts


def test_inactive_users(build):
    # threshold: last use <= 2026-03-31 - 30 = 2026-03-01.
    # carol: last use 03-01 (exactly 30 days) -> inactive; dave: seat, never used -> NULL;
    # frank01: last use 02-27 (32 days), no seat; alice 03-04, bob 03-12, erin 03-09, gina 03-31 active.
    assert mart(build, "inactive_users",
                "user_key, last_used_date, days_since_last_use, is_assigned, offerings_assigned, cost_center",
                "user_key") == [
        ("C1", d("2026-03-01"), 30, True, "Revit", "CC200"),
        ("D1", None, None, True, "AutoCAD", "Unmapped"),
        ("frank01", d("2026-02-27"), 32, False, None, "Unmapped"),
    ]


def test_flex_candidates(build):
    # subscription use 2026-01-01..03-31 (90 days); usage_days*30/90 <= 7 means <= 21 days: all qualify.
    # Flex estimate for 1 day: 1*365/90 days a year x tokens/day x 3.0.
    got = mart(build, "flex_candidates",
               "user_key, product_name, usage_days, avg_days_per_month, flex_cost_yearly_estimate, "
               "subscription_price_yearly, saving_yearly",
               "user_key, product_name")
    expected = [
        ("A1", "Revit", 3, 1.0, 3 * 365 / 90 * 10 * 3.0, 2990.0),      # alice: 03-02..03-04 (03-04 in both files: once)
        ("B1", "AutoCAD", 1, 1 / 3, 1 * 365 / 90 * 7 * 3.0, 2030.0),
        ("B1", "Civil 3D", 6, 2.0, 6 * 365 / 90 * 10 * 3.0, 2990.0),   # 03-07..03-12
        ("B1", "Revit", 1, 1 / 3, 1 * 365 / 90 * 10 * 3.0, 2990.0),
        ("C1", "Revit", 1, 1 / 3, 121.666666, 2990.0),                  # carol: 365/90*10*3 = 121.67
        ("G1", "AutoCAD", 1, 1 / 3, 1 * 365 / 90 * 7 * 3.0, 2030.0),
    ]
    assert [g[:3] for g in got] == [e[:3] for e in expected]
    for g, e in zip(got, expected):
        assert g[3] == pytest.approx(e[3]) and g[4] == pytest.approx(e[4], abs=0.01) and g[5] == e[5]
        assert g[6] == pytest.approx(e[5] - e[4], abs=0.01)
    carol = [g for g in got if g[0] == "C1"][0]
    assert carol[6] == pytest.approx(2868.33, abs=0.01)


def test_low_usage_users(build):
    # per user x product x month, 1..7 days; erin's Revit has 8 days in March (the Premium Flex
    # row of 03-02 is the same usage as Token Flex's) -> not listed; her AutoCAD has 6.
    assert mart(build, "low_usage_users", "user_key, product_name, usage_month, usage_days, licensing, tokens",
                "user_key, product_name, usage_month") == [
        ("A1", "Revit", d("2026-03-01"), 3, "subscription", 0.0),
        ("B1", "AutoCAD", d("2026-03-01"), 1, "subscription", 0.0),
        ("B1", "Civil 3D", d("2026-03-01"), 6, "subscription", 0.0),
        ("B1", "Revit", d("2026-03-01"), 1, "subscription", 0.0),
        ("C1", "Revit", d("2026-03-01"), 1, "subscription", 0.0),
        ("E1", "AutoCAD", d("2026-03-01"), 6, "flex", 42.0),
        ("G1", "AutoCAD", d("2026-03-01"), 1, "subscription", 0.0),
        ("frank01", "Maya", d("2026-02-01"), 1, "flex", 10.0),
    ]


def test_flex_overuse(build):
    # erin Revit March: 8 Flex days > 7; tokens 8 x 12 = 96 (Premium's 12 on 03-02 is the same
    # usage: the larger of the two, not the sum); cost 288; a month of Revit 2990/12 = 249.17.
    got = rows(build, "select * from marts.flex_overuse")
    assert len(got) == 1
    row = got[0]
    assert (row["user_key"], row["product_name"], row["usage_month"], row["usage_days"], row["tokens"]) == (
        "E1", "Revit", d("2026-03-01"), 8, 96.0)
    assert row["token_cost"] == pytest.approx(288.0)
    assert row["subscription_price_monthly"] == pytest.approx(249.1667, abs=1e-3)
    assert row["break_even_days"] == pytest.approx(249.1667 / 30, abs=1e-3)
    assert row["excess_cost"] == pytest.approx(38.83, abs=0.01)
    assert (row["department"], row["cost_center"]) == ("Viz", "CC300")  # ' Erin@Acme.com ' in the metadata


def test_flex_multi_product_daily(build):
    # erin: Revit + AutoCAD on Flex on 03-02..03-07 = 6 days > 5; Flex days 8; tokens 96 + 42.
    assert mart(build, "flex_multi_product_daily",
                "user_key, usage_month, multi_product_days, flex_usage_days, distinct_products, tokens",
                "user_key") == [("E1", d("2026-03-01"), 6, 8, 2, 138.0)]


def test_single_product_collection_users(build):
    # alice: only Revit of the AEC Collection (named by its long alias in the files), 3 days <= 5
    # -> both reasons; bob: 3 products on 8 days -> not listed. Saving 3675 - 2990.
    assert mart(build, "single_product_collection_users",
                "user_key, collection_name, reason, distinct_products, usage_days, product_name, saving_yearly",
                "user_key") == [
        ("A1", "AEC Collection", "single_product_and_infrequent", 1, 3, "Revit", 685.0),
    ]


def test_collection_candidates(build):
    # erin uses Revit and AutoCAD on Flex outside any collection; both are in the AEC Collection
    # (PDM holds only AutoCAD of them). Yearly: (96 + 42) tokens x 365/90 x 3.0 = 1679 vs 3675.
    got = mart(build, "collection_candidates",
               "user_key, collection_name, products_used, distinct_products, current_cost_yearly, "
               "collection_price_yearly, saving_yearly", "user_key, collection_name")
    assert [g[:4] for g in got] == [("E1", "AEC Collection", "AutoCAD; Revit", 2)]
    assert got[0][4] == pytest.approx(1679.0)
    assert got[0][5:] == (3675.0, pytest.approx(-1996.0))


def test_license_utilization(build):
    # in use = subscription use in 03-02..03-31. AEC: alice + bob; Revit: carol's 03-01 is 30
    # days back (not in use); AutoCAD: dave never used it (gina did, without a seat).
    # The expired 5 AutoCAD seats do not count.
    assert mart(build, "license_utilization",
                "team_name, offering_name, is_collection, seats_purchased, seats_assigned, seats_in_use, "
                "seats_unassigned, utilization_pct", "offering_name") == [
        ("Design Team", "AEC Collection", True, 3, 2, 2, 1, 66.7),
        ("Design Team", "AutoCAD", False, 1, 1, 0, 0, 0.0),
        ("Design Team", "Revit", False, 2, 1, 0, 1, 0.0),
    ]


def test_license_utilization_by_org(build):
    got = mart(build, "license_utilization_by_org",
               "offering_name, geo, country, city, department, seats_assigned, seats_in_use", "offering_name")
    assert got == [
        ("AEC Collection", "EMEA", "France", "Paris", "Design", 2, 2),
        ("AutoCAD", "Unmapped", "Unmapped", "Unmapped", "Unmapped", 1, 0),
        ("Revit", "AMER", "USA", "Boston", "Build", 1, 0),
    ]
    # the org split adds up to the team totals: nothing double counted
    totals = rows(build, "select sum(seats_assigned) as a, sum(seats_in_use) as u from marts.license_utilization")
    assert (totals[0]["a"], totals[0]["u"]) == (sum(g[5] for g in got), sum(g[6] for g in got))


def test_project_version_drift(build):
    # alice (P1;P2) Revit 2025; bob (P1) and erin (P1) Revit 2026; carol (P2) Revit 2026.
    # AutoCAD: bob, erin (P1) and gina (P2) all on 2026 -> one version, not listed.
    assert mart(build, "project_version_drift", "project, product_name, version, users, is_latest_version",
                "project, product_name, version") == [
        ("P1", "Revit", "2025", 1, False),
        ("P1", "Revit", "2026", 2, True),
        ("P2", "Revit", "2025", 1, False),
        ("P2", "Revit", "2026", 1, True),
    ]


def test_usage_by_cost_center(build):
    assert mart(build, "usage_by_cost_center",
                "cost_center, user_key, product_name, usage_month, usage_days, tokens, licensing",
                "cost_center, user_key, product_name") == [
        ("CC100", "A1", "Revit", d("2026-03-01"), 3, 0.0, "subscription"),
        ("CC100", "B1", "AutoCAD", d("2026-03-01"), 1, 0.0, "subscription"),
        ("CC100", "B1", "Civil 3D", d("2026-03-01"), 6, 0.0, "subscription"),
        ("CC100", "B1", "Revit", d("2026-03-01"), 1, 0.0, "subscription"),
        ("CC200", "C1", "Revit", d("2026-03-01"), 1, 0.0, "subscription"),
        ("CC200", "G1", "AutoCAD", d("2026-03-01"), 1, 0.0, "subscription"),
        ("CC300", "E1", "AutoCAD", d("2026-03-01"), 6, 42.0, "flex"),
        ("CC300", "E1", "Revit", d("2026-03-01"), 8, 96.0, "flex"),
        ("Unmapped", "frank01", "Maya", d("2026-02-01"), 1, 10.0, "flex"),
    ]


def test_flex_usage_by_cost_center(build):
    assert mart(build, "flex_usage_by_cost_center",
                "cost_center, department, user_key, usage_month, usage_days, tokens, distinct_products, token_cost",
                "cost_center") == [
        ("CC300", "Viz", "E1", d("2026-03-01"), 8, 138.0, 2, 414.0),
        ("Unmapped", "Unmapped", "frank01", d("2026-02-01"), 1, 10.0, 1, 30.0),
    ]


def test_unmapped_users(build):
    # dave (seat, no usage) and frank01 (Token Flex NT id: no email to add by) lack metadata.
    assert mart(build, "unmapped_users",
                "user_key, email, metadata_key, key_value, is_assigned, usage_days, recent_usage_days",
                "user_key") == [
        ("D1", "dave@acme.com", "email", "dave@acme.com", True, 0, 0),
        ("frank01", None, "email", None, False, 1, 1),
    ]


def test_token_balance(build):
    # contract 110001 year 1: usage rows 96 + 42 + 10 = 148 (the snapshot's 100 is older);
    # remaining 852; burn 148 tokens in the 90 days to 03-31 = 1.644/day;
    # run-out = 03-31 + ceil(852 / (148/90)) = + ceil(518.1) = + 519 days = 2027-09-01.
    got = rows(build, "select * from marts.token_balance")
    assert len(got) == 1
    row = got[0]
    assert (row["contract_number"], row["contract_year"], row["provisioned_tokens"], row["consumed_tokens"],
            row["consumed_source"], row["remaining_tokens"], row["snapshot_consumed_tokens"]) == (
        "110001", 1, 1000.0, 148.0, "usage", 852.0, 100.0)
    assert row["avg_daily_burn"] == pytest.approx(148 / 90)
    assert row["projected_run_out_date"] == d("2027-09-01")


# ----------------------------------------------------------------------------- bad vars


@pytest.mark.parametrize(
    "pair, message",
    [
        ("lookback_days=0", "var lookback_days must be a whole number >= 1, got '0'"),
        ("token_price=abc", "var token_price must be a number >= 0, got 'abc'"),
    ],
)
def test_a_bad_mart_var_stops_the_build_with_one_line_naming_it(tmp_path, pair, message):
    result = CliRunner().invoke(
        cli, ["--quiet", "--data-dir", str(tmp_path / "data"), "build", "--var", pair, "--select", "flex_candidates"],
        obj=None,
    )
    assert result.exit_code == 6, result.output
    assert message in result.output
    error_lines = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(error_lines) == 1, result.output
