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

from .conftest import (FAST_ENV, TEAM, content, error_lines, fingerprint, invoke, is_one_line_error,
                       leftover_transactions, ok, stray_files)

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


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_fault(fault: Fault, command: str, baselines, start_sandbox, fast_env, tmp_path, fault_matrix):
    if fault.only and fault.only != command:
        fault_matrix.record(fault.name, command, "n/a")
        pytest.skip(f"{fault.name}: not a status of the {command} API")
    for key, value in fault.env.items():
        fast_env.setenv(key, value)
    args, datasets = COMMANDS[command]
    previous, expected = baselines[command]
    data_dir = tmp_path / "data"
    shutil.copytree(previous, data_dir)
    before = fingerprint(data_dir)

    faulty = start_sandbox(faults=fault.spec, rewrite=fault.rewrite, **fault.sandbox)
    result = invoke(data_dir, faulty.base_url, *args, "--since", NEW[0], "--until", NEW[1])
    outcome, detail = classify(result, data_dir, expected, before, datasets)
    fault_matrix.record(fault.name, command, outcome)

    assert outcome != "BROKEN", f"{fault.name} / {command}: {detail}"
    if fault.expect == "clean-error":
        assert outcome == "clean-error", f"{fault.name} / {command}: expected a clean error, got {outcome}"
    plan = faulty.state.faults
    injected = sum(1 for n in range(1, plan._counter + 1) if plan.decide(n))
    assert injected > 0, f"{fault.name}: the sandbox injected nothing; the run proves nothing"
