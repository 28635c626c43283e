"""`aps-usage run` end to end against the sandbox: extract both APIs, import a drop folder,
build, publish; one line per step; the JSON run summary; a failing step's exit code."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from starlette.responses import JSONResponse

from extractor import sandbox as sb
from extractor.cli import cli
from extractor.sandbox.files import write_files

ENV = {
    "APS_HTTP_BACKOFF_BASE": "0.01", "APS_HTTP_BACKOFF_CAP": "0.1", "APS_POLL_INTERVAL": "0.02",
    "APS_POLL_MAX_INTERVAL": "0.2", "APS_TOKEN_STORE": "file", "APS_TOKENFLEX_RATE_PER_MIN": "250",
    "APS_CLIENT_ID": sb.CLIENT_ID, "APS_CLIENT_SECRET": sb.CLIENT_SECRET, "APS_PAT": sb.PAT,
}


@pytest.fixture
def run_env(monkeypatch):
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    for key in ("APS_USAGE_DATA_DIR", "APS_BASE_URL"):
        monkeypatch.delenv(key, raising=False)


def aps_run(base_url: str, data_dir: Path, *args: str):
    return CliRunner().invoke(cli, ["--data-dir", str(data_dir), "--base-url", base_url, "run", *args], obj=None)


def last_run(data_dir: Path) -> dict:
    return json.loads((data_dir / "runs" / "last-run.json").read_text(encoding="utf-8"))


def drop_folder(tmp_path: Path, data) -> Path:
    """A drop folder holding the sandbox's user metadata file (the customer's HR export)."""
    drop = tmp_path / "inbox"
    files = write_files(data, tmp_path / "downloads")
    [metadata] = [p for p in files if p.name.startswith("user_metadata")]
    drop.mkdir()
    metadata.rename(drop / metadata.name)
    return drop


@pytest.mark.slow
def test_run_refreshes_everything_and_writes_the_summary(sandbox, run_env, tmp_path):
    data_dir, drop = tmp_path / "data", drop_folder(tmp_path, sandbox.data)
    result = aps_run(sandbox.base_url, data_dir, "--drop-dir", str(drop))
    assert result.exit_code == 0, result.output + repr(result.exception)

    summary = last_run(data_dir)
    assert summary["outcome"] == "ok" and summary["exit_code"] == 0 and summary["failed_step"] is None
    steps = {s["name"]: s for s in summary["steps"]}
    assert list(steps) == ["Extract Premium Reporting", "Extract Token Flex", "Import drop folder", "Build (dbt)",
                           "Publish"]
    assert all(s["outcome"] == "ok" and s["seconds"] > 0 for s in steps.values())
    assert steps["Extract Premium Reporting"]["counts"]["rows"] > 0
    assert steps["Extract Token Flex"]["counts"]["rows"] > 0
    assert steps["Import drop folder"]["counts"] == {"files": 1, "rows": summary["dataset_rows"]["user_metadata"]}
    assert steps["Build (dbt)"]["counts"]["models"] > 10 and steps["Build (dbt)"]["counts"]["tests"] > 100
    assert summary["mart_rows"]["inactive_users"] > 0
    assert summary["dataset_rows"]["premium_usage"] > 0 and summary["dataset_rows"]["tokenflex_usage"] > 0
    assert Path(summary["outputs"]["pbip"][0]).is_file() and Path(summary["outputs"]["twbx"][0]).is_file()
    [stamped] = [p for p in (data_dir / "runs").glob("*.json") if p.name != "last-run.json"]
    assert json.loads(stamped.read_text(encoding="utf-8")) == summary
    assert str(stamped) in result.output

    # the drop folder works as an inbox: what was imported moved out of the way
    assert not any(p.is_file() for p in drop.iterdir())
    assert len(list((drop / "imported").rglob("user_metadata*"))) == 1

    # one line per step (no per-team, per-file or per-dbt-node lines), each with its time
    step_lines = [line for line in result.output.splitlines() if " INFO " in line or " WARNING " in line]
    assert len(step_lines) == 5, result.output
    for line, name in zip(step_lines, steps):
        assert f"{name}: ok" in line and line.rstrip().endswith("s)")
    assert sb.CLIENT_SECRET not in result.output and sb.PAT not in result.output

    # with -v, dbt's line per node is back, and its counter never runs past its total
    verbose = CliRunner().invoke(cli, ["-v", "--data-dir", str(data_dir), "build"], obj=None)
    assert verbose.exit_code == 0, verbose.output
    counters = [tuple(map(int, m)) for m in re.findall(r"\[\s*(\d+)/(\d+)\]", verbose.output)]
    assert len(counters) == sum(steps["Build (dbt)"]["counts"].values())  # every node, unit tests included
    assert all(done <= total for done, total in counters) and counters[-1][0] == counters[-1][1]


def _forbid_tokenflex(app):
    async def asgi(scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith("/tokenflex/"):
            await JSONResponse({"developerMessage": "no Token Flex contract"}, status_code=403)(scope, receive, send)
            return
        await app(scope, receive, send)
    return asgi


def test_a_source_the_credentials_cannot_see_is_skipped_and_a_failing_step_says_which(run_env, tmp_path):
    """Token Flex answers 403 (not this customer's): skipped. Then a bad file in the drop
    folder: the import step fails with exit 2, the summary names it, nothing is built."""
    from extractor.sandbox.app import create_app
    from extractor.sandbox.data import generate
    from extractor.sandbox.server import start_in_thread

    data = generate(seed=3, users=20, days=20, end_date="2026-10-31")
    server = start_in_thread(_forbid_tokenflex(create_app(data=data, time_scale=0.02)))
    try:
        drop = tmp_path / "inbox"
        drop.mkdir()
        (drop / "usage_report.csv").write_text("this,is,not\na usage report,at,all\n", encoding="utf-8")
        data_dir = tmp_path / "data"
        result = aps_run(server.base_url, data_dir, "--drop-dir", str(drop))
    finally:
        server.stop()

    assert result.exit_code == 2, result.output
    summary = last_run(data_dir)
    assert summary["outcome"] == "failed" and summary["exit_code"] == 2
    assert summary["failed_step"] == "Import drop folder"
    assert "usage_report.csv" in summary["error"]
    outcomes = {s["name"]: s["outcome"] for s in summary["steps"]}
    assert outcomes == {"Extract Premium Reporting": "ok", "Extract Token Flex": "skipped",
                        "Import drop folder": "failed"}
    skipped = next(s for s in summary["steps"] if s["name"] == "Extract Token Flex")
    assert "not visible to these credentials" in skipped["detail"] and "403" in skipped["detail"]
    assert "Run failed at step 'Import drop folder' (exit 2)" in result.output
    assert (drop / "usage_report.csv").is_file()  # a failed import moves nothing
    assert not (data_dir / "warehouse.duckdb").exists()


def test_run_refuses_unknown_sources(run_env, tmp_path):
    result = aps_run("http://127.0.0.1:9", tmp_path / "data", "--sources", "premium,flexx")
    assert result.exit_code == 2
    assert "--sources: unknown source(s) flexx" in result.output


def test_run_without_credentials_exits_3_and_the_summary_says_so(run_env, monkeypatch, tmp_path):
    for key in ("APS_CLIENT_ID", "APS_CLIENT_SECRET", "APS_PAT"):
        monkeypatch.delenv(key)
    result = aps_run("http://127.0.0.1:9", tmp_path / "data")
    assert result.exit_code == 3, result.output
    summary = last_run(tmp_path / "data")
    assert (summary["outcome"], summary["exit_code"], summary["failed_step"]) == ("failed", 3, "Extract Premium Reporting")
    assert "no credentials" in summary["error"]
    assert [s["name"] for s in summary["steps"]] == ["Extract Premium Reporting"]  # nothing after a failed step
