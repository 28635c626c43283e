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


def test_state_file_that_is_not_json(data_dir, tmp_path):
    (data_dir / "state" / "state.json").write_text("{not json")
    before = fingerprint(data_dir)
    refused_naming(invoke(data_dir, None, "import", put(tmp_path / "in", "next.csv", NEXT_DAY)), "state.json")
    refused_naming(invoke(data_dir, None, "status"), "state.json")
    assert fingerprint(data_dir) == before


def test_unreadable_schema_file_is_rewritten(data_dir, tmp_path):
    (data_dir / "raw" / "premium_usage_files" / "schema.parquet").write_bytes(b"garbage")
    ok(invoke(data_dir, None, "import", put(tmp_path / "in", "next.csv", NEXT_DAY)))
    import pyarrow.parquet as pq

    assert pq.read_schema(data_dir / "raw" / "premium_usage_files" / "schema.parquet").names


@pytest.mark.parametrize("commit", ['{"renames": [["a", "b"]', "", "\x00\x00"])
def test_torn_commit_journal_is_discarded(data_dir, tmp_path, commit):
    """A COMMIT.json that is not whole cannot be the commit point (it is renamed into place
    whole): the next writer drops that transaction and carries on."""
    tx = data_dir / ".tmp" / "tx-20260101T000000-deadbeef"
    tx.mkdir(parents=True)
    (tx / "COMMIT.json").write_text(commit)
    ok(invoke(data_dir, None, "import", put(tmp_path / "in", "next.csv", NEXT_DAY)))
    assert not leftover_transactions(data_dir)


def test_lock_file_left_by_a_dead_process(data_dir, tmp_path):
    (data_dir / "state" / "lock").write_text(json.dumps({"pid": 999999, "purpose": "extract premium",
                                                         "since": "2026-01-01T00:00:00+00:00"}))
    ok(invoke(data_dir, None, "import", put(tmp_path / "in", "next.csv", NEXT_DAY)))


@pytest.mark.parametrize("command", ["import", "status"])
def test_torn_partition_file_is_named(data_dir, tmp_path, command):
    part = next((data_dir / "raw" / "premium_usage_files").rglob("part.parquet"))
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
    before = fingerprint(data_dir)
    args = ["import", put(tmp_path / "in", "next.csv", NEXT_DAY)] if command == "import" else ["status"]
    refused_naming(invoke(data_dir, None, *args), str(part.relative_to(data_dir.parent)).split("/", 1)[-1])
    assert fingerprint(data_dir) == before
