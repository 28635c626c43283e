"""The same raw data built on Spark (local session, dbt-spark `method: session`) gives every
mart row for row what DuckDB gives. Needs pyspark, dbt-spark and Java: skipped when they are
missing, unless APS_USAGE_REQUIRE_ALL=1 (then it fails)."""

from __future__ import annotations

import datetime as dt
import decimal
import importlib.util
import os
import shutil

import pytest
from dbt_rawdata import mart_tables, warehouse_query, write_sandbox_dataset

from extractor.build import run_build
from extractor.config import Settings

pytestmark = pytest.mark.spark

MODELS_ONLY = ["resource_type:test", "resource_type:unit_test"]


def _spark_missing() -> str | None:
    for module in ("pyspark", "dbt.adapters.spark"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install 'aps-usage[spark]')"
    if not (shutil.which("java") or os.environ.get("JAVA_HOME")):
        return "Java is not installed"
    return None


@pytest.fixture(scope="module")
def spark_and_duckdb_builds(tmp_path_factory, sandbox_small_data):
    missing = _spark_missing()
    if missing:
        if os.environ.get("APS_USAGE_REQUIRE_ALL") == "1":
            pytest.fail(f"APS_USAGE_REQUIRE_ALL=1 but {missing}")
        pytest.skip(missing)
    data_dir = tmp_path_factory.mktemp("spark-parity")
    write_sandbox_dataset(data_dir, sandbox_small_data)
    settings = Settings(data_dir=data_dir, quiet=True)
    run_build(settings, target="duckdb", exclude=MODELS_ONLY)
    run_build(settings, target="spark", exclude=MODELS_ONLY)
    from pyspark.sql import SparkSession

    return data_dir, SparkSession.builder.getOrCreate()


def _normalise(value):
    if isinstance(value, float):
        return round(value, 6) + 0.0  # -0.0 == 0.0
    if isinstance(value, decimal.Decimal):
        return round(float(value), 6) + 0.0
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _sorted_rows(rows) -> list[tuple]:
    normalised = [tuple(_normalise(v) for v in row) for row in rows]
    return sorted(normalised, key=lambda row: tuple((v is None, str(v)) for v in row))


def test_every_mart_matches_duckdb_row_for_row(spark_and_duckdb_builds):
    data_dir, spark = spark_and_duckdb_builds
    marts = mart_tables(data_dir)
    assert "fct_daily_usage" in marts and len(marts) >= 3
    spark_tables = {row.tableName for row in spark.sql("show tables in marts").collect()}
    assert set(marts) <= spark_tables, f"missing on Spark: {set(marts) - spark_tables}"
    mismatches = []
    for mart in marts:
        columns = [r[0] for r in warehouse_query(
            data_dir,
            f"select column_name from information_schema.columns where table_schema = 'marts' "
            f"and table_name = '{mart}' order by ordinal_position",
        )]
        select = ", ".join(f'"{c}"' for c in columns)
        duck = _sorted_rows(warehouse_query(data_dir, f"select {select} from marts.{mart}"))
        spark_df = spark.table(f"marts.{mart}")
        assert set(spark_df.columns) == set(columns), f"{mart}: columns differ"
        ours = _sorted_rows(tuple(row[c] for c in columns) for row in spark_df.collect())
        if duck != ours:
            first = next((d, s) for d, s in zip(duck + [None] * len(ours), ours + [None] * len(duck)) if d != s)
            mismatches.append(f"{mart}: duckdb {len(duck)} rows, spark {len(ours)} rows; first difference {first}")
    assert not mismatches, "\n".join(mismatches)


def test_spark_fact_is_not_trivially_empty(spark_and_duckdb_builds):
    data_dir, spark = spark_and_duckdb_builds
    count = spark.sql("select count(*) as n from marts.fct_daily_usage").collect()[0].n
    assert count > 100
    assert count == warehouse_query(data_dir, "select count(*) from marts.fct_daily_usage")[0][0]


def test_incremental_new_day_matches_duckdb(spark_and_duckdb_builds, sandbox_small_data):
    """Runs last (it adds data): one new day, incremental builds on both engines, same fact."""
    import datetime as dt

    from dbt_rawdata import write_raw

    data_dir, spark = spark_and_duckdb_builds
    day = sandbox_small_data.end_date + dt.timedelta(days=1)
    user = sandbox_small_data.users.to_pylist()[0]
    write_raw(data_dir / "raw", "premium_usage", [dict(
        usage_date=day, usage_month=day.replace(day=1), team_name=user["team_name"], product_name="AutoCAD",
        child_product_name="AutoCAD", product_line_code="ACD", feature_id="ACD", version="2026", source="sus",
        user_id=user["user_id"], email=user["email"])],
        extracted_at=dt.datetime(2030, 1, 1, tzinfo=dt.UTC), part="part-new-day")
    settings = Settings(data_dir=data_dir, quiet=True)
    select = ["fct_daily_usage"]
    run_build(settings, target="duckdb", select=select, exclude=MODELS_ONLY)
    run_build(settings, target="spark", select=select, exclude=MODELS_ONLY)
    columns = [c for c in spark.table("marts.fct_daily_usage").columns]
    select_sql = ", ".join(f'"{c}"' for c in columns)
    duck = _sorted_rows(warehouse_query(data_dir, f"select {select_sql} from marts.fct_daily_usage"))
    ours = _sorted_rows(tuple(row[c] for c in columns) for row in spark.table("marts.fct_daily_usage").collect())
    assert duck == ours
    assert any(r[columns.index("usage_date")] == day.isoformat() and r[columns.index("user_key")] == user["user_id"] for r in ours)
