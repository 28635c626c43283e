"""A damaged data dir (a torn copy, a sync tool, a crash of another program, hand edits):
every command either repairs what it can prove is safe to repair, or stops with one line
naming the damaged file, without changing anything."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from .conftest import error_lines, fingerprint, invoke, is_one_line_error, leftover_transactions, ok
from .hostile import GOOD, put


def fingerprint_files(data_dir: Path) -> dict[str, bytes]:
    """Every file under raw/ by content (when the log itself is damaged)."""
    return {str(p): p.read_bytes() for p in sorted((data_dir / "raw").rglob("*")) if p.is_file()}

NEXT_DAY = GOOD.replace("2026-01-05", "2026-01-09")


@pytest.fixture(scope="module")
def healthy(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("damaged")
    ok(invoke(root / "data", None, "import", put(root / "in", "usage.csv", GOOD)))
    return root / "data"


@pytest.fixture
def data_dir(healthy, tmp_path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(healthy, copy)
    return copy


def refused_naming(result, name: str) -> None:
    assert result.exit_code != 0 and is_one_line_error(result), f"{result.output}\n{result.exception!r}"
    assert name in error_lines(result)[0], error_lines(result)[0]


def test_torn_commit_file_is_named(data_dir, tmp_path):
    log = sorted((data_dir / "raw" / "premium_usage_files" / "_delta_log").glob("*.json"))[-1]
    log.write_text(log.read_text()[:40])
    before = fingerprint_files(data_dir)
    refused_naming(invoke(data_dir, None, "import", put(tmp_path / "in", "next.csv", NEXT_DAY)), "premium_usage_files")
    refused_naming(invoke(data_dir, None, "status"), "premium_usage_files")
    assert fingerprint_files(data_dir) == before


def test_a_table_deleted_by_hand_is_created_again_empty(data_dir, tmp_path):
    shutil.rmtree(data_dir / "raw" / "premium_users")
    ok(invoke(data_dir, None, "import", put(tmp_path / "in", "next.csv", NEXT_DAY)))
    assert (data_dir / "raw" / "premium_users" / "_delta_log").is_dir()


def test_scratch_of_a_dead_run_is_cleared(data_dir, tmp_path):
    tx = data_dir / ".tmp" / "tx-deadbeef"
    tx.mkdir(parents=True)
    (tx / "premium_usage_files-00001.arrow").write_bytes(b"\x00" * 100)
    ok(invoke(data_dir, None, "import", put(tmp_path / "in", "next.csv", NEXT_DAY)))
    assert not leftover_transactions(data_dir)


def test_lock_file_left_by_a_dead_process(data_dir, tmp_path):
    (data_dir / "state" / "lock").write_text(json.dumps({"pid": 999999, "purpose": "extract premium",
                                                         "since": "2026-01-01T00:00:00+00:00"}))
    ok(invoke(data_dir, None, "import", put(tmp_path / "in", "next.csv", NEXT_DAY)))


@pytest.mark.parametrize("command", ["import", "status"])
def test_torn_partition_file_is_named(data_dir, tmp_path, command):
    part = next((data_dir / "raw" / "premium_usage_files").rglob("*.parquet"))
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
    before = fingerprint(data_dir)
    args = ["import", put(tmp_path / "in", "next.csv", NEXT_DAY)] if command == "import" else ["status"]
    refused_naming(invoke(data_dir, None, *args), str(part.relative_to(data_dir.parent)).split("/", 1)[-1])
    assert fingerprint(data_dir) == before
