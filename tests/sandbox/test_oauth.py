"""OAuth v2 contract: client credentials, PKCE authorization code, refresh rotation, expiry, scopes, PAT."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from extractor import DEFAULT_CALLBACK_URL
from extractor.sandbox import CLIENT_ID, CLIENT_SECRET, PAT

TOKEN = "/authentication/v2/token"


def pkce_pair():
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def login(base_url: str, scope="data:read data:write", verifier=None, challenge=None, redirect=DEFAULT_CALLBACK_URL):
    if verifier is None:
        verifier, challenge = pkce_pair()
    r = httpx.get(f"{base_url}/authentication/v2/authorize", params={
        "response_type": "code", "client_id": CLIENT_ID, "redirect_uri": redirect, "scope": scope,
        "state": "xyz", "code_challenge": challenge, "code_challenge_method": "S256"})
    assert r.status_code == 302
    location = urlparse(r.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == redirect
    q = parse_qs(location.query)
    assert q["state"] == ["xyz"]
    return q["code"][0], verifier


def test_client_credentials_basic_and_form(sandbox):
    r = httpx.post(sandbox.base_url + TOKEN, data={"grant_type": "client_credentials", "scope": "data:read"},
                   auth=(CLIENT_ID, CLIENT_SECRET))
    body = r.json()
    assert r.status_code == 200 and body["token_type"] == "Bearer" and body["expires_in"] >= 1
    assert "refresh_token" not in body
    r = httpx.post(sandbox.base_url + TOKEN, data={"grant_type": "client_credentials", "client_id": CLIENT_ID,
                                                   "client_secret": CLIENT_SECRET})
    assert r.status_code == 200


@pytest.mark.parametrize("auth, form", [
    ((CLIENT_ID, "wrong"), {}),
    (("someone-else", CLIENT_SECRET), {}),
    (None, {"client_id": CLIENT_ID}),
])
def test_unknown_credentials_401(sandbox, auth, form):
    r = httpx.post(sandbox.base_url + TOKEN, data={"grant_type": "client_credentials", **form}, auth=auth)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


def test_bad_grant_and_scope(sandbox):
    r = httpx.post(sandbox.base_url + TOKEN, data={"grant_type": "password"}, auth=(CLIENT_ID, CLIENT_SECRET))
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"
    r = httpx.post(sandbox.base_url + TOKEN, data={"grant_type": "client_credentials", "scope": "root:all"},
                   auth=(CLIENT_ID, CLIENT_SECRET))
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"


def test_pkce_code_flow_and_refresh_rotation(sandbox):
    code, verifier = login(sandbox.base_url)
    # public client: no secret, the verifier proves it
    r = httpx.post(sandbox.base_url + TOKEN, data={"grant_type": "authorization_code", "code": code, "client_id": CLIENT_ID,
                                                   "code_verifier": verifier, "redirect_uri": DEFAULT_CALLBACK_URL})
    assert r.status_code == 200, r.text
    first = r.json()
    assert first["refresh_token"] and first["access_token"]
    # the code is single-use
    r = httpx.post(sandbox.base_url + TOKEN, data={"grant_type": "authorization_code", "code": code, "client_id": CLIENT_ID,
                                                   "code_verifier": verifier})
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    # a 3-legged token reads insights without a PAT
    r = httpx.get(sandbox.base_url + "/insights/v1/contexts", headers={"Authorization": f"Bearer {first['access_token']}"})
    assert r.status_code == 200
    # refresh rotates: new refresh token works, the old one is spent
    r = httpx.post(sandbox.base_url + TOKEN, data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"],
                                                   "client_id": CLIENT_ID})
    assert r.status_code == 200
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"]
    r = httpx.post(sandbox.base_url + TOKEN, data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"],
                                                   "client_id": CLIENT_ID})
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    # narrowing the scope on refresh is allowed, widening is not
    r = httpx.post(sandbox.base_url + TOKEN, data={"grant_type": "refresh_token", "refresh_token": second["refresh_token"],
                                                   "client_id": CLIENT_ID, "scope": "data:read"})
    assert r.status_code == 200 and r.json()["scope"] == "data:read"


def test_pkce_wrong_verifier_rejected(sandbox):
    code, _ = login(sandbox.base_url)
    r = httpx.post(sandbox.base_url + TOKEN, data={"grant_type": "authorization_code", "code": code, "client_id": CLIENT_ID,
                                                   "code_verifier": "not-the-verifier", "redirect_uri": DEFAULT_CALLBACK_URL})
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_authorize_rejects_bad_requests(sandbox):
    base = {"response_type": "code", "client_id": CLIENT_ID, "redirect_uri": DEFAULT_CALLBACK_URL}
    assert httpx.get(sandbox.base_url + "/authentication/v2/authorize", params={**base, "client_id": "x"}).status_code == 400
    assert httpx.get(sandbox.base_url + "/authentication/v2/authorize",
                     params={**base, "code_challenge": "abc", "code_challenge_method": "plain"}).status_code == 400
    assert httpx.get(sandbox.base_url + "/authentication/v2/authorize", params={**base, "response_type": "password"}).status_code == 400


def test_token_expires(sandbox_factory):
    sb = sandbox_factory(token_ttl=1, time_scale=0.3)  # expires_in 0.3 s, reported as 1
    r = httpx.post(sb.base_url + TOKEN, data={"grant_type": "client_credentials"}, auth=(CLIENT_ID, CLIENT_SECRET))
    token = r.json()["access_token"]
    headers = {"Authorization": f"Bearer {token}", "ADSK-PAT": PAT}
    assert httpx.get(sb.base_url + "/insights/v1/contexts", headers=headers).status_code == 200
    time.sleep(0.4)
    r = httpx.get(sb.base_url + "/insights/v1/contexts", headers=headers)
    assert r.status_code == 401 and "expired" in r.json()["developerMessage"]


def test_auth_errors_on_api_calls(sandbox):
    base = sandbox.base_url
    read = httpx.post(base + TOKEN, data={"grant_type": "client_credentials", "scope": "data:read"},
                      auth=(CLIENT_ID, CLIENT_SECRET)).json()["access_token"]
    write = httpx.post(base + TOKEN, data={"grant_type": "client_credentials", "scope": "data:write"},
                       auth=(CLIENT_ID, CLIENT_SECRET)).json()["access_token"]
    # no header / unknown token -> 401 in Autodesk's error shape
    r = httpx.get(base + "/insights/v1/contexts")
    assert r.status_code == 401 and set(r.json()) == {"developerMessage", "errorCode", "moreInfo"}
    assert httpx.get(base + "/insights/v1/contexts", headers={"Authorization": "Bearer nope", "ADSK-PAT": PAT}).status_code == 401
    # 2-legged without (or with a wrong) PAT on insights -> 401
    assert httpx.get(base + "/insights/v1/contexts", headers={"Authorization": f"Bearer {read}"}).status_code == 401
    assert httpx.get(base + "/insights/v1/contexts",
                     headers={"Authorization": f"Bearer {read}", "ADSK-PAT": "wrong"}).status_code == 401
    # scopes: every insights call needs data:read, POSTs included (the Power BI connector and the
    # PAT sample ask for data:read only); data:write alone does not read
    assert httpx.get(base + "/insights/v1/contexts", headers={"Authorization": f"Bearer {write}", "ADSK-PAT": PAT}).status_code == 403
    r = httpx.post(base + "/insights/v1/usage-queries", params={"contextId": "4865648"},
                   headers={"Authorization": f"Bearer {read}", "ADSK-PAT": PAT}, json={"metrics": ["uniqueUsers"]})
    assert r.status_code == 200
    r = httpx.post(base + "/insights/v1/usage-queries", params={"contextId": "4865648"},
                   headers={"Authorization": f"Bearer {write}", "ADSK-PAT": PAT}, json={"metrics": ["uniqueUsers"]})
    assert r.status_code == 403 and "data:read" in r.json()["developerMessage"]
    # ... except the Token Flex usage query, which works with data:read; Token Flex needs no PAT
    contract = sandbox.data.contract_number
    r = httpx.post(f"{base}/tokenflex/v1/usage/{contract}/query", headers={"Authorization": f"Bearer {read}"},
                   json={"metrics": ["tokensConsumed"]})
    assert r.status_code == 200
    r = httpx.post(f"{base}/tokenflex/v1/export/{contract}/requests", headers={"Authorization": f"Bearer {read}"},
                   json={"metrics": ["tokensConsumed"], "downloadFileName": "x"})
    assert r.status_code == 403
