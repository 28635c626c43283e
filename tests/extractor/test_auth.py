"""OAuth against the sandbox: 2-legged + PAT, 3-legged login with PKCE through the local
listener (driven by an injected opener instead of a browser), refresh rotation saved at
once in a 0600 file, expired and revoked access tokens, logout."""

from __future__ import annotations

import json
import stat

import httpx
import pytest

from extractor.auth import DEFAULT_SCOPE, TOKENFLEX_LOGIN_SCOPE, Auth, FileTokenStore
from extractor.config import Settings
from extractor.errors import AuthError
from extractor.http import ApiClient


def follow_redirects(url: str) -> bool:
    """What a browser does: GET the authorize URL, follow the redirect to the listener."""
    response = httpx.get(url, follow_redirects=True, timeout=10)
    assert response.status_code == 200, response.text
    assert "login complete" in response.text
    return True


def login(run, scope: str = DEFAULT_SCOPE) -> dict:
    settings = Settings(data_dir=run.data_dir, base_url=run.base_url)
    auth = Auth(settings)
    try:
        return auth.login(open_browser=follow_redirects, show_url=lambda text: None, timeout=20, scope=scope)
    finally:
        auth.close()


def token_file(run) -> dict:
    return json.loads((run.data_dir / "state" / "token.json").read_text())


def test_two_legged_with_pat_lists_teams_and_status(run):
    result = run("teams")
    assert "New York Office" in result.output and "4865648" in result.output
    status = run("auth", "status")
    assert "2-legged" in status.output and "expires_at" in status.output
    assert "sandbox-secret" not in status.output and "sandbox-pat" not in status.output


def test_premium_without_pat_is_an_auth_error(run, fast_env):
    fast_env.delenv("APS_PAT")
    result = run("teams", ok=False)
    assert result.exit_code == 3
    assert "APS_PAT" in result.output


def test_wrong_secret_is_a_one_line_auth_error(run, fast_env):
    fast_env.setenv("APS_CLIENT_SECRET", "not-the-secret")
    result = run("contracts", ok=False)
    assert result.exit_code == 3
    assert "token request (client credentials) rejected: HTTP 401" in result.output
    assert "not-the-secret" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_three_legged_login_rotation_saved_at_once_0600(run, fast_env):
    fast_env.delenv("APS_PAT")  # a 3-legged admin token needs no PAT
    info = login(run)
    assert info["grant"] == "3-legged"
    path = run.data_dir / "state" / "token.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = token_file(run)
    assert first["refresh_token"] and first["grant"] == "3-legged"

    # the access token is about to expire: the next call refreshes and saves the new refresh token
    first["expires_at"] = 0
    FileTokenStore(path).save(first)
    assert "New York Office" in run("teams").output
    second = token_file(run)
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    # the old refresh token is spent: the sandbox refuses it
    spent = httpx.post(f"{run.base_url}/authentication/v2/token", auth=("sandbox-client", "sandbox-secret"),
                       data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
    assert spent.status_code == 400

    status = run("auth", "status", "--no-check")
    assert "3-legged" in status.output and second["access_token"] not in status.output

    assert "deleted" in run("auth", "logout").output
    assert not path.exists()
    assert "No saved login" in run("auth", "logout").output


def test_revoked_access_token_is_refreshed_once_on_401(run, fast_env):
    fast_env.delenv("APS_PAT")
    login(run)
    saved = token_file(run)
    saved["access_token"] = "revoked-access-token-value"  # still "valid" by its expiry
    FileTokenStore(run.data_dir / "state" / "token.json").save(saved)
    settings = Settings(data_dir=run.data_dir, base_url=run.base_url)
    auth = Auth(settings)
    with ApiClient(settings, auth) as api:
        teams = api.get_json("/insights/v1/contexts")
    assert teams and token_file(run)["access_token"] != "revoked-access-token-value"


def test_spent_refresh_token_asks_to_log_in_again(run, fast_env):
    fast_env.delenv("APS_PAT")
    login(run)
    saved = token_file(run)
    saved["expires_at"] = 0
    saved["refresh_token"] = "an-already-used-refresh-token"
    FileTokenStore(run.data_dir / "state" / "token.json").save(saved)
    result = run("teams", ok=False)
    assert result.exit_code == 3
    assert "auth login" in result.output and "an-already-used-refresh-token" not in result.output


def test_login_state_mismatch_is_refused(run):
    settings = Settings(data_dir=run.data_dir, base_url=run.base_url)

    def tampering_opener(url: str) -> bool:
        return follow_redirects(url.replace("state=", "state=x"))

    with pytest.raises(AuthError, match="state does not match"):
        Auth(settings).login(open_browser=tampering_opener, show_url=lambda text: None, timeout=20)
    assert not (run.data_dir / "state" / "token.json").exists()


def test_login_command_prints_the_url_with_no_browser(run):
    result = run("auth", "login", "--no-browser", "--timeout", "0.5", ok=False)
    assert result.exit_code == 3
    assert "/authentication/v2/authorize?" in result.output and "code_challenge_method=S256" in result.output
    assert "timed out" in result.output


def test_two_runs_sharing_a_login_do_not_spend_a_refresh_token_twice(run, fast_env):
    fast_env.delenv("APS_PAT")
    login(run)
    path = run.data_dir / "state" / "token.json"
    saved = token_file(run)
    saved["expires_at"] = 0
    FileTokenStore(path).save(saved)
    settings = Settings(data_dir=run.data_dir, base_url=run.base_url)
    first, second = Auth(settings), Auth(settings)  # both hold the expiring token
    token_a = first.access_token()  # refreshes and rotates
    token_b = second.access_token()  # must adopt the rotated login, not reuse the spent refresh token
    assert token_a == token_b != saved["access_token"]
    assert token_file(run)["refresh_token"] != saved["refresh_token"]
    with ApiClient(settings, second) as api:
        assert api.get_json("/insights/v1/contexts")
    first.close()
    second.close()


def test_login_command_with_the_browser_replaced(run, fast_env, monkeypatch):
    import extractor.commands.auth as auth_commands

    monkeypatch.setattr(auth_commands.webbrowser, "open", follow_redirects)
    fast_env.delenv("APS_PAT")
    result = run("auth", "login", "--timeout", "20")
    assert "Logged in (3-legged, scope data:read" in result.output
    saved = token_file(run)
    assert saved["refresh_token"] not in result.output and saved["access_token"] not in result.output
    assert "3-legged" in run("auth", "status").output
    assert "New York Office" in run("teams").output


def test_tokens_expiring_every_second_during_a_run(sandbox_factory, make_cli, fast_env, tmp_path):
    """Access tokens that live one second: a 3-legged run refreshes (and rotates) many times,
    each new refresh token saved, and the extraction completes with all its rows."""
    import datetime as dt

    box = sandbox_factory(token_ttl=50)  # 50 s x time_scale 0.02 = 1 s
    run = make_cli(box.base_url, tmp_path / "data")
    fast_env.delenv("APS_PAT")
    import time

    login(run, TOKENFLEX_LOGIN_SCOPE)
    first = token_file(run)["refresh_token"]
    until = box.data.end_date
    time.sleep(1.2)  # the login's token has expired: the next run must refresh, however fast it is
    run("extract", "tokenflex", "--since", str(until - dt.timedelta(days=20)), "--until", str(until))
    time.sleep(1.2)  # and again, with the refresh token the first run rotated and saved
    run("extract", "premium", "--team", "5012734", "--since", str(until - dt.timedelta(days=40)), "--until", str(until))
    assert run.read("tokenflex_usage").num_rows > 0 and run.read("premium_usage").num_rows > 0
    assert token_file(run)["refresh_token"] != first
    refreshes = len(box.app_state.oauth.spent_refresh_tokens)
    assert refreshes >= 2
    assert token_file(run)["refresh_token"] not in box.app_state.oauth.spent_refresh_tokens


def test_token_store_choice(run, fast_env):
    from extractor.auth import default_store, usable_keyring

    settings = Settings(data_dir=run.data_dir, base_url=run.base_url)
    assert isinstance(default_store(settings), FileTokenStore)
    fast_env.setenv("APS_TOKEN_STORE", "keyring")
    if not usable_keyring():
        with pytest.raises(AuthError, match="no usable keyring"):
            default_store(settings)
