"""Benchmark: import of a big hand-downloaded usage CSV into the Delta dataset, against DuckDB
on the same file.

    python bench/bench_import.py [--rows 2000000] [--rounds 3] [--workdir DIR] [--keep]

Generates a usage report CSV (the shape of a Premium "Usage" export), then, each in a fresh
subprocess so that peak memory is the run's own (1., 3. and 4. once per round, by turns, so
that the host's drift from minute to minute falls on both sides of each ratio; the ratios
printed are each round's and their median):
1. the baseline: DuckDB ``COPY (FROM read_csv(...)) TO 'x.parquet'`` on the same file;
2. references: the import's own reading and typing of the file with nothing written (the
   floor of any import built on that reader), and the same with the row hash
   (``extractor.rowhash.RowHasher``) computed too, in the same thread;
3. ``aps-usage import`` (``import_paths``) into an empty data dir (goal: within 1.5x of 1.);
4. the same import again into that data dir: every row a duplicate (goal: within 2.5x of 1.);
5. an API-style re-extraction of the last 3 days of one team (``Replace`` of a date range):
   which months' files the commit removed and added (goal: only the months it touches).
Prints wall time, rows/s, the ratios, and the peak RSS of each (VmHWM of the child) against
the goal of 400 MB. Asserts nothing about time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MEMORY_GOAL_MB = 400
HEADER = ("team_alias,autodesk_id,email,first_name,last_name,day_used,product_name,offering_name,"
          "tokens_used,usage_type,version,subscription_id,contract_number")


def generate_csv(path: Path, rows: int, seed: int = 1) -> None:
    """A realistic usage export: ~2,000 users, 40 products, one year of days, in chunks."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    products = [f"Product {i:02d}" for i in range(40)]
    offerings = ["AEC Collection", "PDM Collection", "Flex", "AutoCAD", "Revit"]
    teams = ["New York Office", "Munich Engineering", "Tokyo Studio", "Sao Paulo"]
    start = dt.date(2025, 11, 1).toordinal()
    chunk = 250_000
    with open(path, "wb") as out:
        out.write((HEADER + "\n").encode())
        written = 0
        while written < rows:
            n = min(chunk, rows - written)
            user = rng.integers(0, 2000, n)
            day = rng.integers(0, 365, n)
            product = rng.integers(0, len(products), n)
            offering = rng.integers(0, len(offerings), n)
            flex = offering == 2
            table = pa.table({
                "team_alias": pa.array(np.array(teams, dtype=object)[user % len(teams)]),
                "autodesk_id": pa.array([f"O2ID{u:06d}" for u in user]),
                "email": pa.array([f"user{u}@acme-design.example" for u in user]),
                "first_name": pa.array([f"First{u % 300}" for u in user]),
                "last_name": pa.array([f"Last{u % 700}" for u in user]),
                "day_used": pa.array([dt.date.fromordinal(start + int(d)).isoformat() for d in day]),
                "product_name": pa.array(np.array(products, dtype=object)[product]),
                "offering_name": pa.array(np.array(offerings, dtype=object)[offering]),
                "tokens_used": pa.array(np.where(flex, rng.integers(1, 40, n), 0).astype("float64")),
                "usage_type": pa.array(np.where(flex, "flex", "sus").astype(object)),
                "version": pa.array((2023 + rng.integers(0, 4, n)).astype(str).astype(object)),
                "subscription_id": pa.array([f"6{u % 97:013d}" for u in user]),
                "contract_number": pa.array([f"11000{u % 13:07d}" for u in user]),
            })
            pacsv.write_csv(table, out, write_options=pacsv.WriteOptions(include_header=False))
            written += n


_CHILD = r"""
import json, resource, sys, time
mode, csv_path, out = sys.argv[1], sys.argv[2], sys.argv[3]
t0 = time.perf_counter()
if mode in ("parse", "parse-hash"):  # read + type + check (+ hash), no dataset write
    from extractor.importing import iter_files
    from extractor.importing.convert import prepare
    from extractor.importing.importer import STAGE_ROWS
    from extractor.rowhash import RowHasher
    from extractor.schemas import DATASETS
    from extractor.staging import rechunked
    hasher = RowHasher(DATASETS["premium_usage_files"]) if mode == "parse-hash" else None
    rows = 0
    for _, opener in iter_files([csv_path]):
        with opener() as raw:
            for table in rechunked(prepare(raw).record_batches(), STAGE_ROWS):
                rows += table.num_rows
                if hasher is not None:
                    hasher.bits(table)
elif mode == "import":
    from extractor.config import Settings
    from extractor.importing import import_paths
    report = import_paths(Settings(data_dir=out, quiet=True), [csv_path])
    rows = report.rows
elif mode == "lag-window":  # out = the data dir of the imports
    import datetime as dt
    import pyarrow as pa
    from extractor.dataset import DataDir, Replace
    dd = DataDir(out)
    before = set(dd.data_files("premium_usage_files"))
    last = dd.stats()[[s["dataset"] for s in dd.stats()].index("premium_usage_files")]["max_date"]
    start = last - dt.timedelta(days=2)
    days = [start + dt.timedelta(days=i) for i in range(3)]
    team = "Tokyo Studio"  # one of the generated teams
    table = pa.table({"usage_date": days, "team_name": [team] * 3,
                      "product_name": ["Revit"] * 3, "tokens": [1.0] * 3})
    with dd.lock("extract premium"), dd.transaction() as tx:
        tx.write("premium_usage_files", table, source="lag window",
                 replace=Replace(match={"team_name": team}, date_from=start, date_to=last))
    after = set(dd.data_files("premium_usage_files"))
    month = lambda uri: uri.split("_month=")[1].split("/")[0]
    rows = 3
    extra = {"months_rewritten": sorted({month(u) for u in before ^ after}),
             "months_in_range": sorted({d.strftime("%Y-%m") for d in days}),
             "months_total": len({month(u) for u in after})}
else:
    import duckdb
    con = duckdb.connect()
    rows = con.execute(f"COPY (FROM read_csv('{csv_path}')) TO '{out}' (FORMAT parquet)").fetchone()[0]
seconds = time.perf_counter() - t0
# VmHWM: this process's own peak. ru_maxrss would also count the parent's memory at fork
# time on Linux (it survives exec), so it is only the fallback.
peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    with open("/proc/self/status") as status:
        peak_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
except (OSError, StopIteration):
    pass
print(json.dumps({"rows": rows, "seconds": seconds, "peak_mb": peak_kb / 1024, **globals().get("extra", {})}))
"""


def run_child(mode: str, csv_path: Path, out: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    # our modules' bytecode cached as an installed package's is (and as DuckDB's module is
    # compiled): without it each child compiled them again, 0.03-0.05 s of every import
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    proc = subprocess.run([sys.executable, "-c", _CHILD, mode, str(csv_path), str(out)],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--rounds", type=int, default=3,
                        help="baseline, import and re-import by turns this many times (median ratios)")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--generate-only", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate_only:
        generate_csv(args.generate_only, args.rows)
        return
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-import-"))
    work.mkdir(parents=True, exist_ok=True)
    csv_path = work / "usage_report.csv"
    try:
        t0 = time.perf_counter()
        # generated in a child too, so that this process stays small while it forks the others
        subprocess.run([sys.executable, __file__, "--generate-only", str(csv_path), "--rows", str(args.rows)],
                       check=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        size_mb = csv_path.stat().st_size / 2**20
        print(f"generated {args.rows:,} rows, {size_mb:,.0f} MiB in {time.perf_counter() - t0:.1f}s")
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
        parsed = run_child("parse", csv_path, work / "unused")  # the import's reading and typing alone
        hashed = run_child("parse-hash", csv_path, work / "unused")  # ... and the row hash
        rounds = []
        for round_ in range(max(1, args.rounds)):
            data = work / f"data{round_}"
            shutil.rmtree(data, ignore_errors=True)
            baseline = run_child("duckdb", csv_path, work / "duckdb.parquet")
            ours = run_child("import", csv_path, data)
            again = run_child("import", csv_path, data)  # every row already there
            rounds.append((baseline, ours, again))
            print(f"round {round_ + 1}: duckdb COPY {baseline['seconds']:.2f}s, import {ours['seconds']:.2f}s "
                  f"({ours['seconds'] / baseline['seconds']:.2f}x), re-import {again['seconds']:.2f}s "
                  f"({again['seconds'] / baseline['seconds']:.2f}x)")
        lag = run_child("lag-window", csv_path, data)
        # the table shows the round of the median import ratio (the lower one of an even count)
        by_ratio = sorted(rounds, key=lambda r: r[1]["seconds"] / r[0]["seconds"])
        baseline, ours, again = by_ratio[(len(rounds) - 1) // 2]
        for name, r in (("duckdb COPY (baseline)", baseline), ("read + type only (no write)", parsed),
                        ("read + type + hash (no write)", hashed),
                        ("import (empty dataset)", ours), ("re-import (all duplicates)", again)):
            print(f"{name:<29} {r['rows']:>12,} rows {r['seconds']:8.1f}s {r['rows'] / r['seconds']:>12,.0f} rows/s "
                  f"peak RSS {r['peak_mb']:7.0f} MB")
        first = statistics.median(o["seconds"] / b["seconds"] for b, o, _ in rounds)
        second = statistics.median(a["seconds"] / b["seconds"] for b, _, a in rounds)
        copy = statistics.median(b["seconds"] for b, _, _ in rounds)
        of = f"median of {len(rounds)} rounds" if len(rounds) > 1 else "one round"
        print(f"ratio import/duckdb COPY ({of}): {first:.2f}x (goal 1.5x: {'met' if first <= 1.5 else 'NOT met'}); "
              f"re-import/duckdb COPY: {second:.2f}x (goal 2.5x: {'met' if second <= 2.5 else 'NOT met'}); "
              f"the import's read + type alone/duckdb: {parsed['seconds'] / copy:.2f}x; "
              f"read + type + hash in one thread/duckdb: {hashed['seconds'] / copy:.2f}x")
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        peak = max(r["peak_mb"] for _, *imports in rounds for r in imports)
        print(f"import peak RSS {peak:.0f} MB: {'within' if peak <= MEMORY_GOAL_MB else 'OVER'} the "
              f"{MEMORY_GOAL_MB} MB goal ({peak / MEMORY_GOAL_MB:.2f}x of goal)")
        print(f"3-day lag window: months rewritten {lag['months_rewritten']} of {lag['months_total']}, "
              f"months in the window {lag['months_in_range']}: "
              f"{'only those' if set(lag['months_rewritten']) <= set(lag['months_in_range']) else 'MORE'}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
