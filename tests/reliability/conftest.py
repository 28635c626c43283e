"""Helpers for the reliability tests: fast retry/poll settings, sandboxes with faults (and
optional job-status rewrites), a CLI runner, dataset fingerprints, and the fault matrix that
is printed at the end of the test session."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pyarrow as pa
import pytest
from click.testing import CliRunner

from extractor.cli import cli
from extractor.dataset import DataDir
from extractor.schemas import DATASETS

FAST_ENV = {
    "APS_HTTP_BACKOFF_BASE": "0.01",
    "APS_HTTP_BACKOFF_CAP": "0.05",
    "APS_HTTP_MAX_ATTEMPTS": "10",
    "APS_HTTP_TIMEOUT": "10",
    "APS_POLL_INTERVAL": "0.02",
    "APS_POLL_MAX_INTERVAL": "0.1",
    "APS_POLL_DEADLINE": "30",
    "APS_TOKEN_STORE": "file",
    "APS_CLIENT_ID": "sandbox-client",
    "APS_CLIENT_SECRET": "sandbox-secret",
    "APS_PAT": "sandbox-pat",
}
META = ("_extracted_at", "_source")
TEAM = "4865648"  # New York Office in the session sandbox
REPO = Path(__file__).resolve().parents[2]


def fast_environ() -> dict[str, str]:
    """The environment of a subprocess run: this process's, plus the fast settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("APS_", "PYTEST_")) or k == "APS_USAGE_WORK_DIR"}  # S3 runs: this machine's work dir
    env.update(FAST_ENV)
    return env


@pytest.fixture
def fast_env(monkeypatch):
    for key, value in FAST_ENV.items():
        monkeypatch.setenv(key, value)
    for key in ("APS_USAGE_DATA_DIR", "APS_BASE_URL", "APS_USAGE_CRASH_AT", "APS_USAGE_LOCK_WAIT"):
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


# -- sandboxes ------------------------------------------------------------------------------
class StatusRewrite:
    """ASGI wrapper: replaces bytes in JSON response bodies, e.g. a query's ``"status":"ERROR"``
    by ``"status":"TIMEOUT"``, to exercise job statuses the sandbox does not produce itself."""

    def __init__(self, app, replacements: dict[bytes, bytes]):
        self.app = app
        self.replacements = replacements
        self.state = app.state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start: dict = {}
        body = bytearray()

        async def capture(message):
            if message["type"] == "http.response.start":
                start.update(message)
                return
            body.extend(message.get("body", b""))
            if message.get("more_body"):
                return
            data = bytes(body)
            for old, new in self.replacements.items():
                data = data.replace(old, new)
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(data)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": data})

        return await self.app(scope, receive, capture)


@dataclass
class Running:
    base_url: str
    app: object
    server: object

    @property
    def state(self):
        return self.app.state.sandbox

    def stop(self) -> None:
        self.server.stop()
        self.app.state.sandbox.close()


@pytest.fixture
def start_sandbox(sandbox):
    """``start_sandbox(faults=..., rewrite={b'old': b'new'}, **create_app_kwargs)``: a sandbox
    over the session sandbox's data (no regeneration), stopped at teardown."""
    from extractor.sandbox.app import create_app
    from extractor.sandbox.server import start_in_thread

    started: list[Running] = []

    def start(rewrite: dict[bytes, bytes] | None = None, **options) -> Running:
        options.setdefault("time_scale", 0.02)
        app = create_app(data=sandbox.data, **options)
        served = StatusRewrite(app, rewrite) if rewrite else app
        server = start_in_thread(served)
        running = Running(server.base_url, app, server)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


# -- the CLI and the data dir ----------------------------------------------------------------
def invoke(data_dir: Path, base_url: str | None, *args: str, verbose: bool = False, quiet: bool = True):
    head = ["--data-dir", str(data_dir)]
    if base_url:
        head += ["--base-url", base_url]
    head += ["-vv"] if verbose else (["-q"] if quiet else [])
    return CliRunner().invoke(cli, [*head, *map(str, args)], obj=None)


def ok(result) -> None:
    assert result.exit_code == 0, f"exit {result.exit_code}:\n{result.output}\n{result.exception!r}"


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("Error: ")]


def is_one_line_error(result) -> bool:
    """Exactly one ``Error: ...`` line, a known exit code, and no traceback."""
    lines = error_lines(result)
    return (result.exit_code in (1, 2, 3, 4, 5, 6) and len(lines) == 1 and "Traceback" not in result.output
            and not isinstance(result.exception, (AssertionError, TypeError, KeyError, AttributeError)))


def content(data_dir: Path, dataset: str) -> list[tuple]:
    """A dataset's rows without the extraction metadata, sorted (comparable across runs)."""
    table: pa.Table = DataDir(data_dir).read(dataset)
    names = [n for n in table.column_names if n not in META]
    return sorted(zip(*[table.column(n).to_pylist() for n in names]), key=repr)


def fingerprint(data_dir: Path | str) -> dict[str, str]:
    """What a reader sees: each table's version and the files it names, and every file under
    state/ (the lock file aside; this machine's state/ for a data dir on S3) by content. Data
    files no commit names (left by a failed or killed writer until vacuum) are invisible and
    not part of it."""
    out = {}
    dd = DataDir(data_dir)
    for name in DATASETS:
        dt = dd.table(name)
        if dt is not None:
            out[f"raw/{name}"] = f"version {dt.version()}: {sorted(dt.file_uris())}"
    for p in sorted(dd.state_dir.rglob("*")):
        if p.is_file() and p.name != "lock":
            out[str(p.relative_to(dd.root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def stray_files(data_dir: Path) -> list[str]:
    """Files a reader of the current versions would fail on: named by a commit but missing
    or not readable Parquet."""
    import io

    import pyarrow.parquet as pq

    from extractor.lake import is_remote, read_bytes

    bad = []
    dd = DataDir(data_dir)
    for name in DATASETS:
        dt = dd.table(name)
        for uri in dt.file_uris() if dt is not None else []:
            try:
                pq.read_metadata(io.BytesIO(read_bytes(uri)) if is_remote(uri) else uri.removeprefix("file://"))
            except Exception:
                bad.append(uri)
    return bad


def leftover_transactions(data_dir: Path | str) -> list[str]:
    tmp = DataDir(data_dir).tmp_dir
    return sorted(p.name for p in tmp.glob("tx-*")) if tmp.exists() else []


def subprocess_run(data_dir: Path, base_url: str, args: list[str], env_extra: dict | None = None) -> subprocess.Popen:
    """``python -m extractor ... <args>`` in a child process (fast settings, output piped)."""
    env = fast_environ()
    env.update(env_extra or {})
    cmd = [sys.executable, "-m", "extractor", "--data-dir", str(data_dir), "--base-url", base_url, "-q", *args]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def follow_login(url: str) -> bool:
    """The browser: GET the authorize URL and follow its redirect to the local listener,
    again if the faulty sandbox answers 5xx or drops the connection."""
    for _ in range(20):
        try:
            response = httpx.get(url, follow_redirects=True, timeout=10)
        except httpx.HTTPError:
            continue
        if "login complete" in response.text:
            return True
    return False


def wait_for_lock_holder(data_dir: Path | str, pid: int, timeout: float = 60.0) -> None:
    lock = DataDir(data_dir).lock_path
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if json.loads(lock.read_text() or "{}").get("pid") == pid:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    raise AssertionError(f"process {pid} never took the lock")


# -- the fault matrix, printed at the end of the session -------------------------------------
@dataclass
class Matrix:
    cells: OrderedDict[str, dict[str, str]] = field(default_factory=OrderedDict)
    columns: list[str] = field(default_factory=list)

    def record(self, fault: str, command: str, outcome: str) -> None:
        if command not in self.columns:
            self.columns.append(command)
        self.cells.setdefault(fault, {})[command] = outcome

    def render(self) -> str:
        width = max([len("fault")] + [len(f) for f in self.cells])
        cols = [max([len(c), 12] + [len(row.get(c, "")) for row in self.cells.values()]) for c in self.columns]
        lines = ["fault".ljust(width) + " | " + " | ".join(c.ljust(w) for c, w in zip(self.columns, cols))]
        lines.append("-" * len(lines[0]))
        for fault, row in self.cells.items():
            lines.append(fault.ljust(width) + " | " + " | ".join(row.get(c, "-").ljust(w)
                                                                    for c, w in zip(self.columns, cols)))
        return "\n".join(lines)


MATRIX = Matrix()


@pytest.fixture(scope="session")
def fault_matrix() -> Matrix:
    return MATRIX


def pytest_terminal_summary(terminalreporter):
    if MATRIX.cells:
        terminalreporter.section("fault matrix (fault x command -> outcome)")
        terminalreporter.write_line(MATRIX.render())


def dump(obj) -> str:
    return json.dumps(obj, indent=1, default=str)[:2000]


# the object-storage stand-ins (moto's S3 server), for the reliability cases that run on S3 too
from tests.storage.conftest import s3_server, s3_url  # noqa: E402,F401


@pytest.fixture
def place(request, tmp_path):
    """``place(previous) -> data dir``: a copy of the local data dir ``previous``, in a local
    folder, or under a fresh bucket on moto's S3 server when a test parametrizes it
    indirectly with ``"s3"``: the Delta tables are uploaded as they are (their log names
    files relative to the table)."""
    def local(previous: Path) -> Path:
        shutil.copytree(previous, tmp_path / "data")
        return tmp_path / "data"

    if getattr(request, "param", "local") == "local":
        return local
    url = request.getfixturevalue("s3_url")

    def on_s3(previous: Path) -> str:
        from extractor.lake import join, upload_folder

        upload_folder(Path(previous) / "raw", join(url, "raw"))
        return url

    return on_s3
