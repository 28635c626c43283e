"""Benchmark: API extraction (Premium usage queries + exports, Token Flex exports) from the
sandbox, against a naive client fetching the same usage rows in the same run.

    python bench/bench_extract.py [--users 500] [--days 365] [--faults SPEC]

Starts a sandbox (its own process, real HTTP on 127.0.0.1, time_scale 0.01) and then, each in
a fresh subprocess so that peak memory is its own:
1. ``extract_premium`` + ``extract_tokenflex`` through the Python API: monthly usage-query
   windows, paging, Users/Subscriptions exports, Token Flex exports per usage category,
   typing, the transactional partitioned write with de-duplication;
2. the baseline, a naive client for the same rows: one usage query per team for the whole
   range with the largest page, rows appended to one Parquet file; one Token Flex export per
   category, each CSV read by pyarrow and written to Parquet (no windows, no typing, no
   partitions, no de-duplication, no Users/Subscriptions exports, no retry machinery).
Prints wall time, usage rows/s, the ratio extract/baseline and peak RSS. Asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CHILD = r"""
import datetime as dt, json, os, resource, sys, time
sys.path.insert(0, os.environ["BENCH_ROOT"])
mode, base_url, data_dir, since, until = sys.argv[1:6]
since, until = dt.date.fromisoformat(since), dt.date.fromisoformat(until)
from extractor.auth import Auth
from extractor.config import Settings
t0 = time.perf_counter()
settings = Settings(data_dir=data_dir, base_url=base_url, quiet=True)
auth = Auth(settings)
rows = 0
if mode in ("extract", "premium", "tokenflex"):
    from extractor.premium import extract_premium
    from extractor.tokenflex import extract_tokenflex
    if mode != "tokenflex":
        rows += extract_premium(settings, auth, since=since, until=until).rows.get("premium_usage", 0)
    if mode != "premium":
        rows += extract_tokenflex(settings, auth, since=since, until=until).rows.get("tokenflex_usage", 0)
else:
    import pyarrow as pa, pyarrow.csv as pacsv, pyarrow.parquet as pq
    from urllib.parse import quote
    from extractor.http import ApiClient
    from extractor.premium import USAGE_FIELDS
    from extractor.tokenflex import CATEGORY_FIELDS, GENERAL_FIELDS
    api = ApiClient(settings, auth)
    writer = None
    if mode != "baseline-tokenflex":
        for team in api.get_json("/insights/v1/contexts"):
            cid = team["contextId"]
            body = {"fields": list(USAGE_FIELDS), "metrics": ["totalTokens"], "contextId": cid,
                    "where": f"usageDate >= '{since}' AND usageDate <= '{until}'"}
            qid = api.post_json("/insights/v1/usage-queries", params={"contextId": cid}, json=body)["id"]
            offset = 0
            while True:
                page = api.get_json(f"/insights/v1/usage-queries/{qid}", params={"offset": offset, "limit": 10000})
                if page["status"] != "COMPLETED":
                    time.sleep(0.02)
                    continue
                if page["rows"]:
                    cols = list(zip(*page["rows"]))
                    table = pa.table({c: pa.array([None if v is None else str(v) for v in col])
                                      for c, col in zip(page["columns"], cols)})
                    writer = writer or pq.ParquetWriter(os.path.join(data_dir, "naive.parquet"), table.schema)
                    writer.write_table(table)
                offset += len(page["rows"])
                rows += len(page["rows"])
                if offset >= page["pagination"]["totalResults"]:
                    break
        if writer:
            writer.close()
    if mode != "baseline-premium":
        number = api.get_json("/tokenflex/v1/contract")[0]["contractNumber"]
        for i, (category, fields) in enumerate(CATEGORY_FIELDS.items()):
            body = {"fields": GENERAL_FIELDS + fields, "metrics": ["tokensConsumed"], "usageCategory": [category],
                    "where": f"usageDate >= '{since}' AND usageDate <= '{until}'", "downloadFileName": f"b{i}"}
            key = api.post_json(f"/tokenflex/v1/export/{number}/requests", json=body)["requestKey"]
            while True:
                info = api.get_json(f"/tokenflex/v1/export/{number}/requests/{quote(key, safe='')}")
                if info["requestStatus"] == "Download":
                    break
                time.sleep(0.02)
            path = os.path.join(data_dir, f"b{i}.csv")
            api.download_to(info["downloadUrl"], path)
            table = pacsv.read_csv(path)
            pq.write_table(table, os.path.join(data_dir, f"b{i}.parquet"))
            rows += table.num_rows
    api.close()
elapsed = time.perf_counter() - t0
print(json.dumps({"seconds": elapsed, "rows": rows, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_child(mode: str, base_url: str, since: dt.date, until: dt.date) -> dict:
    env = {**os.environ, "BENCH_ROOT": str(ROOT), "APS_TOKEN_STORE": "file", "APS_POLL_INTERVAL": "0.02",
           "APS_POLL_MAX_INTERVAL": "0.2", "APS_HTTP_BACKOFF_CAP": "0.2", "APS_TOKENFLEX_RATE_PER_MIN": "480"}
    env.update(APS_CLIENT_ID="sandbox-client", APS_CLIENT_SECRET="sandbox-secret", APS_PAT="sandbox-pat")
    with tempfile.TemporaryDirectory() as data_dir:
        out = subprocess.run([sys.executable, "-c", _CHILD, mode, base_url, data_dir, str(since), str(until)],
                             env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


_SANDBOX = r"""
import os, sys, time
sys.path.insert(0, os.environ["BENCH_ROOT"])
from extractor.sandbox.app import create_app
from extractor.sandbox.server import start_in_thread
users, days, faults = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] or None
app = create_app(seed=11, users=users, days=days, end_date="2026-10-31", time_scale=0.01, faults=faults)
server = start_in_thread(app)
d = app.state.data
print(server.base_url, d.start_date, d.end_date, d.usage.num_rows, d.tokenflex_usage.num_rows, flush=True)
sys.stdin.read()  # serve until the parent closes stdin
server.stop()
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--only", choices=("premium", "tokenflex"), help="extract only one API")
    parser.add_argument("--faults", default="", help="sandbox fault spec, e.g. 429:0.05,500:0.05,truncate:0.03")
    args = parser.parse_args()

    # The sandbox runs in its own process: Linux keeps a parent's peak RSS across fork+exec,
    # so a big parent would inflate the children's measured peaks.
    t0 = time.perf_counter()
    sandbox = subprocess.Popen([sys.executable, "-c", _SANDBOX, str(args.users), str(args.days), args.faults],
                               env={**os.environ, "BENCH_ROOT": str(ROOT)}, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    base_url, start, end, usage_rows, tf_rows = sandbox.stdout.readline().split()
    since, until = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    print(f"sandbox: {args.users} users, {args.days} days, {int(usage_rows):,} Premium usage rows, "
          f"{int(tf_rows):,} Token Flex rows (started in {time.perf_counter() - t0:.1f}s)")
    try:
        baseline = run_child(f"baseline-{args.only}" if args.only else "baseline", base_url, since, until)
        extract = run_child(args.only or "extract", base_url, since, until)
    finally:
        sandbox.stdin.close()
        sandbox.wait(timeout=30)
    label = f"extract {args.only or 'premium + tokenflex'}"
    for name, r in ((f"baseline {args.only or 'premium + tokenflex'} (naive)", baseline), (label, extract)):
        print(f"{name:40} {r['seconds']:7.2f}s  {r['rows']:>9,} usage rows  {r['rows'] / r['seconds']:>9,.0f} rows/s  "
              f"peak {r['peak_mb']:6.0f} MB")
    print(f"ratio extract/baseline (wall time): {extract['seconds'] / baseline['seconds']:.2f}x"
          + ("" if args.only == "tokenflex" else " (the extraction also runs the Users/Subscriptions exports, "
             "which the baseline does not)"))


if __name__ == "__main__":
    main()
