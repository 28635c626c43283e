"""Two writers on one data dir at once: the second one refuses at once with one clear line and
exit code 5 (LockedError) or, through the Python API, waits for the lock; the first one's
result is exactly what it would have been alone; nothing is corrupted."""

from __future__ import annotations

import threading
import time

import pytest

from extractor.dataset import DataDir
from extractor.errors import LockedError

from .conftest import (content, error_lines, fingerprint, invoke, leftover_transactions, ok, stray_files,
                       subprocess_run, wait_for_lock_holder)
from .hostile import GOOD, HEADER, put

RANGE = ("2026-10-01", "2026-10-06")


@pytest.fixture
def slow_sandbox(start_sandbox):
    """Every API call answers after 0.3 s: an extraction holds the lock for a few seconds."""
    return start_sandbox(faults="slow:1", slow_seconds=0.3)


@pytest.mark.parametrize("second", ["import", "extract premium"])
def test_second_writer_is_refused_while_an_extraction_runs(second, slow_sandbox, sandbox, fast_env, tmp_path):
    data_dir, alone = tmp_path / "data", tmp_path / "alone"
    extraction = ["extract", "tokenflex", "--since", RANGE[0], "--until", RANGE[1]]
    ok(invoke(alone, sandbox.base_url, *extraction))  # what the first writer produces on its own

    first = subprocess_run(data_dir, slow_sandbox.base_url, extraction)
    try:
        wait_for_lock_holder(data_dir, first.pid)
        if second == "import":
            args = ["import", put(tmp_path / "in", "usage.csv", GOOD)]
        else:
            args = ["extract", "premium", "--team", "4865648", "--since", RANGE[0], "--until", RANGE[1]]
        started = time.monotonic()
        result = invoke(data_dir, sandbox.base_url, *args)
        assert first.poll() is None, "the first writer ended before the second started; the test proves nothing"
    finally:
        out, err = first.communicate(timeout=120)
    assert result.exit_code == 5, result.output
    lines = error_lines(result)
    assert len(lines) == 1 and "in use by another aps-usage run" in lines[0] and f"pid {first.pid}" in lines[0], lines
    assert time.monotonic() - started < 10, "the refusal should not wait"
    assert first.returncode == 0, err
    for dataset in ("tokenflex_usage", "tokenflex_contracts", "tokenflex_enrichment"):
        assert content(data_dir, dataset) == content(alone, dataset), dataset
    assert content(data_dir, "premium_usage_files") == [] and content(data_dir, "premium_usage") == []
    assert not stray_files(data_dir) and not leftover_transactions(data_dir)
    ok(invoke(data_dir, sandbox.base_url, *args))  # and it works once the first is done


def test_import_refused_while_the_lock_is_held_in_process(fast_env, tmp_path):
    data_dir = tmp_path / "data"
    ok(invoke(data_dir, None, "import", put(tmp_path / "in", "usage.csv", GOOD)))
    before = fingerprint(data_dir)
    holder = DataDir(data_dir)
    with holder.lock("a test holding the lock"):
        result = invoke(data_dir, None, "import", put(tmp_path / "in", "more.csv", HEADER + "\nA,U9,z@x.example,Z,Z,2026-01-09,Revit,Flex,1,flex,2026\n"))
        assert result.exit_code == 5
        assert "a test holding the lock" in error_lines(result)[0]
    assert fingerprint(data_dir) == before


def test_python_api_waits_for_the_lock(tmp_path):
    dd_a, dd_b = DataDir(tmp_path / "data"), DataDir(tmp_path / "data")
    release = threading.Event()
    holding = threading.Event()

    def hold():
        with dd_a.lock("first"):
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    holding.wait(10)
    with pytest.raises(LockedError):
        with dd_b.lock("second", wait=0.3):
            pass
    threading.Timer(0.5, release.set).start()
    started = time.monotonic()
    with dd_b.lock("second", wait=10):
        waited = time.monotonic() - started
    thread.join()
    assert 0.3 < waited < 9


def test_many_concurrent_imports_never_corrupt(sandbox, fast_env, tmp_path):
    """Four imports of different files race for one data dir: each one either imports all of
    its rows or is refused (exit 5); the result holds exactly the winners' rows."""
    data_dir = tmp_path / "data"
    DataDir(data_dir)
    files = []
    for i in range(4):
        rows = "\n".join(f"Team {i},U{i}{j},u{i}_{j}@acme.example,F,L,2026-0{1 + i}-{1 + j % 28:02d},Revit,Flex,{j},flex,2026"
                         for j in range(3000))
        files.append(put(tmp_path / "in", f"part{i}.csv", HEADER + "\n" + rows + "\n"))
    procs = [subprocess_run(data_dir, sandbox.base_url, ["import", str(f)]) for f in files]
    results = [(p.wait(timeout=180), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    codes = [code for code, _ in results]
    assert set(codes) <= {0, 5}, results
    assert 0 in codes
    for code, err in results:
        if code == 5:
            assert "in use by another aps-usage run" in err
    winners = {f"Team {i}" for i, code in enumerate(codes) if code == 0}
    table = DataDir(data_dir).read("premium_usage_files")
    teams = table.column("team_name").to_pylist()
    assert set(teams) == winners
    assert len(teams) == 3000 * len(winners)
    assert len(set(table.column("_row_hash").to_pylist())) == len(teams)
    assert not stray_files(data_dir) and not leftover_transactions(data_dir)


def test_second_writer_queues_with_lock_wait(slow_sandbox, sandbox, fast_env, tmp_path):
    """APS_USAGE_LOCK_WAIT: the second writer waits for the first, then does its own work."""
    data_dir, alone = tmp_path / "data", tmp_path / "alone"
    extraction = ["extract", "tokenflex", "--since", RANGE[0], "--until", RANGE[1]]
    ok(invoke(alone, sandbox.base_url, *extraction))
    first = subprocess_run(data_dir, slow_sandbox.base_url, extraction)
    try:
        wait_for_lock_holder(data_dir, first.pid)
        fast_env.setenv("APS_USAGE_LOCK_WAIT", "120")
        assert first.poll() is None, "the first writer ended before the second started; the test proves nothing"
        result = invoke(data_dir, None, "import", put(tmp_path / "in", "usage.csv", GOOD))
    finally:
        _, err = first.communicate(timeout=120)
    ok(result)  # without waiting it would have been refused (exit 5): the first held the lock
    assert first.returncode == 0, err
    dd = DataDir(data_dir)
    first_written = max(dd.read("tokenflex_usage").column("_extracted_at").to_pylist())
    second_written = min(dd.read("premium_usage_files").column("_extracted_at").to_pylist())
    assert second_written > first_written, "the second writer's transaction began before the first committed"
    assert len(content(data_dir, "premium_usage_files")) == 3
    assert content(data_dir, "tokenflex_usage") == content(alone, "tokenflex_usage")
    assert not stray_files(data_dir) and not leftover_transactions(data_dir)
