"""dbt build on real DuckDB: sandbox data passes every test and fills every mart; the
hand-made dataset gives hand-worked answers; a missing source, duplicate metadata keys,
incremental runs."""

from __future__ import annotations

import datetime as dt

import pytest
from click.testing import CliRunner
from dbt_rawdata import (
    mart_tables,
    warehouse_query,
    write_raw,
    write_sandbox_dataset,
    write_tiny_dataset,
)

from extractor.build import parse_vars, run_build
from extractor.cli import cli
from extractor.config import Settings
from extractor.errors import BuildError, InputError

FAST = "resource_type:unit_test"  # unit tests are D2's mart rules; run them once, in the sandbox build


@pytest.fixture(scope="module")
def sandbox_build(tmp_path_factory, sandbox_small_data):
    data_dir = tmp_path_factory.mktemp("sandbox-build")
    write_sandbox_dataset(data_dir, sandbox_small_data)
    result = CliRunner().invoke(cli, ["--data-dir", str(data_dir), "build"], obj=None)
    return data_dir, result


@pytest.fixture(scope="module")
def tiny_build(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("tiny-build")
    write_tiny_dataset(data_dir / "raw")
    result = run_build(Settings(data_dir=data_dir, quiet=True), exclude=FAST)
    return data_dir, result


def test_sandbox_build_passes_every_test_and_fills_every_mart(sandbox_build):
    data_dir, result = sandbox_build
    assert result.exit_code == 0, result.output
    assert "dbt duckdb:" in result.output and "error" not in result.output.lower()
    marts = mart_tables(data_dir)
    assert {"fct_daily_usage", "dim_users", "dim_products"} <= set(marts)
    empty = [m for m in marts if warehouse_query(data_dir, f"select count(*) from marts.{m}")[0][0] == 0]
    assert not empty, f"marts without rows on sandbox data: {empty}"


def test_sandbox_subscription_usage_days_match_the_generator(sandbox_build, sandbox_small_data):
    data_dir, _ = sandbox_build
    usage = sandbox_small_data.usage.to_pylist()
    expected = {(r["user_id"], r["child_product_name"], r["usage_date"]) for r in usage if r["source"] == "sus"}
    got = warehouse_query(
        data_dir,
        "select user_key, product_name, usage_date from marts.fct_daily_usage where licensing = 'subscription'",
    )
    assert set(got) == expected
    assert len(got) == len(expected)


def test_sandbox_flex_seen_in_both_apis_counts_once(sandbox_build, sandbox_small_data):
    data_dir, _ = sandbox_build
    premium_flex = {}
    for r in sandbox_small_data.usage.to_pylist():
        if r["source"] == "flex":
            key = (r["email"].lower(), r["child_product_name"], r["usage_date"])
            premium_flex[key] = premium_flex.get(key, 0) + (r["tokens"] or 0)
    rows = warehouse_query(
        data_dir,
        "select email, product_name, usage_date, tokens from marts.fct_daily_usage "
        "where licensing = 'flex' and source_system = 'premium'",
    )
    by_key = {(e, p, d): t for e, p, d, t in rows}
    assert set(premium_flex) <= set(by_key)
    # tokens = the larger of the two sources, so never below the premium figure
    assert all(by_key[k] >= v - 1e-9 for k, v in premium_flex.items())
    dupes = warehouse_query(
        data_dir,
        "select email, product_name, usage_date, count(*) from marts.fct_daily_usage "
        "where licensing = 'flex' and email is not null group by 1, 2, 3 having count(*) > 1",
    )
    assert dupes == []


def test_dim_users_population_is_seats_or_usage(sandbox_build, sandbox_small_data):
    data_dir, _ = sandbox_build
    seat_ids = {r["user_id"] for r in sandbox_small_data.users.to_pylist()}
    users = dict(warehouse_query(data_dir, "select user_key, is_assigned from marts.dim_users"))
    assert seat_ids <= set(users)
    assert all(users[u] for u in seat_ids)
    orphans = warehouse_query(
        data_dir,
        "select count(*) from marts.fct_daily_usage f left join marts.dim_users u using (user_key) where u.user_key is null",
    )
    assert orphans == [(0,)]
    nulls = warehouse_query(
        data_dir, "select count(*) from marts.dim_users where geo is null or department is null or project is null"
    )
    assert nulls == [(0,)]


def test_tiny_dataset_hand_worked_fact(tiny_build):
    data_dir, result = tiny_build
    assert result.success and not result.failures
    rows = warehouse_query(
        data_dir,
        "select user_key, product_name, cast(usage_date as varchar), licensing, source_system, offering_name, "
        "collection_name, is_collection_usage, tokens from marts.fct_daily_usage order by 1, 2, 3",
    )
    assert rows == [
        ("U1", "Civil 3D", "2026-11-05", "subscription", "premium", "AEC Collection", "AEC Collection", True, 0.0),
        ("U1", "Revit", "2026-10-01", "subscription", "premium", "AEC Collection", "AEC Collection", True, 0.0),
        ("U1", "Revit", "2026-10-02", "subscription", "premium", "AEC Collection", "AEC Collection", True, 0.0),
        ("U1", "Revit", "2026-11-03", "subscription", "premium", "AEC Collection", "AEC Collection", True, 0.0),
        # the same day in the API and in a usage file: one row
        ("U2", "AutoCAD", "2026-11-03", "subscription", "premium", "AutoCAD", None, False, 0.0),
        # flex seen by Premium (10 tokens) and Token Flex (12, user name = her email): one row, 12
        ("U3", "Civil 3D", "2026-11-04", "flex", "premium", "Flex", None, False, 12.0),
        # masked personal data: the hashed id is the key
        ("h9", "Revit", "2026-11-06", "subscription", "premium", "Revit", None, False, 0.0),
        # an NT id in Token Flex stays its own user; the manual adjustment has no user
        ("ntuser7", "AutoCAD", "2026-11-04", "flex", "tokenflex", "Flex", None, False, 7.0),
    ]


def test_tiny_dataset_users_seats_and_projects(tiny_build):
    data_dir, _ = tiny_build
    users = warehouse_query(
        data_dir,
        "select user_key, email, team_name, department, project, has_metadata, is_assigned, "
        "cast(last_used_date as varchar) from marts.dim_users order by 1",
    )
    assert users == [
        ("U1", "alice@example.com", "Design", "Architecture", "Tower; Bridge;", True, True, "2026-11-05"),
        ("U2", "bob@example.com", "Design", "Drafting", "Tower", True, True, "2026-11-03"),
        ("U3", "carol@example.com", "Build", "Unmapped", "Unmapped", False, True, "2026-11-04"),
        ("U4", "dave@example.com", "Build", "Unmapped", "Unmapped", False, True, None),
        ("h9", None, "Design", "Unmapped", "Unmapped", False, False, "2026-11-06"),
        ("ntuser7", None, None, "Unmapped", "Unmapped", False, False, "2026-11-04"),
    ]
    projects = warehouse_query(data_dir, "select user_key, project from intermediate.int_user_projects order by 1, 2")
    # users without a project have none (not a shared 'Unmapped' project)
    assert projects == [("U1", "Bridge"), ("U1", "Tower"), ("U2", "Tower")]
    seats = warehouse_query(
        data_dir, "select team_name, offering_name, seats_purchased from intermediate.int_seats_purchased order by 1, 2"
    )
    # the expired AutoCAD subscription does not count; the alias names the AEC Collection
    assert seats == [("Build", "AEC Collection", 1), ("Design", "AEC Collection", 3), ("Design", "AutoCAD", 2)]
    assigned = warehouse_query(
        data_dir, "select user_key, offering_name, is_collection from intermediate.int_seat_assignments order by 1"
    )
    assert assigned == [
        ("U1", "AEC Collection", True), ("U2", "AutoCAD", False), ("U3", "Flex", False), ("U4", "AEC Collection", True)
    ]


def test_no_token_flex_and_metadata_keyed_by_user_id(tmp_path):
    """A customer without Token Flex (never extracted: schema files only) whose metadata
    file is keyed by Autodesk user id: the build passes, token marts are empty."""
    write_tiny_dataset(tmp_path / "raw", tokenflex=False, metadata=False)
    write_raw(tmp_path / "raw", "user_metadata", [dict(user_id="U3", department="Survey", project="Road")])
    result = run_build(Settings(data_dir=tmp_path, quiet=True), vars={"metadata_key": "user_id"}, exclude=FAST)
    assert result.success and not result.failures
    assert warehouse_query(tmp_path, "select count(*) from marts.fct_daily_usage where source_system = 'tokenflex'") == [(0,)]
    assert warehouse_query(tmp_path, "select count(*) from staging.stg_tokenflex__usage") == [(0,)]
    if "token_balance" in mart_tables(tmp_path):
        assert warehouse_query(tmp_path, "select count(*) from marts.token_balance") == [(0,)]
    # premium's own flex row is still there, with premium's tokens
    assert warehouse_query(tmp_path, "select tokens from marts.fct_daily_usage where licensing = 'flex'") == [(10.0,)]
    rows = warehouse_query(tmp_path, "select user_key, department, project from marts.dim_users where has_metadata")
    assert rows == [("U3", "Survey", "Road")]


def test_empty_data_dir_builds_an_empty_fact(tmp_path):
    result = run_build(Settings(data_dir=tmp_path / "fresh", quiet=True), select=["+fct_daily_usage"], exclude=FAST)
    assert result.success and any(n.name == "fct_daily_usage" for n in result.nodes)
    assert warehouse_query(tmp_path / "fresh", "select count(*) from marts.fct_daily_usage") == [(0,)]


def test_duplicate_metadata_key_fails_naming_the_key(tmp_path):
    write_tiny_dataset(tmp_path / "raw", metadata=False)
    write_raw(tmp_path / "raw", "user_metadata", [
        dict(email="alice@example.com", department="Architecture"),
        dict(email=" ALICE@example.com", department="Structure"),
        dict(email="bob@example.com", department="Drafting"),
    ])
    result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "build", "--select", "stg_customer__user_metadata"], obj=None)
    assert result.exit_code == BuildError.exit_code, result.output
    message = next(line for line in result.output.splitlines() if line.startswith("Error:"))
    assert "no_duplicate_metadata_keys" in message
    assert "'alice@example.com' (2 rows)" in message
    assert "bob@example.com" not in message and "in macro" not in message


def test_incremental_build_adds_a_new_day_and_matches_a_full_refresh(tmp_path):
    write_tiny_dataset(tmp_path / "raw")
    settings = Settings(data_dir=tmp_path, quiet=True)
    select = ["+fct_daily_usage"]
    run_build(settings, select=select, exclude=FAST)
    october_before = warehouse_query(tmp_path, "select * from marts.fct_daily_usage where usage_month = date '2026-10-01' order by 1")
    later = dt.datetime(2026, 11, 21, 6, 0, tzinfo=dt.UTC)
    write_raw(tmp_path / "raw", "premium_usage", [dict(
        usage_date=dt.date(2026, 11, 20), usage_month=dt.date(2026, 11, 1), context_id="100", team_name="Design",
        product_name="AutoCAD", child_product_name="AutoCAD", product_line_code="ACD", feature_id="ACD",
        version="2026", source="sus", user_id="U2", email="bob@example.com")], extracted_at=later, part="part-new")
    run_build(settings, select=select, exclude=FAST)
    incremental = warehouse_query(tmp_path, "select * exclude (extracted_at) from marts.fct_daily_usage order by 1")
    assert ("U2", "AutoCAD", dt.date(2026, 11, 20)) in {(r[1], r[8], r[16]) for r in incremental}
    # only November received rows: the compiled incremental query reads that month only
    compiled = (tmp_path / "dbt" / "target" / "compiled" / "aps_usage" / "models" / "marts" / "core" / "fct_daily_usage.sql").read_text()
    assert "usage_date >= cast('2026-11-01' as date) and usage_date < cast('2026-12-01' as date)" in compiled
    assert "2026-10-01" not in compiled
    # months without new raw rows were not rewritten
    assert warehouse_query(tmp_path, "select * from marts.fct_daily_usage where usage_month = date '2026-10-01' order by 1") == october_before
    run_build(settings, select=select, exclude=FAST, full_refresh=True)
    full = warehouse_query(tmp_path, "select * exclude (extracted_at) from marts.fct_daily_usage order by 1")
    assert incremental == full


MODELS_ONLY = ["resource_type:test", "resource_type:unit_test"]


def warehouse_rows(data_dir) -> dict[str, list[str]]:
    """Every relation of the intermediate and marts schemas as sorted name=value records
    (column order aside): what an incremental build must share with a full refresh."""
    import duckdb

    con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
    try:
        records = {}
        for schema, name in con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema in ('intermediate', 'marts') order by 1, 2"
        ).fetchall():
            cursor = con.execute(f"select * from {schema}.{name}")
            names = [d[0] for d in cursor.description]
            records[f"{schema}.{name}"] = sorted(repr(sorted(zip(names, row))) for row in cursor.fetchall())
        return records
    finally:
        con.close()


def test_incremental_builds_equal_a_full_refresh(tmp_path):
    """The incremental facts rebuild the months with new usage; the marts over them take the
    new as-of date and the users' new metadata. After each step every table and view equals
    what a --full-refresh gives: a new day in a new month with a metadata change, a threshold
    var changed, and a run with an explicit as_of_date followed by a default one."""
    raw = tmp_path / "raw"
    write_tiny_dataset(raw)
    settings = Settings(data_dir=tmp_path, quiet=True)
    base = {"multi_product_min_products": 1, "multi_product_min_days": 0}  # the tiny data has little Flex
    run_build(settings, vars=base, exclude=MODELS_ONLY)
    before = warehouse_rows(tmp_path)
    assert all(before[f"marts.{name}"] for name in ("low_usage_users", "usage_by_cost_center",
                                                    "flex_usage_by_cost_center", "flex_multi_product_daily"))
    october = "select user_key, department, as_of_date, is_complete_month from marts.low_usage_users where usage_month = date '2026-10-01'"
    assert warehouse_query(tmp_path, october) == [("U1", "Architecture", dt.date(2026, 11, 6), True)]

    # a new day in December (Flex, so every month mart gets rows), and alice moves department
    later = dt.datetime(2026, 12, 3, 6, 0, tzinfo=dt.UTC)
    write_raw(raw, "premium_usage", [dict(
        usage_date=dt.date(2026, 12, 2), usage_month=dt.date(2026, 12, 1), context_id="200", team_name="Build",
        product_name="Civil 3D", child_product_name="Civil 3D", product_line_code="CIV3D", feature_id="CIV3D",
        version="2026", source="flex", tokens=12.0, user_id="U3", email="carol@example.com")],
        extracted_at=later, part="part-new")
    write_raw(raw, "user_metadata", [
        dict(email="alice@example.com", geo="EMEA", country="France", city="Lyon", department="Engineering",
             cost_center="CC9", project="Tower", skill_level="Expert"),
        dict(email="bob@example.com", geo="AMER", country="USA", city="Boston", department="Drafting",
             cost_center="CC2", project="Tower", skill_level="Novice"),
    ], source="metadata-v2.xlsx", extracted_at=later)
    run_build(settings, vars=base, exclude=MODELS_ONLY)
    # only December was re-read from the raw usage
    compiled = (tmp_path / "dbt" / "target" / "compiled" / "aps_usage" / "models" / "marts" / "core" / "fct_daily_usage.sql").read_text()
    assert "cast('2026-12-01' as date)" in compiled and "2026-10-01" not in compiled
    assert warehouse_query(tmp_path, october) == [("U1", "Engineering", dt.date(2026, 12, 2), True)]
    incremental = warehouse_rows(tmp_path)
    assert incremental != before
    run_build(settings, vars=base, exclude=MODELS_ONLY, full_refresh=True)
    assert warehouse_rows(tmp_path) == incremental

    # a threshold that decides which rows exist
    changed = {**base, "low_usage_max_days": 1, "multi_product_min_days": 1}
    run_build(settings, vars=changed, exclude=MODELS_ONLY)
    incremental = warehouse_rows(tmp_path)
    run_build(settings, vars=changed, exclude=MODELS_ONLY, full_refresh=True)
    assert warehouse_rows(tmp_path) == incremental
    assert {r[-2] for r in warehouse_query(tmp_path, "select * from marts.low_usage_users")} == {1}

    # an explicit as-of date cuts the marts short; the next default run restores the months after it
    run_build(settings, vars={**base, "as_of_date": "2026-10-15"}, exclude=MODELS_ONLY)
    months = warehouse_query(tmp_path, "select distinct usage_month from marts.usage_by_cost_center")
    assert months == [(dt.date(2026, 10, 1),)]
    run_build(settings, vars=base, exclude=MODELS_ONLY)
    incremental = warehouse_rows(tmp_path)
    run_build(settings, vars=base, exclude=MODELS_ONLY, full_refresh=True)
    assert warehouse_rows(tmp_path) == incremental


def test_bad_var_and_bad_target_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="name=value"):
        parse_vars(["inactive_days"])
    assert parse_vars(["inactive_days=60", "as_of_date=2026-06-30", "as_of_date_x=null"]) == {
        "inactive_days": 60, "as_of_date": "2026-06-30", "as_of_date_x": None}
    result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "build", "--target", "oracle"], obj=None)
    assert result.exit_code == 2


def test_unreadable_raw_file_is_a_one_line_error(tmp_path):
    write_tiny_dataset(tmp_path / "raw")
    # a corrupt Parquet file in a dataset: reading the raw tables (before any model) fails
    next((tmp_path / "raw" / "premium_teams").rglob("*.parquet")).write_bytes(b"not parquet")
    with pytest.raises(BuildError) as err:
        run_build(Settings(data_dir=tmp_path, quiet=True), select=["stg_premium__teams"])
    message = str(err.value)
    assert "on-run-start" in message and "parquet" in message and "\n" not in message


def test_build_artifacts_are_written_after_the_run(tiny_build):
    """dbt's artifacts land under <data-dir>/dbt/target: manifest.json with the compiled SQL,
    beside run_results.json listing every node the build ran."""
    import json

    data_dir, result = tiny_build
    target = data_dir / "dbt" / "target"
    manifest = json.loads((target / "manifest.json").read_text())
    fact = manifest["nodes"]["model.aps_usage.fct_daily_usage"]
    assert "usage_key" in (fact.get("compiled_code") or "")
    run_results = json.loads((target / "run_results.json").read_text())
    assert {r["unique_id"] for r in run_results["results"]} >= {"model.aps_usage.fct_daily_usage"}
    assert len(run_results["results"]) == len(result.nodes)


def test_docs_command_writes_the_site(tiny_build):
    data_dir, _ = tiny_build
    result = CliRunner().invoke(cli, ["--data-dir", str(data_dir), "docs"], obj=None)
    assert result.exit_code == 0, result.output
    assert (data_dir / "docs" / "static_index.html").stat().st_size > 10_000
    assert "fct_daily_usage" in (data_dir / "docs" / "manifest.json").read_text()
