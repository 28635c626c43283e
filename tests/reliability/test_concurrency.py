"""Two writers on one data dir at once: the second one refuses at once with one clear line and
exit code 5 (LockedError) or, through the Python API, waits for the lock; the first one's
result is exactly what it would have been alone; nothing is corrupted."""

from __future__ import annotations

import threading
import time

import pytest

from extractor.dataset import DataDir
from extractor.errors import LockedError

from .conftest import (
    content,
    error_lines,
    fingerprint,
    invoke,
    leftover_transactions,
    ok,
    stray_files,
    subprocess_run,
    wait_for_lock_holder,
)
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


# -- two machines: no shared lock, Delta's conflict check alone --------------------------------
def _usage_csv(folder, rows: int):
    body = "\n".join(f"Acme,U{j},u{j}@acme.example,F,L,2026-0{1 + j % 3}-{1 + j % 28:02d},Revit,Flex,{j},flex,2026"
                     for j in range(rows))
    return put(folder, "usage.csv", HEADER + "\n" + body + "\n")


def _released_when_all_wait(release, writers: int = 2, procs=(), timeout: float = 300) -> None:
    """Every writer has written its files and waits before committing: let them commit."""
    deadline = time.monotonic() + timeout
    while (waiting := len(list(release.parent.glob(release.name + ".*")))) < writers:
        ended = [p.args[-1] for p in procs if p.poll() is not None]
        assert not ended, f"writer(s) of {ended} ended before the commit ({waiting} of {writers} waiting)"
        assert time.monotonic() < deadline, f"only {waiting} of the {writers} writers reached the commit"
        time.sleep(0.05)
    release.touch()


def _each_row_once(dd: DataDir, rows: int) -> None:
    table = dd.read("premium_usage_files")
    hashes = table.column("_row_hash").to_pylist()
    assert len(hashes) == rows + 3 and len(set(hashes)) == len(hashes), (len(hashes), len(set(hashes)))
    history = dd.history("premium_usage_files")
    assert [h["rows_added"] for h in history[:2]] == [0, rows], history[:2]  # the loser added nothing


def test_two_machines_import_the_same_file_at_once_locally(fast_env, tmp_path):
    """Two writers on one local folder that do not share the lock (two machines on a network
    share): both read the table, both write the same rows, both commit at once. Delta refuses
    the second commit, it is made again from the winner's version and adds nothing."""
    from extractor.importing import read_table

    data_dir, release, rows = tmp_path / "data", tmp_path / "release", 2000
    ok(invoke(data_dir, None, "import", put(tmp_path / "in0", "usage.csv", GOOD)))
    imported = read_table(_usage_csv(tmp_path / "in", rows))
    fast_env.setenv("APS_USAGE_PAUSE_AT", "mid-commit")
    fast_env.setenv("APS_USAGE_PAUSE_UNTIL", str(release))
    errors = []

    def machine(name: str) -> None:
        dd = DataDir(data_dir)
        dd.lock_path, dd.tmp_dir = tmp_path / f"{name}.lock", tmp_path / f"{name}-tmp"  # its own disk
        try:
            with dd.lock(f"import on {name}"), dd.transaction() as tx:
                tx.write("premium_usage_files", imported.table, source=imported.source)
        except Exception as err:  # noqa: BLE001 (reported by the assertion below)
            errors.append(repr(err))

    threads = [threading.Thread(target=machine, args=(name,)) for name in ("a", "b")]
    for t in threads:
        t.start()
    _released_when_all_wait(release)
    for t in threads:
        t.join(120)
    assert not errors, errors
    _each_row_once(DataDir(data_dir), rows)
    assert not stray_files(data_dir)


def test_two_machines_import_the_same_file_at_once_on_s3(s3_url, sandbox, tmp_path):
    """The same on the S3 stand-in, as two processes with their own work dirs (two machines)."""
    data_dir, release, rows = s3_url, tmp_path / "release", 2000
    ok(invoke(data_dir, None, "import", put(tmp_path / "in0", "usage.csv", GOOD)))
    csv = _usage_csv(tmp_path / "in", rows)
    pause = {"APS_USAGE_PAUSE_AT": "mid-commit", "APS_USAGE_PAUSE_UNTIL": str(release)}
    procs = [subprocess_run(data_dir, sandbox.base_url, ["import", str(csv)],
                            {**pause, "APS_USAGE_WORK_DIR": str(tmp_path / f"machine-{name}")})
             for name in ("a", "b")]
    try:
        _released_when_all_wait(release, procs=procs)
    finally:
        results = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    _each_row_once(DataDir(data_dir), rows)


def test_a_writer_that_keeps_losing_fails_with_one_line(fast_env, tmp_path, monkeypatch):
    """When every attempt loses to another writer, the run fails with one line (exit 5) and
    leaves the table as the other writers made it."""
    from deltalake.exceptions import CommitFailedError

    import extractor.dataset as dataset

    data_dir = tmp_path / "data"
    ok(invoke(data_dir, None, "import", put(tmp_path / "in0", "usage.csv", GOOD)))
    before = fingerprint(data_dir)
    attempts = []

    def always_loses(self, spec, writes):
        attempts.append(spec.name)
        raise CommitFailedError("Failed to commit transaction: Concurrent transaction failed.")

    monkeypatch.setattr(dataset.Transaction, "_commit_dataset", always_loses)
    monkeypatch.setattr(dataset, "COMMIT_ATTEMPTS", 3)
    result = invoke(data_dir, None, "import", _usage_csv(tmp_path / "in", 10))
    assert result.exit_code == 5, result.output
    assert len(error_lines(result)) == 1 and "other writers kept committing" in error_lines(result)[0]
    assert attempts == ["premium_usage_files"] * 3
    assert fingerprint(data_dir) == before


def test_four_machines_import_at_once_on_s3(s3_url, sandbox, tmp_path):
    """Four machines import four files into one S3 data dir, committing at the same moment:
    each commit that loses is made again (up to APS_USAGE_COMMIT_ATTEMPTS=5), so all four
    succeed and the table holds each file's rows once."""
    release = tmp_path / "release"
    files = []
    for i in range(4):
        rows = "\n".join(f"Team {i},U{i}{j},u{i}_{j}@acme.example,F,L,2026-0{1 + i}-{1 + j % 28:02d},Revit,Flex,{j},flex,2026"
                         for j in range(500))
        files.append(put(tmp_path / "in", f"part{i}.csv", HEADER + "\n" + rows + "\n"))
    pause = {"APS_USAGE_PAUSE_AT": "mid-commit", "APS_USAGE_PAUSE_UNTIL": str(release)}
    procs = [subprocess_run(s3_url, sandbox.base_url, ["import", str(f)],
                            {**pause, "APS_USAGE_WORK_DIR": str(tmp_path / f"machine-{i}")})
             for i, f in enumerate(files)]
    try:
        _released_when_all_wait(release, writers=4, procs=procs)
    finally:
        results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, results
    dd = DataDir(s3_url)
    teams = dd.read("premium_usage_files").column("team_name").to_pylist()
    assert sorted(set(teams)) == [f"Team {i}" for i in range(4)] and len(teams) == 4 * 500
    assert [h["rows_added"] for h in dd.history("premium_usage_files")[:5]] == [500] * 4 + [None]  # the create
