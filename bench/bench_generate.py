"""Benchmark: sandbox data generation throughput (goal: 10 million usage rows in under 60 s).

Prints usage rows per second, and the ratio of generation time to a baseline measured in the
same run: filling plain numpy arrays with as many values as the usage table holds (rows x
columns), the cost floor of materialising that much data at all.

    /work/venv/bin/python bench/bench_generate.py              # 10 million rows
    /work/venv/bin/python bench/bench_generate.py --rows 1e6   # quicker
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import time

import numpy as np

from extractor.sandbox.data import generate


def baseline_fill(rows: int, columns: int) -> float:
    """Seconds to fill `columns` numpy arrays of `rows` values (random draws and a cast)."""
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    arrays = [rng.random(rows, dtype=np.float32).astype(np.int64) for _ in range(columns)]
    elapsed = time.perf_counter() - started
    del arrays
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=float, default=10_000_000, help="target usage rows (default 10 million)")
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    pilot_users = 2000
    pilot = generate(seed=args.seed, users=pilot_users, days=args.days, end_date="2026-10-31")
    users = max(100, int(args.rows / (pilot.usage.num_rows / pilot_users)))
    del pilot
    gc.collect()

    started, cpu_started = time.perf_counter(), time.process_time()
    data = generate(seed=args.seed, users=users, days=args.days, end_date="2026-10-31")
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    rows = data.usage.num_rows
    columns = data.usage.num_columns
    tf_rows = data.tokenflex_usage.num_rows
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    del data
    gc.collect()
    base = baseline_fill(rows, columns)

    print(f"users={users} days={args.days} usage_rows={rows:,} tokenflex_rows={tf_rows:,} columns={columns}")
    print(f"generate: {elapsed:.2f} s  -> {rows / elapsed:,.0f} usage rows/s  (goal: 10M rows < 60 s: "
          f"{'met' if rows >= 10_000_000 and elapsed < 60 else ('n/a' if rows < 10_000_000 else 'MISSED')})")
    print(f"process CPU time: {cpu:.2f} s (all threads; wall time above depends on how busy the machine is: "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    print(f"baseline (numpy fill of {rows:,} x {columns} values): {base:.2f} s")
    print(f"ratio generate / baseline: {elapsed / base:.1f}x")
    print(f"peak RSS: {peak_mb:,.0f} MB")


if __name__ == "__main__":
    main()
