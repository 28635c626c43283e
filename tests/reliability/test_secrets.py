"""Every command at ``-vv`` against a faulty sandbox (short-lived tokens, so refresh tokens
rotate during the run): no access token, refresh token, authorization code, client secret,
personal access token or download-URL signature in any output, log line, state file, or any
file under the data dir (Parquet read as bytes and as text). The saved login is mode 0600."""

from __future__ import annotations

import re
import stat
import webbrowser
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from .conftest import FAST_ENV, follow_login, invoke

FAULTS = "429:0.1,500:0.1,reset:0.05,expire-url:0.3,job-error:0.1,retry-after-date:0.5,auth:1"
RANGE = ("2026-10-01", "2026-10-12")
SIGNATURE = re.compile(rb"X-Amz-Signature=([0-9a-fA-F]{16,})")
TOKEN_FIELDS = re.compile(rb'"(?:access_token|refresh_token)":"([^"]+)"')
CODE = re.compile(rb"[?&]code=([^&\s]+)")


class Recorder:
    """ASGI wrapper keeping every response's headers and body (what the server handed out)."""

    def __init__(self, app):
        self.app = app
        self.state = app.state
        self.sent: list[bytes] = []

    async def __call__(self, scope, receive, send):
        async def record(message):
            if message["type"] == "http.response.start":
                self.sent.append(b"\n".join(k + b": " + v for k, v in message.get("headers", [])))
            elif message["type"] == "http.response.body":
                self.sent.append(message.get("body", b""))
            await send(message)

        return await self.app(scope, receive, record)

    def secrets(self) -> set[bytes]:
        blob = b"\n".join(self.sent)
        found = set(SIGNATURE.findall(blob)) | set(TOKEN_FIELDS.findall(blob)) | set(CODE.findall(blob))
        return {s for s in found if len(s) >= 8}


@pytest.fixture
def recorded_sandbox(sandbox):
    from extractor.sandbox.app import create_app
    from extractor.sandbox.server import start_in_thread

    app = create_app(data=sandbox.data, time_scale=0.02, faults=FAULTS, token_ttl=100)
    recorder = Recorder(app)
    server = start_in_thread(recorder)
    yield server.base_url, recorder, app.state.sandbox
    server.stop()
    app.state.sandbox.close()


def parquet_text(path: Path) -> str:
    table = pq.read_table(path)
    return "\n".join(str(v) for column in table.columns for v in column.to_pylist())


def test_no_secret_anywhere(recorded_sandbox, fast_env, monkeypatch, tmp_path):
    base_url, recorder, state = recorded_sandbox
    from extractor.sandbox import files as sandbox_files

    monkeypatch.setattr(webbrowser, "open", follow_login)
    data_dir = tmp_path / "data"
    downloads = tmp_path / "downloads"
    sandbox_files.write_files(state.data, downloads)
    span = ["--since", RANGE[0], "--until", RANGE[1]]
    commands = [
        ["auth", "login", "--tokenflex", "--timeout", "30"],
        ["auth", "status"],
        ["teams"],
        ["contracts"],
        ["extract", "premium", "--team", "4865648", *span],  # 3-legged, refreshed as tokens expire
        ["extract", "tokenflex", *span],
        ["auth", "logout"],
        ["extract", "premium", "--team", "5230981", *span],  # 2-legged + PAT
        ["import", str(downloads)],
        ["status"],
    ]
    outputs = []
    token_modes = []
    saved_login = b""
    for args in commands:
        result = invoke(data_dir, base_url, *args, verbose=True)
        outputs.append(f"$ aps-usage {' '.join(args)}\n{result.output}\n{result.exception!r}")
        assert result.exit_code == 0, outputs[-1]
        token_file = data_dir / "state" / "token.json"
        if token_file.exists():
            token_modes.append(stat.S_IMODE(token_file.stat().st_mode))
            saved_login = token_file.read_bytes()
    text = "\n".join(outputs)
    assert "DEBUG" in text, "the verbose log was not captured"
    assert token_modes and set(token_modes) == {0o600}, [oct(m) for m in token_modes]

    issued = recorder.secrets()
    issued |= {t.encode() for t in state.oauth.tokens} | {t.encode() for t in state.oauth.spent_refresh_tokens}
    issued |= {t.encode() for t in state.oauth.refresh_tokens}
    assert len([s for s in issued if len(s) > 20]) >= 5, "the run handed out too few secrets to prove anything"
    assert any(SIGNATURE.search(b) for b in recorder.sent), "no pre-signed download URL was handed out"
    fixed = {FAST_ENV["APS_CLIENT_SECRET"].encode(), FAST_ENV["APS_PAT"].encode(), b"X-Amz-Signature", b"X-Amz-Credential"}

    def leaks(blob: bytes) -> list[str]:
        return sorted(s.decode(errors="replace")[:12] + "..." for s in issued | fixed if s in blob)

    assert leaks(saved_login), "the scanner does not even find the refresh token in the saved login"
    assert not leaks(text.encode()), f"secrets in the output/log: {leaks(text.encode())}"
    scanned = 0
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        if path.name in ("token.json", "lock"):
            continue
        scanned += 1
        blob = path.read_bytes()
        assert not leaks(blob), f"{path.relative_to(data_dir)}: {leaks(blob)}"
        if path.suffix == ".parquet":
            as_text = parquet_text(path).encode()
            assert not leaks(as_text), f"{path.relative_to(data_dir)} (as text): {leaks(as_text)}"
            assert b"sandbox-downloads" not in as_text and b"?X-Amz" not in as_text
    assert scanned > 10
