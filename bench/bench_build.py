"""Benchmark: dbt build of the whole project on a large synthetic raw dataset (DuckDB).

Prints, all measured in this run on this machine:
- full build time (models and seeds, `aps-usage build` API) on N usage rows (default 10 million);
- the same compiled SQL executed straight on DuckDB (no dbt), raw.<dataset> registered as
  dbt's on-run-start hook does (timed apart too): ratio = dbt overhead;
- incremental builds after one new day of usage vs the full build: ``--new-days`` days (3)
  (each one more append commit to the premium_usage Delta table)
  are added one after another and each build is timed (the first opens a new month), since
  one run of a few seconds varies by +-10% on a 2-core machine;
- the data tests' time on the full data, reported apart.

    python bench/bench_build.py                 # 10 million usage rows
    python bench/bench_build.py --rows 1000000  # quicker
    python bench/bench_build.py --check         # and compare with a --full-refresh at the end
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import write_deltalake

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "False")

from extractor.build import run_build  # noqa: E402
from extractor.config import Settings  # noqa: E402
from extractor.dataset import MONTH_COLUMN, DataDir, full_schema, table_schema  # noqa: E402
from extractor.schemas import DATASETS  # noqa: E402

END = dt.date(2026, 10, 31)
DAYS = 365
TEAMS = ["New York Office", "London Studio", "Singapore Hub", "Munich Engineering"]
# (line name, product, line code, feature id): collection usage and standalone usage
PRODUCTS = [
    ("AEC Collection", "Revit", "AECCOL", "RVT"), ("AEC Collection", "AutoCAD", "AECCOL", "ACD"),
    ("AEC Collection", "Civil 3D", "AECCOL", "CIV3D"), ("AEC Collection", "Navisworks Manage", "AECCOL", "NAVMAN"),
    ("PDM Collection", "Inventor Professional", "PDCOLL", "INVPROSA"), ("PDM Collection", "Vault Professional", "PDCOLL", "VLTM"),
    ("M&E Collection", "Maya", "MECOLL", "MAYA"), ("M&E Collection", "3ds Max", "MECOLL", "3DSMAX"),
    ("AutoCAD", "AutoCAD", "ACD", "ACD"), ("Revit", "Revit", "RVT", "RVT"), ("Fusion", "Fusion", "F360", "F360"),
    ("AutoCAD LT", "AutoCAD LT", "ACDLT", "ACDLT"), ("Civil 3D", "Civil 3D", "CIV3D", "CIV3D"),
]
VERSIONS = ["2023", "2024", "2025", "2026"]


def _strings(values: list[str], index: np.ndarray) -> pa.Array:
    return pa.array(np.array(values, dtype=object)[index], pa.string())


def _append(dd: DataDir, dataset: str, table: pa.Table) -> None:
    """Append rows (the dataset's columns and meta columns) to its Delta table, in the
    extractor's layout: partition column ``_month`` ("YYYY-MM" of the date column) where the
    dataset has a date. One commit, a file per month touched."""
    spec = DATASETS[dataset]
    if spec.date_column:
        months = pc.strftime(table.column(spec.date_column).cast(pa.timestamp("s")), "%Y-%m")
        table = table.append_column(pa.field(MONTH_COLUMN, pa.string()), months)
    write_deltalake(dd.table_uri(dataset), table.cast(table_schema(spec)), mode="append")


def synthesize(data_dir: Path, rows: int, users: int, seed: int = 1) -> dict:
    """The raw Delta tables, as the extractor writes them: premium_usage (90%) and
    tokenflex_usage (10%) rows."""
    rng = np.random.default_rng(seed)
    dd = DataDir(data_dir)
    dd.ensure_tables()
    extracted = pa.scalar(dt.datetime(2026, 11, 1, tzinfo=dt.UTC), pa.timestamp("us", tz="UTC"))
    user_ids = [f"U{i:07d}" for i in range(users)]
    emails = [f"user{i}@bench.example" for i in range(users)]
    start = END - dt.timedelta(days=DAYS - 1)
    premium_rows = int(rows * 0.9)
    counter = 0

    def lineage(n: int, dataset: str):
        nonlocal counter
        hashes = pa.array([f"{dataset[:2]}{i:030x}" for i in range(counter, counter + n)], pa.string())
        counter += n
        return {"_source": pa.array(["bench"] * n, pa.string()),
                "_extracted_at": pa.array(np.full(n, extracted.value), pa.timestamp("us", tz="UTC")),
                "_row_hash": hashes}

    spec = DATASETS["premium_usage"]
    chunk = 1_000_000
    for first in range(0, premium_rows, chunk):
        n = min(chunk, premium_rows - first)
        day = rng.integers(0, DAYS, n)
        user = rng.integers(0, users, n)
        product = rng.integers(0, len(PRODUCTS), n)
        flex = rng.random(n) < 0.12
        dates = np.array([np.datetime64(start) + int(d) for d in range(DAYS)])[day]
        table = pa.table({
            "usage_date": pa.array(dates.astype("datetime64[D]"), pa.date32()),
            "usage_month": pa.array(dates.astype("datetime64[M]").astype("datetime64[D]"), pa.date32()),
            "context_id": _strings(["4865648", "5012734", "5230981", "5477102"], user % 4),
            "team_name": _strings(TEAMS, user % 4),
            "product_name": _strings([p[0] for p in PRODUCTS], np.where(flex, 8, product)),
            "child_product_name": _strings([p[1] for p in PRODUCTS], np.where(flex, 8, product)),
            "product_line_code": _strings([p[2] for p in PRODUCTS], np.where(flex, 8, product)),
            "feature_id": _strings([p[3] for p in PRODUCTS], np.where(flex, 8, product)),
            "version": _strings(VERSIONS, rng.integers(0, len(VERSIONS), n)),
            "source": _strings(["sus", "flex"], flex.astype(int)),
            "tokens": pa.array(np.where(flex, 7.0, np.nan), pa.float64(), mask=~flex),
            "user_id": _strings(user_ids, user),
            "email": _strings(emails, user),
        })
        columns = {name: (table.column(name) if name in table.column_names else pa.nulls(n, spec.columns[name]))
                   for name in spec.columns}
        columns.update(lineage(n, "premium_usage"))
        _append(dd, "premium_usage", pa.table(columns, schema=full_schema(spec)))

    spec = DATASETS["tokenflex_usage"]
    n = rows - premium_rows
    day = rng.integers(0, DAYS, n)
    user = rng.integers(0, users, n)
    dates = np.array([np.datetime64(start) + int(d) for d in range(DAYS)])[day]
    base = {
        "contract_number": pa.array(["110001234567"] * n, pa.string()),
        "usage_date": pa.array(dates.astype("datetime64[D]"), pa.date32()),
        "usage_month": pa.array(dates.astype("datetime64[M]").astype("datetime64[D]"), pa.date32()),
        "contract_year": pa.array(np.ones(n, dtype=np.int64)),
        "usage_category": pa.array(["DESKTOP_PRODUCT"] * n, pa.string()),
        "product_line_code": _strings(["ACD", "RVT", "F360"], user % 3),
        "product_name": _strings(["AutoCAD", "Revit", "Fusion"], user % 3),
        "product_version": _strings(VERSIONS, rng.integers(0, len(VERSIONS), n)),
        "user_name": _strings(emails, user),
        "tokens_consumed": pa.array(np.full(n, 7.0)),
    }
    columns = {name: base.get(name, pa.nulls(n, spec.columns[name])) for name in spec.columns}
    columns.update(lineage(n, "tokenflex_usage"))
    _append(dd, "tokenflex_usage", pa.table(columns, schema=full_schema(spec)))

    # seats, subscriptions and metadata for every user (small next to the usage)
    spec = DATASETS["premium_users"]
    idx = np.arange(users)
    base = {"team_name": _strings(TEAMS, idx % 4), "user_id": pa.array(user_ids, pa.string()),
            "email": pa.array(emails, pa.string()), "offering_name": _strings(["AEC Collection", "AutoCAD", "Flex"], idx % 3)}
    columns = {name: base.get(name, pa.nulls(users, spec.columns[name])) for name in spec.columns}
    columns.update(lineage(users, "premium_users"))
    _append(dd, "premium_users", pa.table(columns, schema=full_schema(spec)))
    spec = DATASETS["user_metadata"]
    base = {"email": pa.array(emails, pa.string()), "department": _strings(["Design", "Build", "Ops"], idx % 3),
            "cost_center": _strings(["CC1", "CC2", "CC3", "CC4"], idx % 4), "project": _strings(["A;B", "B", "C"], idx % 3)}
    columns = {name: base.get(name, pa.nulls(users, spec.columns[name])) for name in spec.columns}
    columns.update(lineage(users, "user_metadata"))
    _append(dd, "user_metadata", pa.table(columns, schema=full_schema(spec)))
    spec = DATASETS["premium_subscriptions"]
    offers = ["AEC Collection", "AutoCAD", "Revit"]
    base = {"team_name": pa.array([t for t in TEAMS for _ in offers], pa.string()),
            "subscription_id": pa.array([f"S{i}" for i in range(len(TEAMS) * len(offers))], pa.string()),
            "offering_name": pa.array(offers * len(TEAMS), pa.string()),
            "seat_quantity": pa.array([users // 8] * (len(TEAMS) * len(offers)), pa.int64()),
            "subscription_status": pa.array(["Active"] * (len(TEAMS) * len(offers)), pa.string())}
    k = len(TEAMS) * len(offers)
    columns = {name: base.get(name, pa.nulls(k, spec.columns[name])) for name in spec.columns}
    columns.update(lineage(k, "premium_subscriptions"))
    _append(dd, "premium_subscriptions", pa.table(columns, schema=full_schema(spec)))
    return {"premium_usage": premium_rows, "tokenflex_usage": rows - premium_rows, "users": users}


def add_one_day(data_dir: Path, rows: int, users: int, number: int = 1) -> int:
    """New day ``number`` (1 = the day after END) of Premium usage, extracted later than
    everything before it."""
    rng = np.random.default_rng(98 + number)
    spec = DATASETS["premium_usage"]
    day = END + dt.timedelta(days=number)
    n = rows
    user = rng.integers(0, users, n)
    product = rng.integers(0, len(PRODUCTS), n)
    base = {
        "usage_date": pa.array([day] * n, pa.date32()),
        "usage_month": pa.array([day.replace(day=1)] * n, pa.date32()),
        "team_name": _strings(TEAMS, user % 4),
        "product_name": _strings([p[0] for p in PRODUCTS], product),
        "child_product_name": _strings([p[1] for p in PRODUCTS], product),
        "product_line_code": _strings([p[2] for p in PRODUCTS], product),
        "feature_id": _strings([p[3] for p in PRODUCTS], product),
        "version": pa.array(["2026"] * n, pa.string()),
        "source": pa.array(["sus"] * n, pa.string()),
        "user_id": pa.array([f"U{i:07d}" for i in user], pa.string()),
        "email": pa.array([f"user{i}@bench.example" for i in user], pa.string()),
    }
    columns = {name: base.get(name, pa.nulls(n, spec.columns[name])) for name in spec.columns}
    columns["_source"] = pa.array(["bench new day"] * n, pa.string())
    extracted = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    columns["_extracted_at"] = pa.array([extracted] * n, pa.timestamp("us", tz="UTC"))
    columns["_row_hash"] = pa.array([f"new{number:03d}{i:026x}" for i in range(n)], pa.string())
    _append(DataDir(data_dir), "premium_usage", pa.table(columns, schema=full_schema(spec)))
    return n


def compiled_models(target_dir: Path) -> list[tuple[str, str, str, str]]:
    """(schema, name, materialization, compiled SQL) of every model, parents first."""
    manifest = json.loads((target_dir / "manifest.json").read_text())
    nodes = {k: v for k, v in manifest["nodes"].items() if v["resource_type"] == "model"}
    done: list[str] = []
    seen: set[str] = set()

    def visit(uid: str) -> None:
        if uid in seen or uid not in nodes:
            return
        seen.add(uid)
        for parent in nodes[uid]["depends_on"]["nodes"]:
            visit(parent)
        done.append(uid)

    for uid in sorted(nodes):
        visit(uid)
    run_dir = target_dir / "compiled"
    out = []
    for uid in done:
        node = nodes[uid]
        compiled = node.get("compiled_code")
        if not compiled:
            path = run_dir / node["package_name"] / node["original_file_path"]
            compiled = path.read_text()
        out.append((node["schema"], node["name"], node["config"]["materialized"], compiled))
    return out


def register_raw(con: duckdb.DuckDBPyConnection, data_dir: Path, raw_views: dict[str, str]) -> float:
    """Make raw.<dataset> readable the way dbt's on-run-start hook did in the dbt warehouse
    (register_raw_sources.sql): the same view where it made a view, else a copy of the Delta
    table's current version (what dbt-duckdb's delta plugin does). Returns the seconds."""
    started = time.perf_counter()
    con.execute("create schema if not exists raw")
    dd = DataDir(data_dir)
    for name in DATASETS:
        if name in raw_views:
            con.execute(raw_views[name])
        else:
            con.register("delta_source", dd.table(name).to_pyarrow_dataset())
            con.execute(f"create or replace table raw.{name} as select * from delta_source")
            con.unregister("delta_source")
    return time.perf_counter() - started


def run_compiled_sql(models, baseline_dir: Path, dbt_warehouse: Path, data_dir: Path) -> tuple[float, float]:
    """The raw registration and the models' compiled SQL straight on a fresh DuckDB file
    named like dbt's (same references): (total seconds, of which the raw registration)."""
    baseline_dir.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(baseline_dir / "warehouse.duckdb"))
    try:
        con.execute(f"attach '{dbt_warehouse}' as dbt_copy (read_only)")
        for schema in ("staging", "intermediate", "marts"):
            con.execute(f"create schema if not exists {schema}")
        con.execute("create table staging.product_catalog as select * from dbt_copy.staging.product_catalog")
        raw_views = dict(con.execute("select view_name, sql from duckdb_views() where database_name = 'dbt_copy' "
                                     "and schema_name = 'raw'").fetchall())
        con.execute("detach dbt_copy")
        started = time.perf_counter()
        raw_seconds = register_raw(con, data_dir, raw_views)
        per_model = []
        for schema, name, materialized, sql in models:
            kind = "view" if materialized in ("view", "ephemeral") else "table"
            t = time.perf_counter()
            con.execute(f"create or replace {kind} {schema}.{name} as {sql}").fetchall()
            per_model.append((time.perf_counter() - t, f"{schema}.{name}"))
        total = time.perf_counter() - started
        slowest = ", ".join(f"{name} {secs:.1f}s" for secs, name in sorted(per_model, reverse=True)[:5])
        print(f"slowest models (direct SQL): {slowest}")
        return total, raw_seconds
    finally:
        con.close()


def compare_with_full_refresh(data_dir: Path, copy_dir: Path) -> None:
    """Rebuild a copy of the data dir with --full-refresh and compare every table of the
    intermediate and marts schemas, row for row, with the incrementally built warehouse."""
    shutil.copytree(data_dir, copy_dir)
    run_build(Settings(data_dir=copy_dir, quiet=True), exclude=["resource_type:test", "resource_type:unit_test"],
              full_refresh=True)
    con = duckdb.connect()
    con.execute(f"attach '{data_dir / 'warehouse.duckdb'}' as incremental (read_only)")
    con.execute(f"attach '{copy_dir / 'warehouse.duckdb'}' as refreshed (read_only)")
    tables = con.execute("select schema_name, table_name from duckdb_tables() where database_name = 'refreshed' "
                         "and schema_name in ('intermediate', 'marts') order by 1, 2").fetchall()
    differing = []
    for schema, table in tables:
        columns = ", ".join(f'"{c}"' for (c,) in con.execute(
            "select column_name from duckdb_columns() where database_name = 'refreshed' "
            "and schema_name = ? and table_name = ? order by column_index", [schema, table]).fetchall())
        a, b = (f"select {columns} from {db}.{schema}.{table}" for db in ("incremental", "refreshed"))
        extra = con.execute(f"select count(*) from ({a} except all {b})").fetchone()[0]
        missing = con.execute(f"select count(*) from ({b} except all {a})").fetchone()[0]
        if extra or missing:
            differing.append(f"{schema}.{table} (+{extra} -{missing} rows)")
    con.close()
    print(f"incremental warehouse vs a --full-refresh of the same data: {len(tables)} tables compared, "
          + (f"DIFFERENT: {', '.join(differing)}" if differing else "all equal row for row"))


def _hook_seconds(result) -> float:
    """Seconds of the on-run-start hooks (the raw registration) in a dbt result."""
    return sum(node.seconds for node in result.nodes if node.resource_type == "operation")


def _slowest(result, n: int = 6) -> str:
    nodes = sorted((node for node in result.nodes if node.resource_type == "model"), key=lambda node: -node.seconds)
    return ", ".join(f"{node.name} {node.seconds:.1f}s" for node in nodes[:n])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="usage rows (Premium 90%%, Token Flex 10%%)")
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--new-days", type=int, default=3,
                        help="new days added and built one after another (each timed)")
    parser.add_argument("--check", action="store_true",
                        help="at the end, compare every table with a --full-refresh build of the same data")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data dir")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="aps-bench-build-"))
    data_dir = work / "data"
    try:
        t = time.perf_counter()
        sizes = synthesize(data_dir, args.rows, args.users)
        print(f"synthesized {sizes} in {time.perf_counter() - t:.1f}s under {data_dir}")
        settings = Settings(data_dir=data_dir, quiet=True)
        models_only = ["resource_type:test", "resource_type:unit_test"]

        t = time.perf_counter()
        full_result = run_build(settings, exclude=models_only)
        full = time.perf_counter() - t

        models = compiled_models(data_dir / "dbt" / "target")
        direct, direct_raw = run_compiled_sql(models, work / "baseline", settings.warehouse_path, data_dir)

        t = time.perf_counter()
        run_build(settings, select=["resource_type:test"])
        tests = time.perf_counter() - t

        # one new day after another, each built incrementally: the first opens a new month
        incrementals = []
        for number in range(1, args.new_days + 1):
            new_rows = add_one_day(data_dir, args.rows // DAYS, args.users, number)
            t = time.perf_counter()
            incremental_result = run_build(settings, exclude=models_only)
            incrementals.append(time.perf_counter() - t)

        con = duckdb.connect(str(settings.warehouse_path), read_only=True)
        fct_rows = con.execute("select count(*) from marts.fct_daily_usage").fetchone()[0]
        con.close()
        if args.check:
            compare_with_full_refresh(data_dir, work / "full-refresh")
        print(f"usage rows: {args.rows:,}; fct_daily_usage rows: {fct_rows:,}; models: {len(models)}")
        print(f"full build (models + seeds via dbt):     {full:8.1f}s")
        print(f"same compiled SQL straight on DuckDB:    {direct:8.1f}s   dbt/direct ratio = {full / direct:.2f}")
        print(f"  of which raw.<dataset> registered:     {direct_raw:8.1f}s   (on-run-start hook in dbt: "
              f"full {_hook_seconds(full_result):.1f}s, last incremental {_hook_seconds(incremental_result):.1f}s)")
        print(f"data tests on the full data:             {tests:8.1f}s")
        for number, seconds in enumerate(incrementals, 1):
            print(f"incremental build after new day {number} ({new_rows:,} rows): {seconds:8.1f}s   "
                  f"incremental/full ratio = {seconds / full:.2f}")
        if len(incrementals) > 1:
            middle = statistics.median(incrementals)
            print(f"median of the {len(incrementals)} incremental builds:   {middle:8.1f}s   "
                  f"incremental/full ratio = {middle / full:.2f}")
        for label, result in (("full", full_result), ("incremental", incremental_result)):
            print(f"slowest models ({label} build via dbt): {_slowest(result)}")
        print(f"load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
