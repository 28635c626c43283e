"""The whole pipeline against a data dir on object storage (moto's S3 server, Azurite):
extract -> import -> build -> publish, and the marts equal a local run's row for row; the
salt, the state and the published marts live in the bucket."""

from __future__ import annotations

import duckdb
import pytest

from extractor.config import Settings
from extractor.dataset import DataDir
from extractor.lake import join, read_bytes
from tests.reliability.conftest import FAST_ENV, invoke, ok
from tests.reliability.hostile import GOOD, put

SINCE, UNTIL = "2026-09-20", "2026-10-05"


def pipeline(data_dir: str, base_url: str, files) -> Settings:
    ok(invoke(data_dir, base_url, "extract", "premium", "--since", SINCE, "--until", UNTIL))
    ok(invoke(data_dir, base_url, "extract", "tokenflex", "--since", SINCE, "--until", UNTIL))
    ok(invoke(data_dir, None, "import", put(files, "usage.csv", GOOD)))
    ok(invoke(data_dir, None, "build"))
    ok(invoke(data_dir, None, "publish", "--formats", "parquet"))
    return Settings(data_dir=data_dir)


def marts(settings: Settings) -> dict[str, list]:
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        out = {}
        names = [r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_schema = 'marts' order by 1").fetchall()]
        for name in names:
            columns = [r[0] for r in con.execute(
                f"select column_name from information_schema.columns where table_schema = 'marts' "
                f"and table_name = '{name}' and column_name not in ('extracted_at', 'built_at') order by 1").fetchall()]
            rows = con.execute(f"select {', '.join(columns)} from marts.{name}").fetchall()
            out[name] = sorted(map(repr, rows))
        return out
    finally:
        con.close()


@pytest.fixture(scope="module")
def local_marts(sandbox, tmp_path_factory):
    root = tmp_path_factory.mktemp("local")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in FAST_ENV.items():
            mp.setenv(key, value)
        return marts(pipeline(str(root / "data"), sandbox.base_url, root / "in"))


@pytest.mark.parametrize("store", ["s3", "az"])
def test_pipeline_on_object_storage_equals_a_local_run(store, request, sandbox, local_marts, tmp_path, monkeypatch):
    for key, value in FAST_ENV.items():
        monkeypatch.setenv(key, value)
    url = request.getfixturevalue(f"{store}_url")
    settings = pipeline(url, sandbox.base_url, tmp_path / "in")
    got = marts(settings)
    assert got.keys() == local_marts.keys()
    assert all(local_marts[m] for m in ("fct_daily_usage", "dim_users"))
    for name in got:
        assert got[name] == local_marts[name], f"{name} differs from the local run"
    # nothing of the run only on this machine: the tables (with their state), the marts, the salt
    dd = DataDir(url)
    assert dd.read_state()["datasets"]["premium_usage"]
    assert read_bytes(join(url, "marts", "fct_daily_usage.parquet"))
    assert not (settings.data_dir / "raw").exists()
    ok(invoke(url, None, "import", put(tmp_path / "in2", "usage.csv", GOOD), "--hash-personal-data"))
    salt = read_bytes(join(url, "state", "salt"))
    assert salt and salt.strip() == (settings.state_dir / "salt").read_bytes().strip()


@pytest.mark.parametrize("point,committed", [("staging", False), ("mid-commit", False), ("after-commit", True)])
def test_a_writer_killed_on_s3_leaves_old_or_new_data(point, committed, s3_url, tmp_path):
    """SIGKILL at the writer's named points while it imports into S3: the table reads the old or
    the new version, never part of one, and the re-run gives the uninterrupted result."""
    import os
    import signal

    from tests.reliability.conftest import subprocess_run
    from tests.reliability.test_crash_safety import big_csv

    csv = big_csv(tmp_path / "in" / "usage_big.csv", 3_000)
    work = {"APS_USAGE_WORK_DIR": os.environ["APS_USAGE_WORK_DIR"]}
    ok(invoke(s3_url, None, "import", put(tmp_path / "in0", "usage.csv", GOOD)))
    dd = DataDir(s3_url)
    before = sorted(dd.read("premium_usage_files").column("_row_hash").to_pylist())
    proc = subprocess_run(s3_url, "http://127.0.0.1:9", ["import", str(csv)], {**work, "APS_USAGE_CRASH_AT": point})
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL, err[-500:]
    after = sorted(dd.read("premium_usage_files").column("_row_hash").to_pylist())
    assert (after != before) == committed
    proc = subprocess_run(s3_url, "http://127.0.0.1:9", ["import", str(csv)], work)
    assert proc.communicate(timeout=300) and proc.returncode == 0
    hashes = dd.read("premium_usage_files").column("_row_hash").to_pylist()
    assert len(hashes) == len(set(hashes)) and set(before) <= set(hashes)
    assert dd.history("premium_usage_files")[0]["command"] == "import"
