"""``extract tokenflex`` and ``contracts`` against the sandbox, compared with its own data."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from extractor.dataset import DataDir


def expected_sessions(sandbox, since, until) -> pa.Table:
    tf = sandbox.data.tokenflex_usage
    return tf.filter(pc.and_(pc.greater_equal(tf["usage_date"], pa.scalar(since)),
                             pc.less_equal(tf["usage_date"], pa.scalar(until))))


def test_contracts_command_lists_the_contract(run, sandbox):
    result = run("contracts")
    assert sandbox.data.contract_number in result.output


def test_usage_contracts_enrichment_match_the_sandbox(run, sandbox):
    until = sandbox.data.end_date
    since = until - dt.timedelta(days=45)
    result = run("extract", "tokenflex", "--since", str(since), "--until", str(until))
    assert "1 contract(s)" in result.output

    usage = run.read("tokenflex_usage")
    want = expected_sessions(sandbox, since, until)
    assert usage.num_rows == want.num_rows
    assert sorted(usage["charged_item_id"].to_pylist()) == sorted(want["charged_item_id"].to_pylist())
    assert pc.sum(usage["tokens_consumed"]).as_py() == pytest.approx(pc.sum(want["tokens_consumed"]).as_py())
    assert pc.sum(usage["usage_minutes"]).as_py() == pytest.approx(pc.sum(want["usage_minutes"]).as_py())
    assert set(usage["usage_category"].to_pylist()) == set(want["usage_category"].to_pylist())
    assert set(usage["contract_number"].to_pylist()) == {sandbox.data.contract_number}
    # session timestamps and custom fields survived the CSV round trip
    desktop = usage.filter(pc.equal(usage["usage_category"], "DESKTOP_PRODUCT"))
    want_desktop = want.filter(pc.equal(want["usage_category"], "DESKTOP_PRODUCT"))
    assert desktop.num_rows and desktop["session_start_date"].null_count == 0
    assert sorted(desktop["session_start_date"].to_pylist()) == sorted(want_desktop["session_start_date"].to_pylist())
    assert set(usage["custom_field2"].to_pylist()) == set(want["custom_field2"].to_pylist())

    contracts = run.read("tokenflex_contracts")
    assert contracts.num_rows == sandbox.data.contracts.num_rows
    assert sorted(contracts["contract_year"].to_pylist()) == sorted(sandbox.data.contracts["contract_year"].to_pylist())
    assert pc.sum(contracts["provisioned_tokens"]).as_py() == pytest.approx(
        pc.sum(sandbox.data.contracts["provisioned_tokens"]).as_py())

    names = run.read("tokenflex_enrichment")
    assert dict(zip(names["custom_field"].to_pylist(), names["category_name"].to_pylist())) == dict(
        zip(sandbox.data.enrichment["custom_field"].to_pylist(), sandbox.data.enrichment["category_name"].to_pylist()))

    # same range again: replaced, no duplicates
    run("extract", "tokenflex", "--since", str(since), "--until", str(until))
    again = run.read("tokenflex_usage")
    assert again.num_rows == usage.num_rows
    assert run.read("tokenflex_contracts").num_rows == contracts.num_rows

    # incremental: from the state minus the lag
    result = run("extract", "tokenflex", "--until", str(until), "--lag-days", "5")
    assert f"{until - dt.timedelta(days=5)}..{until}" in result.output
    assert run.read("tokenflex_usage").num_rows == usage.num_rows


def test_unknown_contract_is_an_input_error(run):
    result = run("extract", "tokenflex", "--contract", "42", ok=False)
    assert result.exit_code == 2 and "--contract 42" in result.output


def test_client_side_limiter_keeps_a_long_session_free_of_429(sandbox_factory, fast_env, tmp_path):
    """70 Token Flex calls in a row: past the sandbox's burst of 50 without a client-side
    limiter the sandbox answers 429; with the token bucket at the server's rate, never."""
    from extractor.auth import Auth
    from extractor.config import Settings
    from extractor.http import ApiClient

    def session(rate_per_min: float, burst: float) -> ApiClient:
        fresh = sandbox_factory()  # its own rate-limit buckets
        settings = Settings(data_dir=tmp_path / f"data-{rate_per_min}", base_url=fresh.base_url, quiet=True)
        api = ApiClient(settings, Auth(settings), tokenflex_rate_per_min=rate_per_min, tokenflex_burst=burst)
        for _ in range(70):
            assert api.get_json("/tokenflex/v1/contract")
        api.close()
        return api

    unlimited = session(1e9, 1e9)
    assert unlimited.stats["rate_limited"] > 0  # the sandbox does enforce its limit
    paced = session(240, 50)  # a little under the sandbox's 250/min at time_scale 0.02
    assert paced.stats["rate_limited"] == 0
    assert paced.tokenflex_limiter.waited > 0


def test_python_api_on_its_own(sandbox, fast_env, tmp_path):
    """extract_tokenflex without the CLI, on a caller's client."""
    from extractor.auth import Auth
    from extractor.config import Settings
    from extractor.http import ApiClient
    from extractor.tokenflex import extract_tokenflex

    settings = Settings(data_dir=tmp_path / "data", base_url=sandbox.base_url, quiet=True)
    auth = Auth(settings)
    until = sandbox.data.end_date
    with ApiClient(settings, auth) as api:
        result = extract_tokenflex(settings, auth, since=until - dt.timedelta(days=9), until=until, api=api)
    usage = DataDir(settings.data_dir).read("tokenflex_usage")
    assert result.rows["tokenflex_usage"] == usage.num_rows
    assert usage.num_rows == expected_sessions(sandbox, until - dt.timedelta(days=9), until).num_rows


def test_a_held_data_dir_lock_is_exit_5(run):
    dd = DataDir(run.data_dir)
    with dd.lock("another run"):
        result = run("extract", "tokenflex", ok=False)
    assert result.exit_code == 5 and "another run" in result.output


def test_hashed_user_names_join_hashed_premium_emails(run, sandbox):
    """--hash-personal-data on both APIs: a Token Flex user name that is an email hashes to the
    same value as that email in Premium usage, so the user stays one user."""
    until = sandbox.data.end_date
    since = until - dt.timedelta(days=15)
    args = ["--since", str(since), "--until", str(until), "--hash-personal-data"]
    run("extract", "tokenflex", *args)
    run("extract", "premium", "--reports", "usage", *args)
    tf_users = set(run.read("tokenflex_usage")["user_name"].to_pylist())
    premium_emails = set(run.read("premium_usage")["email"].to_pylist())
    assert all(len(u) == 64 and "@" not in u for u in tf_users)
    clear = set(expected_sessions(sandbox, since, until)["user_name"].to_pylist())
    assert not tf_users & clear
    emails_in_tf = {u for u in clear if "@" in u}
    assert emails_in_tf  # most Token Flex user names are emails
    usage = sandbox.data.usage
    in_range = usage.filter(pc.and_(pc.greater_equal(usage["usage_date"], pa.scalar(since)),
                                    pc.less_equal(usage["usage_date"], pa.scalar(until))))
    both = emails_in_tf & set(in_range["email"].to_pylist())
    assert both and len(tf_users & premium_emails) == len(both)
