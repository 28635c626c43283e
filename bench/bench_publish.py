"""Benchmark: `publish` (Parquet + Excel-safe CSV per mart) against DuckDB's own COPY of the same rows.

The baseline is measured in the same run: ``COPY marts.x TO '...' (FORMAT parquet|csv)``,
which does no type conversion, no formula neutralising and no atomic rename. The ratio
says what our safety costs. Run: ``python bench/bench_publish.py [rows]``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import duckdb

from extractor.config import Settings
from extractor.publish import publish


def make_warehouse(path: Path, rows: int) -> None:
    con = duckdb.connect(str(path))
    con.execute("CREATE SCHEMA marts")
    con.execute(f"""
        CREATE TABLE marts.usage_by_cost_center AS
        SELECT 'CC-' || (i % 40) AS cost_center, 'user' || (i % 5000) || '@example.com' AS email,
               CASE WHEN i % 97 = 0 THEN '=cmd|'' /C calc''!A0' ELSE 'Name ' || i END AS full_name,
               'Product ' || (i % 30) AS product_name, DATE '2026-01-01' + (i % 300)::INT AS usage_month,
               (i % 28)::BIGINT AS usage_days, (i % 1000) * 1.5 AS tokens, 'flex' AS licensing,
               sum(i % 3) OVER (PARTITION BY i % 10) AS hugeint_total
        FROM range({rows}) t(i)""")
    con.close()


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 300_000
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        make_warehouse(data_dir / "warehouse.duckdb", rows)
        settings = Settings(data_dir=data_dir, quiet=True)

        def baseline() -> None:
            con = duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True)
            out = Path(tmp) / "baseline"
            out.mkdir(exist_ok=True)
            con.execute(f"COPY marts.usage_by_cost_center TO '{out}/m.parquet' (FORMAT parquet)")
            con.execute(f"COPY marts.usage_by_cost_center TO '{out}/m.csv' (FORMAT csv, HEADER)")
            con.close()

        base, ours = [], []
        for _ in range(3):  # interleaved, best of three: the machine is shared
            base.append(timed(baseline))
            ours.append(timed(lambda: publish(settings, {"parquet", "csv"})))
        base, ours = min(base), min(ours)
        print(f"publish parquet+csv, {rows:,} rows: {ours:.2f} s; DuckDB COPY baseline {base:.2f} s; "
              f"ratio {ours / base:.1f}x")


if __name__ == "__main__":
    main()
