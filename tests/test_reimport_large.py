"""Re-importing a large usage file (every row already there) works without any memory
setting, adds nothing and rewrites nothing. The 2M-row figures are in bench/bench_import.py."""

from __future__ import annotations

import datetime as dt
import os
import random

from extractor.config import Settings
from extractor.dataset import DataDir
from extractor.importing import import_paths

ROWS = int(os.environ.get("APS_USAGE_REIMPORT_ROWS", "200000"))


def test_a_large_file_imported_twice(tmp_path, monkeypatch):
    monkeypatch.delenv("APS_USAGE_DUCKDB_MEMORY", raising=False)
    rng = random.Random(7)
    start = dt.date(2025, 11, 1)
    lines = ["team_alias,autodesk_id,email,day_used,product_name,offering_name,tokens_used"]
    for i in range(ROWS):
        day = start + dt.timedelta(days=rng.randrange(365))
        lines.append(f"Team {i % 5},U{i % 3000},u{i % 3000}@x.example,{day},P{rng.randrange(40)},Flex,{i}")
    path = tmp_path / "usage.csv"
    path.write_text("\n".join(lines) + "\n")
    settings = Settings(data_dir=tmp_path / "data", quiet=True)
    first = import_paths(settings, [path])
    dd = DataDir(tmp_path / "data")
    files = dd.data_files("premium_usage_files")
    assert first.dataset_rows == {"premium_usage_files": ROWS}
    second = import_paths(settings, [path])
    assert second.rows == ROWS and second.dataset_rows == {"premium_usage_files": ROWS}
    assert dd.data_files("premium_usage_files") == files  # nothing rewritten
    latest = dd.history("premium_usage_files")[0]
    assert (latest["rows_added"], latest["rows_removed"], latest["command"]) == (0, 0, "import")
