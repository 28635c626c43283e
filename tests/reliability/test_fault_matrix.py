"""Every fault the sandbox injects, alone and mixed at high rates, for ``extract premium`` and
``extract tokenflex`` through the CLI. Each run starts from a previous dataset (an earlier
range) and must end EITHER with exactly the rows of a fault-free run (metadata columns
aside) OR with one ``Error:`` line, a non-zero exit code and the previous dataset untouched
byte for byte. The fault x command matrix is printed at the end of the session."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .conftest import (
    FAST_ENV,
    TEAM,
    content,
    error_lines,
    fingerprint,
    invoke,
    is_one_line_error,
    leftover_transactions,
    ok,
    stray_files,
)

PREVIOUS = ("2026-09-22", "2026-09-30")
NEW = ("2026-10-01", "2026-10-10")

COMMANDS = {
    "extract premium": (["extract", "premium", "--team", TEAM],
                        ["premium_usage", "premium_users", "premium_subscriptions", "premium_teams"]),
    "extract tokenflex": (["extract", "tokenflex"],
                          ["tokenflex_usage", "tokenflex_contracts", "tokenflex_enrichment"]),
}


@dataclass
class Fault:
    name: str
    spec: str
    expect: str = "either"  # either | clean-error
    sandbox: dict = field(default_factory=dict)
    env: dict = field(default_factory=dict)
    rewrite: dict | None = None
    only: str | None = None  # a command the fault applies to


MIXED = "429:0.12,500:0.08,502:0.05,503:0.08,reset:0.08,truncate:0.08,expire-url:0.3,job-error:0.2,retry-after-date:0.5"
FAULTS = [
    Fault("429 Retry-After: seconds", "429:0.4"),
    Fault("429 Retry-After: HTTP date", "429:0.4,retry-after-date:1"),
    Fault("500", "500:0.4"),
    Fault("502", "502:0.4"),
    Fault("503", "503:0.4"),
    Fault("connection reset", "reset:0.4"),
    Fault("slow response > read timeout", "slow:0.25", sandbox={"slow_seconds": 1.0}, env={"APS_HTTP_TIMEOUT": "0.4"}),
    Fault("truncated body / download", "truncate:0.4"),
    Fault("expired download URL", "expire-url:0.6"),
    Fault("job ERROR (Premium) / Error (TF export)", "job-error:0.35"),
    Fault("job FAILED", "job-error:0.35", rewrite={b'"status":"ERROR"': b'"status":"FAILED"'}, only="extract premium"),
    Fault("job TIMEOUT", "job-error:0.35", rewrite={b'"status":"ERROR"': b'"status":"TIMEOUT"'}, only="extract premium"),
    Fault("job EXPIRED", "job-error:0.35", rewrite={b'"status":"ERROR"': b'"status":"EXPIRED"'}, only="extract premium"),
    Fault("token endpoint 500/reset", "500:0.3,reset:0.2,auth:1"),
    Fault("mixed, high rates", MIXED),
    Fault("mixed + slow + auth", MIXED.replace("429:0.12", "429:0.1,slow:0.05") + ",auth:1",
          sandbox={"slow_seconds": 1.0}, env={"APS_HTTP_TIMEOUT": "0.5"}),
    Fault("every job fails", "job-error:1", expect="clean-error"),
    Fault("every download URL expired", "expire-url:1", expect="clean-error"),
    Fault("always 503", "503:1", expect="clean-error"),
    Fault("always reset", "reset:1", expect="clean-error"),
]


@pytest.fixture(scope="module")
def baselines(sandbox, tmp_path_factory):
    """Per command: the previous dataset (PREVIOUS range) and the expected one (PREVIOUS + NEW),
    both extracted from the fault-free session sandbox."""
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in FAST_ENV.items():
            mp.setenv(key, value)
        for command, (args, _) in COMMANDS.items():
            root = tmp_path_factory.mktemp(command.replace(" ", "-"))
            previous, expected = root / "previous", root / "expected"
            ok(invoke(previous, sandbox.base_url, *args, "--since", PREVIOUS[0], "--until", PREVIOUS[1]))
            shutil.copytree(previous, expected)
            ok(invoke(expected, sandbox.base_url, *args, "--since", NEW[0], "--until", NEW[1]))
            out[command] = (previous, expected)
    return out


def classify(result, data_dir: Path, expected: Path, before: dict, datasets: list[str]) -> tuple[str, str]:
    """(outcome, detail): identical | clean-error | BROKEN."""
    leftovers = stray_files(data_dir) + leftover_transactions(data_dir)
    if leftovers:
        return "BROKEN", f"files left where readers look or unfinished transactions: {leftovers}"
    if result.exit_code == 0:
        differing = [d for d in datasets if content(data_dir, d) != content(expected, d)]
        if differing:
            return "BROKEN", f"exit 0 but rows differ from a fault-free run in {differing}"
        return "identical", ""
    if not is_one_line_error(result):
        return "BROKEN", f"exit {result.exit_code} without one clean error line:\n{result.output[-1500:]}\n{result.exception!r}"
    if fingerprint(data_dir) != before:
        return "BROKEN", f"failed ({error_lines(result)[0]}) but the previous dataset changed"
    return "clean-error", error_lines(result)[0]


# On the S3 stand-in: a transient fault retried to the identical result, a torn download, and
# two that end in a clean error (the data dir on S3 must be unchanged); each command.
S3_FAULTS = ("503", "truncated body / download", "every job fails", "always reset")
FAULT_CASES = ([(f, c, "local") for f in FAULTS for c in COMMANDS]
               + [(f, c, "s3") for f in FAULTS if f.name in S3_FAULTS for c in COMMANDS])


@pytest.mark.parametrize("fault,command,place", FAULT_CASES, indirect=["place"],
                         ids=[f"{f.name}-{c}-{w}" for f, c, w in FAULT_CASES])
def test_fault(fault: Fault, command: str, place, baselines, start_sandbox, fast_env, tmp_path, fault_matrix):
    column = command if place.__name__ == "local" else f"{command} on S3"
    if fault.only and fault.only != command:
        fault_matrix.record(fault.name, column, "n/a")
        pytest.skip(f"{fault.name}: not a status of the {command} API")
    for key, value in fault.env.items():
        fast_env.setenv(key, value)
    args, datasets = COMMANDS[command]
    previous, expected = baselines[command]
    data_dir = place(previous)
    before = fingerprint(data_dir)

    faulty = start_sandbox(faults=fault.spec, rewrite=fault.rewrite, **fault.sandbox)
    result = invoke(data_dir, faulty.base_url, *args, "--since", NEW[0], "--until", NEW[1])
    outcome, detail = classify(result, data_dir, expected, before, datasets)
    fault_matrix.record(fault.name, column, outcome)

    assert outcome != "BROKEN", f"{fault.name} / {command}: {detail}"
    if fault.expect == "clean-error":
        assert outcome == "clean-error", f"{fault.name} / {command}: expected a clean error, got {outcome}"
    plan = faulty.state.faults
    injected = sum(1 for n in range(1, plan._counter + 1) if plan.decide(n))
    assert injected > 0, f"{fault.name}: the sandbox injected nothing; the run proves nothing"


class FailTeam:
    """ASGI wrapper: every insights call for one team answers 503 (the other teams are fine)."""

    def __init__(self, app, team: str):
        self.app, self.team, self.state = app, team, app.state

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and f"contextId={self.team}".encode() in scope.get("query_string", b""):
            await send({"type": "http.response.start", "status": 503, "headers": [(b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        return await self.app(scope, receive, send)


def _team_rows(data_dir: Path, dataset: str, column: str, team: str) -> list:
    from extractor.dataset import DataDir

    table = DataDir(data_dir).read(dataset)
    names = [n for n in table.column_names if n not in ("_extracted_at", "_source")]
    rows = [r for r in zip(*[table.column(n).to_pylist() for n in names]) if r[names.index(column)] == team]
    return sorted(rows, key=repr)


def test_a_failing_team_keeps_its_old_rows_and_the_others_commit(sandbox, fast_env, tmp_path, fault_matrix):
    """Teams are committed one by one: a team whose calls all fail keeps exactly its previous
    rows, a team extracted before it has its new rows; the run ends with one error line."""
    from extractor.sandbox.app import create_app
    from extractor.sandbox.server import start_in_thread

    good, bad = "4865648", "5230981"
    teams = ["--team", good, "--team", bad]
    previous, expected = tmp_path / "previous", tmp_path / "expected"
    ok(invoke(previous, sandbox.base_url, "extract", "premium", *teams, "--since", PREVIOUS[0], "--until", PREVIOUS[1]))
    shutil.copytree(previous, expected)
    ok(invoke(expected, sandbox.base_url, "extract", "premium", *teams, "--since", NEW[0], "--until", NEW[1]))
    data_dir = tmp_path / "data"
    shutil.copytree(previous, data_dir)

    app = create_app(data=sandbox.data, time_scale=0.02)
    server = start_in_thread(FailTeam(app, bad))
    try:
        fast_env.setenv("APS_HTTP_MAX_ATTEMPTS", "3")
        result = invoke(data_dir, server.base_url, "extract", "premium", *teams, "--since", NEW[0], "--until", NEW[1])
    finally:
        server.stop()
        app.state.sandbox.close()
    assert result.exit_code == 4 and is_one_line_error(result), result.output
    assert f"(team {bad})" in error_lines(result)[0], error_lines(result)[0]
    for dataset, column in (("premium_usage", "context_id"), ("premium_users", "team_id"),
                            ("premium_subscriptions", "team_id")):
        assert _team_rows(data_dir, dataset, column, good) == _team_rows(expected, dataset, column, good), dataset
        assert _team_rows(data_dir, dataset, column, bad) == _team_rows(previous, dataset, column, bad), dataset
    assert _team_rows(data_dir, "premium_usage", "context_id", good) != _team_rows(previous, "premium_usage", "context_id", good)
    assert not stray_files(data_dir) and not leftover_transactions(data_dir)
    fault_matrix.record("one team always 503 (2 teams)", "extract premium", "good team new, failing team old")


class CutRefreshAnswers:
    """ASGI wrapper: the token endpoint's answers to refresh requests are cut off after the
    server has rotated the refresh token (half the body, then the connection drops)."""

    def __init__(self, app):
        self.app, self.state, self.cut = app, app.state, 0
        self.enabled = False

    async def __call__(self, scope, receive, send):
        if not (self.enabled and scope["type"] == "http" and scope["path"] == "/authentication/v2/token"):
            return await self.app(scope, receive, send)
        from extractor.sandbox.middleware import _abort_connection

        body = bytearray()
        start = {}

        async def capture(message):
            if message["type"] == "http.response.start":
                start.update(message)
            else:
                body.extend(message.get("body", b""))

        await self.app(scope, receive, capture)
        if b"refresh_token" not in body:
            await send(start)
            await send({"type": "http.response.body", "body": bytes(body)})
            return
        self.cut += 1
        headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
        await send({**start, "headers": headers + [(b"content-length", str(len(body) + 64).encode())]})
        await send({"type": "http.response.body", "body": bytes(body[: len(body) // 2]), "more_body": True})
        _abort_connection(receive)


def test_lost_refresh_answer_asks_to_log_in_again(sandbox, fast_env, tmp_path, monkeypatch, fault_matrix):
    """A rotating refresh token is spent when the server answers; if the answer is lost, the
    saved login cannot be refreshed any more: the run stops with one line saying to log in
    again, and the dataset is untouched."""
    import webbrowser

    from extractor.sandbox.app import create_app
    from extractor.sandbox.server import start_in_thread

    from .conftest import follow_login

    app = create_app(data=sandbox.data, time_scale=0.02, token_ttl=60)  # tokens live 1.2 s
    cutter = CutRefreshAnswers(app)
    server = start_in_thread(cutter)
    monkeypatch.setattr(webbrowser, "open", follow_login)
    data_dir = tmp_path / "data"
    try:
        ok(invoke(data_dir, server.base_url, "auth", "login", "--timeout", "20"))
        ok(invoke(data_dir, server.base_url, "extract", "premium", "--team", TEAM, "--since", PREVIOUS[0],
                  "--until", PREVIOUS[1], "--reports", "usage"))
        before = fingerprint(data_dir)
        import time

        time.sleep(1.3)  # the saved access token has expired: the next run must refresh
        cutter.enabled = True
        result = invoke(data_dir, server.base_url, "extract", "premium", "--team", TEAM, "--since", NEW[0],
                        "--until", NEW[1], "--reports", "usage")
    finally:
        server.stop()
        app.state.sandbox.close()
    assert cutter.cut >= 1
    assert result.exit_code == 3 and is_one_line_error(result), result.output
    assert "auth login" in error_lines(result)[0], error_lines(result)[0]
    assert {k: v for k, v in fingerprint(data_dir).items() if "token" not in k} == \
        {k: v for k, v in before.items() if "token" not in k}
    fault_matrix.record("3-legged refresh answer lost", "extract premium", "clean-error")
