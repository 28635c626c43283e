"""Small HTTP helpers for the sandbox tests (plain httpx, no extractor code)."""

from __future__ import annotations

import gzip
import io
import time
import zipfile

import httpx

from extractor.sandbox import CLIENT_ID, CLIENT_SECRET, PAT


def token(base_url: str, scope: str = "data:read data:write") -> str:
    r = httpx.post(f"{base_url}/authentication/v2/token", data={"grant_type": "client_credentials", "scope": scope},
                   auth=(CLIENT_ID, CLIENT_SECRET))
    r.raise_for_status()
    return r.json()["access_token"]


class _RenewingToken(httpx.Auth):
    """Bearer auth that fetches a new 2-legged token when the sandbox says the old one expired
    (at time_scale 0.02 a token lives 72 s, less than a slow test module)."""

    def __init__(self, base_url: str, scope: str):
        self.base_url, self.scope = base_url, scope
        self.value = token(base_url, scope)

    def auth_flow(self, request):
        request.headers["Authorization"] = f"Bearer {self.value}"
        response = yield request
        if response.status_code == 401 and b"expired" in response.read():
            self.value = token(self.base_url, self.scope)
            request.headers["Authorization"] = f"Bearer {self.value}"
            yield request


def client(base_url: str, scope: str = "data:read data:write", pat: bool = True) -> httpx.Client:
    headers = {"ADSK-PAT": PAT} if pat else {}
    return httpx.Client(base_url=base_url, headers=headers, auth=_RenewingToken(base_url, scope), timeout=30)


def wait_for(fn, done, timeout: float = 10.0, interval: float = 0.01):
    """Call fn() until done(result) or timeout; returns the last result."""
    deadline = time.monotonic() + timeout
    while True:
        result = fn()
        if done(result) or time.monotonic() > deadline:
            return result
        time.sleep(interval)


def run_premium_query(c: httpx.Client, context_id: str, body: dict, limit: int = 1000) -> tuple[list, list]:
    """Submit, poll until COMPLETED, page through all rows; returns (columns, rows)."""
    r = c.post("/insights/v1/usage-queries", params={"contextId": context_id}, json=body)
    assert r.status_code == 200, r.text
    qid = r.json()["id"]
    res = wait_for(lambda: c.get(f"/insights/v1/usage-queries/{qid}", params={"limit": limit}).json(),
                   lambda j: j["status"] not in ("SUBMITTED", "RUNNING"))
    assert res["status"] == "COMPLETED", res
    rows, offset = [], 0
    total = res["pagination"]["totalResults"]
    while offset < total:
        page = c.get(f"/insights/v1/usage-queries/{qid}", params={"offset": offset, "limit": limit}).json()
        rows.extend(page["rows"])
        offset += limit
    return res["columns"], rows


def run_tokenflex_query(c: httpx.Client, contract: str, body: dict, limit: int = 1000) -> tuple[list, list]:
    r = c.post(f"/tokenflex/v1/usage/{contract}/query", json=body)
    assert r.status_code == 200, r.text
    qid = r.json()["id"]
    res = wait_for(lambda: c.get(f"/tokenflex/v1/usage/{contract}/query/{qid}", params={"limit": limit}).json(),
                   lambda j: j["status"] not in ("QUEUED", "PROCESSING"))
    assert res["status"] == "DONE", res
    rows, offset = [], 0
    while offset < res["result"]["total"]:
        page = c.get(f"/tokenflex/v1/usage/{contract}/query/{qid}", params={"offset": offset, "limit": limit}).json()
        rows.extend(page["result"]["rows"])
        offset += limit
    return res["result"]["columns"], rows


def decode_download(raw: bytes) -> bytes:
    """A downloaded export file's bytes, un-gzipped or un-zipped by its magic bytes."""
    if raw[:2] == b"\x1f\x8b":
        return gzip.decompress(raw)
    if raw[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            return zf.read(zf.namelist()[0])
    return raw


def export(api: httpx.Client, body: dict, wait: bool = True) -> dict:
    """POST an insights export; unless ``wait`` is false, poll until it leaves SUBMITTED."""
    r = api.post("/insights/v1/exports", json=body)
    assert r.status_code == 200, r.text
    submitted = r.json()
    assert submitted["status"] == "SUBMITTED" and submitted["downloads"] == []
    if not wait:
        return submitted
    return wait_for(lambda: api.get(f"/insights/v1/exports/{submitted['id']}").json(), lambda j: j["status"] != "SUBMITTED")
