"""Fault injection: spec parsing, reproducibility, and every fault observed over real HTTP."""

from __future__ import annotations

import email.utils
import time

import httpx
import pytest

from extractor.sandbox import CLIENT_ID, CLIENT_SECRET
from extractor.sandbox.faults import FaultPlan, FaultSpecError

from .helpers import client, wait_for


def test_spec_parsing():
    plan = FaultPlan.parse("429:0.1, 500:0.05,reset:0.02,slow:0.05,truncate:0.02,expire-url:0.1,job-error:0.05,"
                           "retry-after-date:0.5,502:0.02,503:0.02")
    assert plan.rates["429"] == 0.1 and plan.rates["retry-after-date"] == 0.5 and not plan.include_auth
    assert FaultPlan.parse("job-error").rates == {"job-error": 1.0}
    assert FaultPlan.parse("auth:1,500:0.1").include_auth
    for bad in ("teapot:0.1", "429:lots", "500:1.5", "429:0.6,500:0.6"):
        with pytest.raises(FaultSpecError):
            FaultPlan.parse(bad)


def test_reproducible_from_the_seed():
    spec = "429:0.2,500:0.1,reset:0.05,expire-url:0.3"
    a = [FaultPlan.parse(spec, seed=1).decide(n) for n in range(300)]
    b = [FaultPlan.parse(spec, seed=1).decide(n) for n in range(300)]
    c = [FaultPlan.parse(spec, seed=2).decide(n) for n in range(300)]
    assert a == b and a != c
    share = sum("429" in x for x in a) / len(a)
    assert 0.12 < share < 0.28
    assert all(len(x & {"429", "500", "reset"}) <= 1 for x in a)


def _token(base_url):
    return httpx.post(base_url + "/authentication/v2/token", data={"grant_type": "client_credentials",
                                                                   "scope": "data:read data:write"},
                      auth=(CLIENT_ID, CLIENT_SECRET))


@pytest.mark.parametrize("code", ["429", "500", "502", "503"])
def test_status_faults(sandbox_factory, code):
    sb = sandbox_factory(faults=f"{code}:1")
    assert _token(sb.base_url).status_code == 200  # the token endpoint is spared
    with client(sb.base_url) as api:
        r = api.get("/insights/v1/contexts")
        assert r.status_code == int(code) and r.json()["errorCode"] == f"SANDBOX_{code}"
        if code == "429":
            assert int(r.headers["Retry-After"]) >= 1


def test_retry_after_as_http_date(sandbox_factory):
    sb = sandbox_factory(faults="429:1,retry-after-date:1")
    with client(sb.base_url) as api:
        r = api.get("/tokenflex/v1/contract")
    when = email.utils.parsedate_to_datetime(r.headers["Retry-After"])
    assert r.status_code == 429 and 0 <= when.timestamp() - time.time() <= 3


def test_auth_faults_only_when_asked(sandbox_factory):
    sb = sandbox_factory(faults="503:1,auth:1")
    assert _token(sb.base_url).status_code == 503


def test_reset_closes_the_connection(sandbox_factory):
    sb = sandbox_factory(faults="reset:1")
    with client(sb.base_url) as api, pytest.raises((httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectError)):
        api.get("/insights/v1/contexts")


def test_slow_goes_past_a_read_timeout(sandbox_factory):
    sb = sandbox_factory(faults="slow:1", slow_seconds=0.6)
    with client(sb.base_url) as api:
        with pytest.raises(httpx.ReadTimeout):
            api.get("/insights/v1/contexts", timeout=0.2)
        assert api.get("/insights/v1/contexts", timeout=5).status_code == 200  # slow, not broken


def test_truncate_sends_less_than_content_length(sandbox_factory):
    sb = sandbox_factory(faults="truncate:1")
    with client(sb.base_url) as api, pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        api.get("/insights/v1/contexts")


def test_expire_url_and_job_error(sandbox_factory):
    sb = sandbox_factory(faults="expire-url:1")
    with client(sb.base_url) as api:
        e = api.post("/insights/v1/exports", json={"outputFormat": "CSV", "reports": ["USERS"]}).json()
        done = wait_for(lambda: api.get(f"/insights/v1/exports/{e['id']}").json(), lambda j: j["status"] != "SUBMITTED")
        r = httpx.get(done["downloads"][0]["downloadURL"])
        assert r.status_code == 403 and b"expired" in r.content
    sb = sandbox_factory(faults="job-error:1")
    n = sb.data.contract_number
    with client(sb.base_url) as api:
        qid = api.post("/insights/v1/usage-queries", params={"contextId": sb.data.teams["context_id"][0].as_py()},
                       json={"metrics": ["uniqueUsers"]}).json()["id"]
        status = wait_for(lambda: api.get(f"/insights/v1/usage-queries/{qid}").json()["status"],
                          lambda s: s not in ("SUBMITTED", "RUNNING"))
        assert status == "ERROR"
        e = api.post("/insights/v1/exports", json={"outputFormat": "CSV", "reports": ["USERS"]}).json()
        assert wait_for(lambda: api.get(f"/insights/v1/exports/{e['id']}").json()["status"],
                        lambda s: s != "SUBMITTED") == "ERROR"
        statuses = set()
        for k in range(6):  # FAILED or TIMEOUT, depending on the query
            qid = api.post(f"/tokenflex/v1/usage/{n}/query", json={"metrics": ["useCount"], "where": f"contractYear = {k}"}).json()["id"]
            statuses.add(wait_for(lambda qid=qid: api.get(f"/tokenflex/v1/usage/{n}/query/{qid}").json()["status"],
                                  lambda s: s not in ("QUEUED", "PROCESSING")))
        assert statuses == {"FAILED", "TIMEOUT"}
        from urllib.parse import quote

        key = api.post(f"/tokenflex/v1/export/{n}/requests", json={"metrics": ["useCount"], "downloadFileName": "x"}).json()["requestKey"]
        url = f"/tokenflex/v1/export/{n}/requests/{quote(key, safe='')}"
        assert wait_for(lambda: api.get(url).json()["requestStatus"], lambda s: s != "Requested") == "Error"
        sb.app_state.faults = FaultPlan.parse(None)  # the service recovers; retry now succeeds
        assert api.post(url + "/retry").json()["requestStatus"] == "Requested"
        assert wait_for(lambda: api.get(url).json()["requestStatus"], lambda s: s != "Requested") == "Download"


def test_mixed_faults_are_the_same_sequence_on_a_rerun(sandbox_factory):
    def run():
        sb = sandbox_factory(faults="429:0.2,500:0.2,expire-url:0.5", rate_limits=False)
        out = []
        with client(sb.base_url) as api:
            for _ in range(25):
                out.append(api.get("/tokenflex/v1/contract").status_code)
        return out
    first, second = run(), run()
    assert first == second and {200, 429, 500} <= set(first)
