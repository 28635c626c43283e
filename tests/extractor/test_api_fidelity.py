"""The extractor asks what Autodesk's reference pages allow, over HTTP against the sandbox
(which enforces the same rules): desktop session-level export metrics, least-privilege
scopes, the registered Callback URL of `auth login`, freshness from `usage/:n/last`, the
summary cross-check, and both shapes of the answers where the public sources disagree."""

from __future__ import annotations

import datetime as dt
import socket

import httpx
import pyarrow.compute as pc
import pytest
from click.testing import CliRunner

from extractor import DEFAULT_CALLBACK_URL
from extractor.auth import READ_SCOPE, TOKENFLEX_LOGIN_SCOPE, WRITE_SCOPE, Auth
from extractor.cli import cli
from extractor.config import Settings
from extractor.errors import AuthError
from extractor.http import ApiClient
from extractor.jobs import parse_timestamp
from extractor.tokenflex import METRICS, query, resolve_detail_uri


# -- helpers ---------------------------------------------------------------------------------
class Recorder:
    """ASGI wrapper: notes (method, path, bearer token) of every API call, and can replace
    bytes in the answers of one path (to make the sandbox's summary disagree)."""

    def __init__(self, app, rewrite_path: str | None = None, rewrite: tuple[bytes, bytes] | None = None):
        self.app, self.state = app, app.state
        self.calls: list[tuple[str, str, str]] = []
        self.rewrite_path, self.rewrite = rewrite_path, rewrite

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        bearer = headers.get(b"authorization", b"").decode().removeprefix("Bearer ").strip()
        self.calls.append((scope["method"], scope["path"], bearer))
        if not (self.rewrite_path and scope["path"].endswith(self.rewrite_path)):
            return await self.app(scope, receive, send)
        start: dict = {}

        async def capture(message):
            if message["type"] == "http.response.start":
                start.update(message)
                return
            body = message.get("body", b"").replace(*self.rewrite)
            heads = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
            await send({**start, "headers": heads + [(b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})

        return await self.app(scope, receive, capture)


@pytest.fixture
def recorded(sandbox):
    """``recorded(**create_app_kwargs)``: (base_url, sandbox state, recorder) over the session data."""
    from extractor.sandbox.app import create_app
    from extractor.sandbox.server import start_in_thread

    started = []

    def start(recorder_options: dict | None = None, **options):
        app = create_app(data=sandbox.data, time_scale=0.02, **options)
        recorder = Recorder(app, **(recorder_options or {}))
        server = start_in_thread(recorder)
        started.append((server, app))
        return server.base_url, app.state.sandbox, recorder

    yield start
    for server, app in started:
        server.stop()
        app.state.sandbox.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def follow_redirects(url: str) -> bool:
    response = httpx.get(url, follow_redirects=True, timeout=10)
    assert response.status_code == 200 and "login complete" in response.text, response.text
    return True


def cli_run(base_url: str, data_dir, *args: str):
    return CliRunner().invoke(cli, ["--data-dir", str(data_dir), "--base-url", base_url, "-q", *args], obj=None)


# -- 1. desktop session-level exports ask only what the reference page allows --------------------
def test_desktop_exports_keep_usage_minutes_and_are_never_refused(recorded, sandbox, fast_env, tmp_path):
    base_url, state, _ = recorded()
    until = sandbox.data.end_date
    result = cli_run(base_url, tmp_path / "data", "extract", "tokenflex", "--since", str(until - dt.timedelta(days=30)),
                     "--until", str(until))
    assert result.exit_code == 0, result.output
    assert METRICS["DESKTOP_PRODUCT"] == ["tokensConsumed", "usageMinutes", "usageHours"]
    from extractor.dataset import DataDir

    usage = DataDir(tmp_path / "data").read("tokenflex_usage")
    desktop = usage.filter(pc.equal(usage["usage_category"], "DESKTOP_PRODUCT"))
    assert desktop.num_rows > 50
    assert desktop["usage_minutes"].null_count == 0 and desktop["usage_hours"].null_count == 0
    assert pc.sum(desktop["usage_minutes"]).as_py() > 0
    assert state.export_refusals() == []  # no first attempt refused, nothing dropped to get through


def test_the_sandbox_refuses_use_count_in_a_desktop_session_export(sandbox, fast_env, tmp_path):
    """What the extractor avoids: the session-level desktop export with useCount -> 400 naming it."""
    settings = Settings(data_dir=tmp_path, base_url=sandbox.base_url, quiet=True)
    from extractor.tokenflex import CATEGORY_FIELDS, GENERAL_FIELDS

    body = {"fields": GENERAL_FIELDS + CATEGORY_FIELDS["DESKTOP_PRODUCT"], "usageCategory": ["DESKTOP_PRODUCT"],
            "metrics": ["tokensConsumed", "useCount"], "where": "usageDate >= '2026-10-01'"}
    with ApiClient(settings, Auth(settings)) as api:
        answer = api.post(f"/tokenflex/v1/export/{sandbox.data.contract_number}/requests", json=body,
                          raise_for_status=False)
    assert answer.status_code == 400 and "useCount" in answer.text


# -- 2. least privilege -------------------------------------------------------------------------
def test_the_whole_extraction_runs_on_data_read_and_data_write_only_for_exports(recorded, sandbox, fast_env,
                                                                                tmp_path):
    base_url, state, recorder = recorded()
    until = sandbox.data.end_date
    window = ["--since", str(until - dt.timedelta(days=20)), "--until", str(until)]
    for args in (["extract", "premium", "--reports", "usage,users,subscriptions,usage-export"],
                 ["extract", "tokenflex"]):
        result = cli_run(base_url, tmp_path / "data", *args, *window)
        assert result.exit_code == 0, result.output
    tokens = state.oauth.tokens
    used = {(method, path): tokens[bearer].scopes for method, path, bearer in recorder.calls if bearer in tokens}
    writes = {key for key, scopes in used.items() if WRITE_SCOPE in scopes}
    assert all(scopes == {READ_SCOPE} for key, scopes in used.items() if key not in writes)
    assert all(scopes == {WRITE_SCOPE} for key, scopes in used.items() if key in writes)
    assert writes and all(method in ("POST", "DELETE") and "/tokenflex/v1/export/" in path for method, path in writes)
    assert any(method == "POST" and path.startswith("/insights/v1/") for method, path in used)  # on data:read
    assert {frozenset(t.scopes) for t in tokens.values()} == {frozenset({READ_SCOPE}), frozenset({WRITE_SCOPE})}

    status = cli_run(base_url, tmp_path / "data", "auth", "status")
    assert "scope" in status.output and "data:read" in status.output and "data:write" in status.output


def test_a_read_only_login_extracts_premium_and_says_how_to_allow_token_flex_exports(recorded, sandbox,
                                                                                    fast_env, tmp_path):
    base_url, _, _ = recorded()
    fast_env.delenv("APS_PAT")
    settings = Settings(data_dir=tmp_path / "data", base_url=base_url, quiet=True)
    info = Auth(settings).login(open_browser=follow_redirects, show_url=lambda text: None, timeout=20)
    assert info["scope"].split()[0] == READ_SCOPE and WRITE_SCOPE not in info["scope"].split()[0]
    until = str(sandbox.data.end_date)
    assert cli_run(base_url, settings.data_dir, "extract", "premium", "--reports", "usage", "--since", until,
                   "--until", until).exit_code == 0
    result = cli_run(base_url, settings.data_dir, "extract", "tokenflex", "--since", until, "--until", until)
    assert result.exit_code == 3
    assert result.output.strip().splitlines() == [
        "Error: the saved login holds data:read but this call needs data:write (Token Flex export requests): "
        "log in again with 'aps-usage auth login --tokenflex'"]
    assert "data:read" in cli_run(base_url, settings.data_dir, "auth", "status").output

    info = Auth(settings).login(open_browser=follow_redirects, show_url=lambda text: None, timeout=20,
                                scope=TOKENFLEX_LOGIN_SCOPE)
    assert set(info["scope"].split()) == {READ_SCOPE, WRITE_SCOPE}
    assert cli_run(base_url, settings.data_dir, "extract", "tokenflex", "--since", until, "--until", until).exit_code == 0


# -- 3. the registered Callback URL ---------------------------------------------------------------
def test_login_listens_on_another_registered_callback_url(recorded, fast_env, tmp_path):
    callback = f"http://localhost:{free_port()}/aps/done"
    base_url, state, _ = recorded(callback_urls=[callback])
    fast_env.setenv("APS_CALLBACK_URL", callback)
    import extractor.commands.auth as auth_commands

    fast_env.setattr(auth_commands.webbrowser, "open", follow_redirects)
    result = cli_run(base_url, tmp_path / "data", "auth", "login", "--timeout", "20")
    assert result.exit_code == 0, result.output
    assert f"redirect to {callback}" in result.output and "Logged in (3-legged" in result.output


def test_an_unregistered_callback_url_is_one_clear_line(sandbox, fast_env, tmp_path):
    import extractor.commands.auth as auth_commands

    callback = f"http://localhost:{free_port()}/callback"  # not the sandbox app's registered URL
    opened: list[str] = []
    fast_env.setattr(auth_commands.webbrowser, "open", opened.append)
    result = cli_run(sandbox.base_url, tmp_path / "data", "auth", "login", "--callback-url", callback, "--timeout", "5")
    assert result.exit_code == 3 and not opened
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: login refused by /authentication/v2/authorize (HTTP 4")
    assert f"register {callback} as the Callback URL of the APS app" in lines[0]
    assert not (tmp_path / "data" / "state" / "token.json").exists()


def test_a_callback_url_no_listener_here_could_answer_is_refused(sandbox, fast_env, tmp_path):
    result = cli_run(sandbox.base_url, tmp_path / "data", "auth", "login", "--callback-url", "https://example.com/cb")
    assert result.exit_code == 3
    assert "expected http://localhost:PORT/PATH" in result.output


def test_login_help_says_what_to_register():
    result = CliRunner().invoke(cli, ["auth", "login", "--help"])
    assert result.exit_code == 0
    assert DEFAULT_CALLBACK_URL in result.output and "APS_CALLBACK_URL" in result.output
    assert "--tokenflex" in result.output


# -- 4. freshness from the API ----------------------------------------------------------------------
def test_extraction_stops_at_the_last_processed_day_and_status_reports_it(run, sandbox):
    end = sandbox.data.end_date  # the sandbox's lastProcessDate is the morning after its last day
    result = run("extract", "tokenflex", "--since", str(end - dt.timedelta(days=5)))  # --until: today
    assert f"{end - dt.timedelta(days=5)}..{end} (" in result.output
    assert "processed by Autodesk at" in result.output
    entry = run.state()["datasets"]["tokenflex_usage"][sandbox.data.contract_number]
    assert entry["extracted_to"] == str(end)
    processed = parse_timestamp(entry["last_process_date"])
    assert processed is not None and processed.date() == end + dt.timedelta(days=1)
    status = run("status", "--json")
    import json

    rows = {r["dataset"]: r for r in json.loads(status.output)["datasets"]}
    assert rows["tokenflex_usage"]["api_processed_at"] == entry["last_process_date"]
    assert "API processed at" in run("status").output


def test_the_summary_cross_check_is_quiet_when_tokens_agree(run, sandbox):
    end = sandbox.data.end_date
    first = (end.replace(day=1) - dt.timedelta(days=1)).replace(day=1)  # two whole months
    result = run("extract", "tokenflex", "--since", str(first), "--until", str(end))
    assert "usage summary says" not in result.output


def test_a_summary_that_disagrees_is_a_warning(recorded, sandbox, fast_env, tmp_path):
    base_url, _, _ = recorded(recorder_options={"rewrite_path": "/summary",
                                                "rewrite": (b'"tokensConsumed":', b'"tokensConsumed":1')})
    end = sandbox.data.end_date
    first = end.replace(day=1)
    result = cli_run(base_url, tmp_path / "data", "extract", "tokenflex", "--since", str(first), "--until", str(end))
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if "usage summary says" in line]
    assert warnings and f"contract {sandbox.data.contract_number} year " in warnings[0]
    assert f"{first:%Y-%m}..{end:%Y-%m}" in warnings[0]


# -- 5. both shapes where the public sources disagree ------------------------------------------------
@pytest.mark.parametrize("text", ["2026-11-01T06:00:00Z", "2026-11-01T06:00:00.123456Z", "2026-11-01T06:00:00",
                                  "2026-11-01T06:00:00.123456", "2026-11-01T07:00:00+01:00", "1793512800000",
                                  1793512800])
def test_timestamps_read_with_and_without_zone_and_microseconds(text):
    when = parse_timestamp(text)
    assert when is not None and when.tzinfo is not None
    assert when.replace(microsecond=0) == dt.datetime(2026, 11, 1, 6, tzinfo=dt.UTC)


def test_detail_uri_resolves_with_or_without_the_tokenflex_prefix(tmp_path):
    api = ApiClient(Settings(data_dir=tmp_path, base_url="https://developer.api.autodesk.com"), None)
    want = "https://developer.api.autodesk.com/tokenflex/v1/usage/110/query/query:ab12"
    for uri in ("/v1/usage/110/query/query:ab12", "/tokenflex/v1/usage/110/query/query:ab12", want, None):
        assert resolve_detail_uri(api, "110", "query:ab12", uri) == want
    api.close()


def test_a_usage_query_answers_and_its_cached_answer_comes_back_done(sandbox, fast_env, tmp_path):
    settings = Settings(data_dir=tmp_path, base_url=sandbox.base_url, quiet=True)
    body = {"fields": ["productName"], "metrics": ["tokensConsumed"], "usageCategory": ["DESKTOP_PRODUCT"],
            "where": "contractYear >= 1"}
    number = sandbox.data.contract_number
    with ApiClient(settings, Auth(settings)) as api:
        first = query(api, number, body)
        posted = api.post_json(f"/tokenflex/v1/usage/{number}/query", json=body)
        again = query(api, number, body)
    assert first["productName"] and len(first["productName"]) == len(first["tokensConsumed"])
    assert posted["id"].startswith("query:") and posted["status"] == "DONE" and "result" in posted
    assert again == first
    tf = sandbox.data.tokenflex_usage
    desktop = tf.filter(pc.equal(tf["usage_category"], "DESKTOP_PRODUCT"))
    assert sum(first["tokensConsumed"]) == pytest.approx(pc.sum(desktop["tokens_consumed"]).as_py())


def test_a_wrong_scope_is_refused_before_anything_is_sent(tmp_path):
    """A read-only saved login never sends a write call: the error comes before the request."""
    from extractor.auth import FileTokenStore

    store = FileTokenStore(tmp_path / "token.json")
    store.save({"access_token": "a" * 20, "refresh_token": "r" * 20, "expires_at": 4e9, "scope": READ_SCOPE})
    auth = Auth(Settings(data_dir=tmp_path, base_url="http://127.0.0.1:9"), store=store)
    assert auth.access_token(READ_SCOPE) == "a" * 20
    with pytest.raises(AuthError, match="auth login --tokenflex"):
        auth.access_token(WRITE_SCOPE)
