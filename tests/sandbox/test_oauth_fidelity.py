"""APS OAuth v2 as Autodesk's own clients use it: the implicit grant of the browser samples, every
documented scope, the registered Callback URL, doubled slashes (the official SDK), /userinfo,
and CORS preflights of a static page calling the APIs from the browser."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from extractor import DEFAULT_CALLBACK_URL
from extractor.sandbox import CLIENT_ID, CLIENT_SECRET, PAT

from .helpers import token

AUTHORIZE = "/authentication/v2/authorize"
TOKEN = "/authentication/v2/token"
DOCUMENTED_SCOPES = ["user-profile:read", "user:read", "user:write", "viewables:read", "data:read", "data:write",
                     "data:create", "data:search", "bucket:create", "bucket:read", "bucket:update", "bucket:delete",
                     "code:all", "account:read", "account:write", "openid",
                     "data:read:urn:adsk.wipprod:dm.lineage:hC6k4hndRWaeIVhIjvHu8w"]


def implicit_token(base_url: str, scope: str = "data:read", redirect: str = DEFAULT_CALLBACK_URL) -> dict:
    """What a browser sample does: authorize with response_type=token, read the redirect fragment."""
    r = httpx.get(base_url + AUTHORIZE, params={"response_type": "token", "client_id": CLIENT_ID,
                                                "redirect_uri": redirect, "scope": scope, "state": "s1"})
    assert r.status_code == 302, r.text
    location = urlparse(r.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == redirect and not location.query
    return {k: v[0] for k, v in parse_qs(location.fragment).items()}


def test_implicit_grant_token_in_fragment(sandbox):
    got = implicit_token(sandbox.base_url, "data:read")
    assert got["token_type"] == "Bearer" and int(got["expires_in"]) >= 1 and got["state"] == "s1"
    assert "refresh_token" not in got and "code" not in got
    # a 3-legged token: insights answers without a PAT
    r = httpx.get(sandbox.base_url + "/insights/v1/contexts", headers={"Authorization": f"Bearer {got['access_token']}"})
    assert r.status_code == 200 and r.json()


@pytest.mark.parametrize("scope", DOCUMENTED_SCOPES)
def test_every_documented_scope_is_granted(sandbox, scope):
    r = httpx.post(sandbox.base_url + TOKEN, data={"grant_type": "client_credentials", "scope": scope},
                   auth=(CLIENT_ID, CLIENT_SECRET))
    assert r.status_code == 200, r.text
    assert implicit_token(sandbox.base_url, scope)["access_token"]


def test_unknown_scope_refused_in_the_aps_error_shape(sandbox):
    r = httpx.post(sandbox.base_url + TOKEN, data={"grant_type": "client_credentials", "scope": "data:read files:all"},
                   auth=(CLIENT_ID, CLIENT_SECRET))
    body = r.json()
    assert r.status_code == 400 and body["error"] == "invalid_scope"
    assert body["errorCode"].startswith("AUTH-") and "files:all" in body["developerMessage"] and "moreInfo" in body
    r = httpx.get(sandbox.base_url + AUTHORIZE, params={"response_type": "code", "client_id": CLIENT_ID,
                                                        "redirect_uri": DEFAULT_CALLBACK_URL, "scope": "data:read:"})
    assert r.status_code == 400 and "location" not in r.headers


def test_unregistered_callback_is_an_error_page_not_a_redirect(sandbox):
    for response_type in ("code", "token"):
        r = httpx.get(sandbox.base_url + AUTHORIZE, params={
            "response_type": response_type, "client_id": CLIENT_ID, "redirect_uri": "http://localhost:9999/callback",
            "scope": "data:read"})
        assert r.status_code == 400 and "location" not in r.headers
        assert "Invalid redirect_uri" in r.text and "localhost:9999" in r.text


def test_token_exchange_checks_the_registered_callback(sandbox_factory):
    mine = "http://127.0.0.1:5555/cb"
    sb = sandbox_factory(callback_urls=[mine])
    assert sb.app_state.oauth.callback_urls == [mine]
    base = {"response_type": "code", "client_id": CLIENT_ID, "scope": "data:read"}
    # the default is no longer registered on this app, nor is the same URL with another port
    assert httpx.get(sb.base_url + AUTHORIZE, params={**base, "redirect_uri": DEFAULT_CALLBACK_URL}).status_code == 400
    assert httpx.get(sb.base_url + AUTHORIZE, params={**base, "redirect_uri": "http://127.0.0.1:5556/cb"}).status_code == 400

    def code() -> str:
        r = httpx.get(sb.base_url + AUTHORIZE, params={**base, "redirect_uri": mine})
        assert r.status_code == 302 and r.headers["location"].startswith(mine + "?code=")
        return parse_qs(urlparse(r.headers["location"]).query)["code"][0]

    exchange = {"grant_type": "authorization_code", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    r = httpx.post(sb.base_url + TOKEN, data={**exchange, "code": code(), "redirect_uri": "http://127.0.0.1:1/x"})
    assert r.status_code == 400 and "redirect_uri" in r.json()["developerMessage"]
    r = httpx.post(sb.base_url + TOKEN, data={**exchange, "code": code()})  # redirect_uri is required
    assert r.status_code == 400 and r.json()["errorCode"] == "AUTH-008"
    r = httpx.post(sb.base_url + TOKEN, data={**exchange, "code": code(), "redirect_uri": mine})
    assert r.status_code == 200 and r.json()["refresh_token"]


def test_refresh_may_widen_back_to_the_granted_scopes(sandbox):
    """Autodesk's aps-tokenflex sample: narrow to viewables:read, later refresh that token with
    the full internal scopes again."""
    r = httpx.get(sandbox.base_url + AUTHORIZE, params={"response_type": "code", "client_id": CLIENT_ID, "scope":
                                                        "data:read data:write viewables:read",
                                                        "redirect_uri": DEFAULT_CALLBACK_URL})
    code = parse_qs(urlparse(r.headers["location"]).query)["code"][0]
    form = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    first = httpx.post(sandbox.base_url + TOKEN, data={**form, "grant_type": "authorization_code", "code": code,
                                                      "redirect_uri": DEFAULT_CALLBACK_URL}).json()
    public = httpx.post(sandbox.base_url + TOKEN, data={**form, "grant_type": "refresh_token", "scope": "viewables:read",
                                                       "refresh_token": first["refresh_token"]}).json()
    assert public["scope"] == "viewables:read"
    internal = httpx.post(sandbox.base_url + TOKEN, data={**form, "grant_type": "refresh_token",
                                                         "scope": "data:read data:write",
                                                         "refresh_token": public["refresh_token"]})
    assert internal.status_code == 200 and internal.json()["scope"] == "data:read data:write"
    beyond = httpx.post(sandbox.base_url + TOKEN, data={**form, "grant_type": "refresh_token", "scope": "code:all",
                                                       "refresh_token": internal.json()["refresh_token"]})
    assert beyond.status_code == 400 and beyond.json()["error"] == "invalid_scope"


@pytest.mark.parametrize("method, path", [
    ("POST", "//authentication/v2/token"),
    ("GET", "//insights/v1/contexts"),
    ("GET", "/insights//v1/contexts"),
    ("GET", "//tokenflex/v1//contract"),
])
def test_doubled_slashes_answered_like_single(sandbox, method, path):
    """The official APS SDK joins a base URL ending in '/' with '/authentication/...'."""
    read = token(sandbox.base_url, "data:read")
    if method == "POST":
        r = httpx.post(sandbox.base_url + path, data={"grant_type": "client_credentials", "scope": "data:read"},
                       auth=(CLIENT_ID, CLIENT_SECRET))
    else:
        r = httpx.get(sandbox.base_url + path, headers={"Authorization": f"Bearer {read}", "ADSK-PAT": PAT})
    assert r.status_code == 200, r.text


def test_userinfo_for_three_legged_tokens_only(sandbox):
    three = implicit_token(sandbox.base_url, "data:read")["access_token"]
    r = httpx.get(sandbox.base_url + "/userinfo", headers={"Authorization": f"Bearer {three}"})
    info = r.json()
    assert r.status_code == 200
    assert {"sub", "name", "given_name", "family_name", "preferred_username", "email", "email_verified"} <= set(info)
    assert info["email"] == "admin@acme-design.example" and info["email_verified"] is True
    two = token(sandbox.base_url, "data:read")
    r = httpx.get(sandbox.base_url + "/userinfo", headers={"Authorization": f"Bearer {two}"})
    assert r.status_code == 401 and "three-legged" in r.json()["developerMessage"]
    assert httpx.get(sandbox.base_url + "/userinfo").status_code == 401


@pytest.mark.parametrize("method, path", [
    ("POST", "/authentication/v2/token"),
    ("GET", "/insights/v1/contexts"),
    ("POST", "/insights/v1/usage-queries"),
    ("GET", "/insights/v1/exports/some-id"),
    ("POST", "/tokenflex/v1/export/110000000001/requests"),
    ("DELETE", "/tokenflex/v1/export/110000000001/requests/2026-01-01T00%3A00%3A00%23x"),
    ("GET", "/userinfo"),
])
def test_cors_preflight_on_every_route(sandbox, method, path):
    asked = "authorization, adsk-pat, content-type, accept-language"
    r = httpx.options(sandbox.base_url + path, headers={
        "Origin": "https://autodesk-platform-services.github.io", "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": asked})
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] in ("*", "https://autodesk-platform-services.github.io")
    assert method in r.headers["access-control-allow-methods"]
    allowed = {h.strip().lower() for h in r.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "adsk-pat", "content-type", "accept-language"} <= allowed


def test_cors_headers_on_answers_and_refusals(sandbox):
    origin = {"Origin": "https://example.github.io"}
    read = token(sandbox.base_url, "data:read")
    ok = httpx.get(sandbox.base_url + "/insights/v1/contexts", headers={**origin, "Authorization": f"Bearer {read}",
                                                                        "ADSK-PAT": PAT})
    refused = httpx.get(sandbox.base_url + "/insights/v1/contexts", headers=origin)
    assert ok.status_code == 200 and refused.status_code == 401
    assert ok.headers["access-control-allow-origin"] == refused.headers["access-control-allow-origin"] == "*"
