"""Fixtures of the BI tests; helpers live in bi_fixtures.py and bi_browser.py (importable here)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "False")

from bi_fixtures import make_fake_warehouse  # noqa: E402


@pytest.fixture
def fake_data_dir(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    """A data dir whose warehouse.duckdb holds small mart-like tables; returns (dir, rows per mart)."""
    data_dir = tmp_path / "data"
    counts = make_fake_warehouse(data_dir / "warehouse.duckdb")
    return data_dir, counts
