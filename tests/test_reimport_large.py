"""Re-importing a large usage file (every row already there) works without any memory
setting, adds nothing and rewrites nothing, within the memory goal. The timings are in
bench/bench_import.py (same generator, ratios against DuckDB measured in the same run)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

from extractor.dataset import DataDir

ROOT = Path(__file__).resolve().parents[1]
ROWS = int(os.environ.get("APS_USAGE_REIMPORT_ROWS", "2000000"))
MEMORY_GOAL_MB = 400

# each import in its own process, so that its peak RSS (VmHWM) is the import's own
_CHILD = r"""
import json, sys
from extractor.config import Settings
from extractor.importing import import_paths
report = import_paths(Settings(data_dir=sys.argv[2], quiet=True), [sys.argv[1]])
peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"rows": report.rows, "dataset_rows": report.dataset_rows, "peak_mb": peak_kb / 1024,
                  "duckdb_loaded": "duckdb" in sys.modules}))
"""


def _import(csv: Path, data: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "APS_USAGE_DUCKDB_MEMORY"}  # no tuning
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(csv), str(data)], capture_output=True, text=True,
                          env={**env, "PYTHONPATH": str(ROOT)}, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_2m_row_file_imported_twice(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_import", ROOT / "bench" / "bench_import.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    csv = tmp_path / "usage_report.csv"
    bench.generate_csv(csv, ROWS)  # ~2,000 users, 40 products, a year of days
    data = tmp_path / "data"

    first = _import(csv, data)
    dd = DataDir(data)
    files = dd.data_files("premium_usage_files")
    stored = first["dataset_rows"]["premium_usage_files"]
    assert first["rows"] == ROWS and 0 < stored <= ROWS  # the generator may repeat a row: kept once
    # exactly the file's distinct rows (its values are written one way each, so distinct text
    # is distinct typed values): the month files written while staging lose none, keep no repeat
    import duckdb

    distinct = duckdb.sql(f"SELECT count(*) FROM (SELECT DISTINCT * FROM read_csv('{csv}', all_varchar=true))")
    assert stored == distinct.fetchall()[0][0] < ROWS
    assert dd.read("premium_usage_files").num_rows == stored
    assert dd.read_state(["premium_usage_files"])["last_run"]["premium_usage_files"]["rows_received"] == ROWS

    second = _import(csv, data)
    assert second["rows"] == ROWS and second["dataset_rows"] == {"premium_usage_files": stored}
    assert dd.data_files("premium_usage_files") == files  # nothing rewritten
    latest = dd.history("premium_usage_files")[0]
    assert (latest["rows_added"], latest["rows_removed"], latest["command"]) == (0, 0, "import")
    for run in (first, second):
        assert run["peak_mb"] < MEMORY_GOAL_MB, f"peak RSS {run['peak_mb']:.0f} MB"
        assert not run["duckdb_loaded"]  # an append reads stored hashes with pyarrow (30-45 MB RSS saved)


def test_the_cli_loads_neither_duckdb_nor_the_bi_writers():
    # they load where SQL runs or a publish starts: an import through the CLI does not carry them
    code = ("import sys, extractor.cli; "
            "print(sorted(m for m in ('duckdb', 'plotly', 'extractor.publish.publisher') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"
