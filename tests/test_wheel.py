"""The built wheel works without the repo: `pip install` of the wheel (not editable) into a
fresh venv, then `aps-usage demo` from a folder outside the checkout builds the marts from
the dbt project and profiles shipped inside the package.

The fresh venv gets no dependencies from PyPI: a .pth line adds this interpreter's
site-packages after its own (a plain path entry, so the editable install's finder there is
not run and `extractor` can only come from the wheel)."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
from setuptools import find_packages

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def run(args: list, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{args[:3]} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def test_the_wheel_installs_into_a_fresh_venv_and_runs_the_demo_outside_the_repo(tmp_path):
    wheels = tmp_path / "wheels"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", wheels, REPO],
        cwd=tmp_path)
    (wheel,) = wheels.glob("aps_usage-*.whl")

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    fresh_site = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          cwd=tmp_path).stdout.strip())
    (fresh_site / "zz_reuse_test_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q", wheel], cwd=tmp_path)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APS_USAGE_", "PYTHONPATH"))}
    env["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "False"
    where = run([python, "-c", "import extractor.build as b; print(b.__file__); print(b.dbt_project_dir()); "
                 "print(b.profiles_dir())"], cwd=elsewhere, env=env).stdout.split()
    assert all(str(fresh_site) in line for line in where), where
    # every subpackage of the checkout is in the wheel (pyproject.toml lists them by hand)
    installed = {p for p in find_packages(str(fresh_site)) if p.startswith("extractor")}
    assert set(find_packages(str(REPO), include=["extractor*"])) <= installed

    demo = run([env_dir / "bin" / "aps-usage", "--data-dir", elsewhere / "data", "demo", "--users", "20", "--days", "40"],
               cwd=elsewhere, env=env)
    assert (elsewhere / "data" / "warehouse.duckdb").is_file(), demo.stdout
    import duckdb

    con = duckdb.connect(str(elsewhere / "data" / "warehouse.duckdb"), read_only=True)
    try:
        assert con.execute("select count(*) from marts.fct_daily_usage").fetchone()[0] > 0
        assert con.execute("select count(*) from marts.inactive_users").fetchone()[0] >= 0
    finally:
        con.close()
    # dbt wrote its target and logs under the data dir, nothing into the installed package
    assert not {"target", "logs"} & {p.name for p in (fresh_site / "extractor" / "dbt_project").iterdir()}
