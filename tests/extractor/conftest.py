"""Helpers for the extractor tests: credentials and short waits in the environment, a CLI
runner bound to a sandbox and a data dir, and readers of the written dataset."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner

from extractor.cli import cli
from extractor.dataset import DataDir

FAST_ENV = {
    "APS_HTTP_BACKOFF_BASE": "0.01",
    "APS_HTTP_BACKOFF_CAP": "0.1",
    "APS_HTTP_MAX_ATTEMPTS": "10",
    "APS_HTTP_TIMEOUT": "10",
    "APS_POLL_INTERVAL": "0.02",
    "APS_POLL_MAX_INTERVAL": "0.2",
    "APS_POLL_DEADLINE": "60",
    "APS_TOKEN_STORE": "file",
    # the sandbox fixture runs at time_scale 0.02: its 5/min Token Flex limit is 250/min of wall time
    "APS_TOKENFLEX_RATE_PER_MIN": "250",
}


def sandbox_credentials() -> dict[str, str]:
    from extractor import sandbox as sb

    return {"APS_CLIENT_ID": sb.CLIENT_ID, "APS_CLIENT_SECRET": sb.CLIENT_SECRET, "APS_PAT": sb.PAT}


@pytest.fixture
def fast_env(monkeypatch):
    for key, value in FAST_ENV.items():
        monkeypatch.setenv(key, value)
    for key, value in sandbox_credentials().items():
        monkeypatch.setenv(key, value)
    for key in ("APS_USAGE_DATA_DIR", "APS_BASE_URL"):
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


@dataclass
class Cli:
    base_url: str
    data_dir: Path

    def __call__(self, *args: str, ok: bool = True):
        result = CliRunner().invoke(
            cli, ["--data-dir", str(self.data_dir), "--base-url", self.base_url, "-q", *args], obj=None
        )
        if ok and result.exit_code != 0:
            raise AssertionError(f"aps-usage {' '.join(args)} exited {result.exit_code}:\n{result.output}"
                                 f"\n{result.exception!r}")
        return result

    def read(self, dataset: str) -> pa.Table:
        return DataDir(self.data_dir).read(dataset)

    def state(self) -> dict:
        return DataDir(self.data_dir).read_state()


@pytest.fixture
def make_cli(fast_env):
    """``make_cli(base_url, data_dir)``: a CLI runner bound to another sandbox or data dir."""
    return Cli


@pytest.fixture
def run(sandbox, fast_env, tmp_path):
    """``run("extract", "premium", ...)`` against the shared sandbox, in a fresh data dir."""
    return Cli(sandbox.base_url, tmp_path / "data")

