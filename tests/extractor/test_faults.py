"""Extraction through an unreliable sandbox: 429/5xx/resets/truncated bodies/expired URLs/
failed jobs at moderate rates give the same dataset as a clean run; a job that always
fails gives a one-line error naming it, exit 4, and leaves the previous dataset as it was;
no secret reaches the output, the logs or the Parquet files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from extractor.schemas import DATASETS

MODERATE = "429:0.08,500:0.04,502:0.02,503:0.04,reset:0.03,truncate:0.04,expire-url:0.2,job-error:0.1,retry-after-date:0.3"


def content(run, dataset: str) -> list[tuple]:
    """The rows of a dataset without the extraction metadata, sorted."""
    table = run.read(dataset)
    names = [n for n in table.column_names if n not in ("_extracted_at", "_source")]
    return sorted(zip(*[table.column(n).to_pylist() for n in names]), key=repr)


def snapshot(data_dir: Path) -> dict[str, str]:
    """What a reader sees: each Delta table's version and files, and the state in its commits."""
    from extractor.dataset import DataDir

    dd = DataDir(data_dir)
    return {name: f"{dd.table(name).version()} {dd.data_files(name)}" for name in DATASETS} | {
        "state": repr(dd.read_state())}


@pytest.fixture
def range_(sandbox):
    until = sandbox.data.end_date
    return until - dt.timedelta(days=20), until


def test_faulty_sandbox_gives_the_same_dataset(sandbox_factory, run, make_cli, tmp_path, range_):
    since, until = range_
    args = ["--since", str(since), "--until", str(until)]
    run("extract", "premium", "--team", "4865648", "--team", "5230981", *args)
    run("extract", "tokenflex", *args)

    faulty = sandbox_factory(faults=MODERATE)
    flaky = make_cli(faulty.base_url, tmp_path / "faulty")
    flaky("extract", "premium", "--team", "4865648", "--team", "5230981", *args)
    flaky("extract", "tokenflex", *args)

    # the faults did happen: count what the sandbox's plan drew
    plan = faulty.app_state.faults
    drawn = [kind for n in range(1, plan._counter + 1) for kind in plan.decide(n)]
    response_faults = [k for k in drawn if k in ("429", "500", "502", "503", "reset", "truncate")]
    assert len(response_faults) >= 3 and len(set(response_faults)) >= 2, drawn
    assert {"expire-url", "job-error"} <= set(drawn), drawn

    for dataset in ("premium_usage", "premium_users", "premium_subscriptions", "premium_teams",
                    "tokenflex_usage", "tokenflex_contracts", "tokenflex_enrichment"):
        clean_rows = content(run, dataset)
        assert clean_rows, dataset
        assert content(flaky, dataset) == clean_rows, dataset


def test_failing_job_is_named_and_leaves_the_dataset_untouched(sandbox_factory, make_cli, tmp_path, range_):
    since, until = range_
    args = ["--team", "5477102", "--since", str(since), "--until", str(until)]
    healthy = sandbox_factory()
    run = make_cli(healthy.base_url, tmp_path / "data")
    run("extract", "premium", *args)
    run("extract", "tokenflex", "--since", str(since), "--until", str(until))
    before = snapshot(run.data_dir)

    broken = sandbox_factory(faults="job-error:1")
    failing = make_cli(broken.base_url, run.data_dir)
    result = failing("extract", "premium", *args, ok=False)
    assert result.exit_code == 4
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and result.output.strip().endswith(errors[0]), result.output
    assert errors[0].startswith("Error: usage query ") and "(team 5477102, " in errors[0]
    assert "ended ERROR; gave up after 3 resubmissions" in errors[0]

    result = failing("extract", "tokenflex", "--since", str(since), "--until", str(until), ok=False)
    assert result.exit_code == 4
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Error: Token Flex export request " in errors[0] and "ended ERROR" in errors[0]
    assert snapshot(run.data_dir) == before


def test_secrets_never_reach_output_logs_or_files(sandbox_factory, make_cli, tmp_path, range_):
    since, until = range_
    faulty = sandbox_factory(faults="expire-url:0.5,500:0.1")
    run = make_cli(faulty.base_url, tmp_path / "data")
    from click.testing import CliRunner

    from extractor.cli import cli

    outputs = []
    for args in (["extract", "premium", "--team", "4865648"], ["extract", "tokenflex"]):
        result = CliRunner().invoke(cli, ["--data-dir", str(run.data_dir), "--base-url", run.base_url, "-vv",
                                          *args, "--since", str(since), "--until", str(until)], obj=None)
        assert result.exit_code == 0, result.output
        outputs.append(result.output)
    text = "\n".join(outputs)
    assert "DEBUG" in text  # the verbose log was on
    for secret in ("sandbox-secret", "sandbox-pat", "X-Amz-Signature", "Bearer ey", "access_token="):
        assert secret not in text, secret
    for path in [p for p in (run.data_dir / "raw").rglob("*") if p.is_file()] + list((run.data_dir / "state").glob("*.json")):
        if path.name == "token.json":
            continue
        blob = path.read_bytes()
        for secret in (b"sandbox-secret", b"sandbox-pat", b"X-Amz-Signature", b"sandbox-downloads"):
            assert secret not in blob, (path, secret)
    sources = set(run.read("tokenflex_usage")["_source"].to_pylist())
    assert all("?" not in s for s in sources)
