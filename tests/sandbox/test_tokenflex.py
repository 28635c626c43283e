"""tokenflex/v1 contract tests over real HTTP; answers checked against sandbox.data independently."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import time
from urllib.parse import quote

import duckdb
import httpx
import pytest

from .helpers import client, run_tokenflex_query, wait_for

EXPORTS = "/tokenflex/v1/export/{n}/requests"


@pytest.fixture(scope="module")
def api(sandbox):
    with client(sandbox.base_url, pat=False) as c:
        yield c


@pytest.fixture(scope="module")
def db(sandbox):
    con = duckdb.connect()
    con.register("tf", sandbox.data.tokenflex_usage)
    yield con
    con.close()


@pytest.fixture(scope="module")
def n(sandbox):
    return sandbox.data.contract_number


def test_contracts_and_years(api, sandbox, db, n):
    listing = api.get("/tokenflex/v1/contract").json()
    assert listing == [{"contractNumber": n, "contractName": listing[0]["contractName"],
                        "contractStartDate": listing[0]["contractStartDate"],
                        "contractEndDate": listing[0]["contractEndDate"], "isActive": True}]
    detail = api.get(f"/tokenflex/v1/contract/{n}").json()
    assert detail["multiyearProvisionedTokens"] == sum(y["provisionedTokens"] for y in detail["contractYears"])
    sums = dict(db.execute("SELECT contract_year, sum(tokens_consumed) FROM tf GROUP BY ALL").fetchall())
    for y in detail["contractYears"]:
        assert set(y) == {"year", "startDate", "endDate", "provisionedTokens", "consumedTokens", "remainingTokens",
                          "multiyearTokensAtStart", "multiyearConsumedTokens"}
        assert y["consumedTokens"] == sums.get(y["year"], 0)
        assert y["remainingTokens"] == y["provisionedTokens"] - y["consumedTokens"]
    assert api.get("/tokenflex/v1/contract/999").status_code == 404


def test_enrichment(api, db, n):
    names = api.get(f"/tokenflex/v1/contract/{n}/enrichment").json()
    assert len(names) == 10 and names[0] == "GEO" and "Cost Center" in names
    values = api.get(f"/tokenflex/v1/contract/{n}/enrichment/{quote('Cost Center')}").json()
    assert values == [r[0] for r in db.execute("SELECT DISTINCT custom_field3 FROM tf ORDER BY 1").fetchall()]
    assert api.get(f"/tokenflex/v1/contract/{n}/enrichment/customField1").json() == \
        api.get(f"/tokenflex/v1/contract/{n}/enrichment/GEO").json()
    assert api.get(f"/tokenflex/v1/contract/{n}/enrichment/Nope").status_code == 404


def test_usage_summary_and_last(api, db, n, sandbox):
    rows = api.get(f"/tokenflex/v1/usage/{n}/summary", params={"minUsageMonth": "2026-09", "contractYear": 2}).json()
    expected = db.execute("""SELECT strftime(usage_month, '%Y-%m-%d'), contract_year, usage_category, count(DISTINCT user_name),
                             sum(tokens_consumed) FROM tf WHERE usage_month >= DATE '2026-09-01' AND contract_year = 2
                             GROUP BY ALL ORDER BY ALL""").fetchall()
    assert [(r["usageMonth"], r["contractYear"], r["usageCategory"], r["uniqueUsers"], r["tokensConsumed"]) for r in rows] == expected
    assert api.get(f"/tokenflex/v1/usage/{n}/summary", params={"minUsageMonth": "soon"}).status_code == 400
    last = api.get(f"/tokenflex/v1/usage/{n}/last").json()
    assert {r["usageCategory"] for r in last} >= {"DESKTOP_PRODUCT"}
    assert max(r["lastUsageDate"] for r in last) <= sandbox.data.end_date.isoformat()
    assert all(set(r) == {"usageCategory", "chargeCategory", "lastUsageDate", "lastProcessDate"} for r in last)


@pytest.mark.parametrize("body, sql", [
    ({"fields": ["usageCategory", "productName"], "metrics": ["tokensConsumed"],
      "where": "contractYear=1 AND productName IN ('Revit', 'AutoCAD', 'Fusion', 'Vault Office')"},
     "SELECT usage_category, product_name, sum(tokens_consumed) FROM tf WHERE contract_year = 1 AND "
     "product_name IN ('Revit', 'AutoCAD', 'Fusion', 'Vault Office') GROUP BY ALL"),
    ({"fields": ["userName", "usageMonth"], "metrics": ["uniqueProducts", "usageMinutes", "usageHours", "useCount"],
      "usageCategory": ["DESKTOP_PRODUCT"], "where": "customField1 = 'EMEA' OR userName LIKE '%.smith%'"},
     "SELECT user_name, strftime(usage_month, '%Y-%m-%d'), count(DISTINCT product_name), sum(usage_minutes), sum(usage_hours), "
     "sum(use_count) FROM tf WHERE usage_category = 'DESKTOP_PRODUCT' AND (custom_field1 = 'EMEA' OR user_name LIKE '%.smith%') "
     "GROUP BY ALL"),
    ({"metrics": ["uniqueUsers", "tokensConsumed"], "where": "usageDate >= '2026-10-01' AND usageDate < '2026-10-15'"},
     "SELECT count(DISTINCT user_name), sum(tokens_consumed) FROM tf WHERE usage_date >= DATE '2026-10-01' "
     "AND usage_date < DATE '2026-10-15'"),
])
def test_query_answers_equal_independent_aggregates(api, db, n, body, sql):
    columns, rows = run_tokenflex_query(api, n, body, limit=50)
    assert columns == body.get("fields", []) + body.get("metrics", [])
    expected = db.execute(sql).fetchall()
    assert sorted(map(tuple, rows)) == sorted(expected)
    assert rows


def test_query_statuses_cache_and_errors(sandbox_factory):
    sb = sandbox_factory(time_scale=0.1)  # QUEUED 0.1 s, PROCESSING until 0.3 s
    n = sb.data.contract_number
    with client(sb.base_url, pat=False) as api:
        body = {"fields": ["productName"], "metrics": ["useCount"]}
        first = api.post(f"/tokenflex/v1/usage/{n}/query", json=body).json()
        assert first["status"] == "QUEUED" and first["id"].startswith("query:")
        assert first["detail_uri"] == f"/tokenflex/v1/usage/{n}/query/{first['id']}"
        seen = []
        wait_for(lambda: seen.append(api.get(f"/tokenflex/v1/usage/{n}/query/{first['id']}").json()["status"]) or seen[-1],
                 lambda s: s == "DONE", interval=0.02)
        assert [s for i, s in enumerate(seen) if i == 0 or seen[i - 1] != s] == ["QUEUED", "PROCESSING", "DONE"]
        again = api.post(f"/tokenflex/v1/usage/{n}/query", json=body).json()
        assert again["status"] == "DONE" and again["id"] == first["id"]  # cached identical query ...
        done = api.get(sb.base_url + again["detail_uri"]).json()  # detail_uri resolves against the host
        assert again["result"] == done["result"] and done["result"]["total"] > 0  # ... answered in the POST
        for bad in ({"fields": ["chargeCategory"]}, {"fields": ["nope"]}, {"metrics": ["totalTokens"]},
                    {"metrics": ["useCount"], "usageCategory": ["GAMES"]}, {"metrics": ["useCount"], "where": "NOT a = 1"}):
            r = api.post(f"/tokenflex/v1/usage/{n}/query", json=bad)
            assert r.status_code == 400, bad
        assert api.get(f"/tokenflex/v1/usage/{n}/query/query:nope").status_code == 404


def test_query_expired(sandbox_factory):
    sb = sandbox_factory(time_scale=0.0005)
    n = sb.data.contract_number
    with client(sb.base_url, pat=False) as api:
        qid = api.post(f"/tokenflex/v1/usage/{n}/query", json={"metrics": ["useCount"]}).json()["id"]
        assert wait_for(lambda: api.get(f"/tokenflex/v1/usage/{n}/query/{qid}").json()["status"],
                        lambda s: s == "EXPIRED", timeout=5) == "EXPIRED"


def test_export_lifecycle(api, db, n, sandbox):
    body = {"fields": ["usageDate", "userName", "productName", "chargeCategory", "chargedItemID", "sessionStartDate"],
            "metrics": ["tokensConsumed"], "usageCategory": ["DESKTOP_PRODUCT"], "where": "contractYear = 2",
            "downloadFileName": "desktop sessions"}
    r = api.post(f"/tokenflex/v1/export/{n}/requests", json=body)
    assert r.status_code == 200, r.text
    req = r.json()
    key = req["requestKey"]
    assert req["requestStatus"] == "Requested" and req["downloadFileName"] == "desktop sessions.csv"
    assert "#" in key and ":" in key
    url = f"/tokenflex/v1/export/{n}/requests/{quote(key, safe='')}"
    # a client that does not encode '#' sends only the part before it
    assert api.get(f"/tokenflex/v1/export/{n}/requests/{key}").status_code == 404
    done = wait_for(lambda: api.get(url).json(), lambda j: j["requestStatus"] != "Requested")
    assert done["requestStatus"] == "Download" and done["readFlag"] == "N"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}", done["exportRequestDate"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}", done["downloadUrlExpireDate"])
    assert done["downloadUrl"].startswith(sandbox.base_url + "/sandbox-downloads/") and done["downloadUrlExpireDate"]
    text = httpx.get(done["downloadUrl"]).text
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == body["fields"] + body["metrics"]
    expected = db.execute("""SELECT count(*), sum(tokens_consumed) FROM tf WHERE usage_category = 'DESKTOP_PRODUCT'
                             AND contract_year = 2""").fetchone()
    assert len(rows) - 1 == expected[0]
    assert sum(float(r[-1]) for r in rows[1:]) == expected[1]
    assert api.get(url).json()["readFlag"] == "Y"
    # refreshUrl gives a new URL; listing by date finds it; delete removes it
    refreshed = api.post(url + "/refreshUrl").json()
    assert refreshed["downloadUrl"] != done["downloadUrl"] and httpx.get(refreshed["downloadUrl"]).status_code == 200
    made = dt.datetime.fromisoformat(req["exportRequestDate"])
    def listed(lo, hi):
        r = api.get(f"/tokenflex/v1/export/{n}/requests", params={"fromDate": lo.isoformat() + "Z", "toDate": hi.isoformat() + "Z"})
        assert r.status_code == 200, r.text
        return [x["requestKey"] for x in r.json()]
    assert key in listed(made, made + dt.timedelta(microseconds=1))  # fromDate inclusive
    assert key not in listed(made - dt.timedelta(seconds=1), made)  # toDate exclusive
    assert api.get(f"/tokenflex/v1/export/{n}/requests", params={"toDate": "2030-01-01T00:00:00Z"}).status_code == 400
    assert api.post(url + "/retry").status_code == 400  # only failed exports
    assert api.delete(url).status_code == 204
    assert api.get(url).status_code == 404


@pytest.mark.parametrize("body", [
    {"fields": ["productName"], "metrics": ["tokensConsumed"], "downloadFileName": ""},  # an empty name
    {"fields": ["chargedItemID"], "metrics": ["tokensConsumed"], "downloadFileName": "x"},  # session field, no category
    {"fields": ["chargedItemID"], "metrics": ["tokensConsumed"], "downloadFileName": "x",
     "usageCategory": ["DESKTOP_PRODUCT", "CLOUD_PRODUCT"]},  # mixed categories at session level
    {"fields": ["productName"], "metrics": ["tokensConsumed"], "downloadFileName": "x", "where": "contractYear = 'one'"},
])
def test_bad_export_requests_400(api, n, body):
    assert api.post(f"/tokenflex/v1/export/{n}/requests", json=body).status_code == 400


def test_export_url_expires_then_refresh(sandbox_factory):
    sb = sandbox_factory(time_scale=0.001)  # URL lifetime 600 s -> 0.6 s -> the 2 s minimum
    n = sb.data.contract_number
    with client(sb.base_url, pat=False) as api:
        key = api.post(f"/tokenflex/v1/export/{n}/requests", json={"fields": ["productName"], "metrics": ["useCount"],
                                                                    "downloadFileName": "p"}).json()["requestKey"]
        url = f"/tokenflex/v1/export/{n}/requests/{quote(key, safe='')}"
        done = wait_for(lambda: api.get(url).json(), lambda j: j["requestStatus"] == "Download")
        time.sleep(2.05)
        assert httpx.get(done["downloadUrl"]).status_code == 403
        fresh = api.post(url + "/refreshUrl").json()["downloadUrl"]
        assert httpx.get(fresh).status_code == 200


def test_schedules(api, n):
    body = {"dateRangeExpression": "Previous-1-Month", "enableFlag": "Y", "frequencyExpression": "0 0 6 1 * ?",
            "scheduleObjects": [{"usageCategory": "DESKTOP_PRODUCT"}, {"usageCategory": "CLOUD"}]}
    r = api.post(f"/tokenflex/v1/export/{n}/schedules", json=body)
    assert r.status_code == 201, r.text
    made = r.json()
    assert set(made) == {"scheduleID", "dateRangeExpression", "enableFlag", "frequencyExpression", "scheduleObjects"}
    one = f"/tokenflex/v1/export/{n}/schedules/{quote(made['scheduleID'], safe='')}"
    assert made in api.get(f"/tokenflex/v1/export/{n}/schedules").json() and api.get(one).json() == made
    r = api.put(one, json={"enableFlag": "N"})
    assert r.status_code == 200 and r.json()["enableFlag"] == "N" and r.json()["scheduleObjects"] == body["scheduleObjects"]
    for bad in ({**body, "frequencyExpression": "DAILY"}, {**body, "enableFlag": "yes"},
                {**body, "dateRangeExpression": "Previous-2-Month"}, {**body, "scheduleObjects": []},
                {**body, "scheduleObjects": [{"usageCategory": "MANUAL_ADJUSTMENT"}]}):
        assert api.post(f"/tokenflex/v1/export/{n}/schedules", json=bad).status_code == 400, bad
    assert api.delete(one).status_code == 204
    assert api.get(one).status_code == 400  # the reference page: an unknown schedule is a 400


def test_rate_limit_burst_then_429_with_retry_after(sandbox_factory):
    sb = sandbox_factory(time_scale=1.0)
    with client(sb.base_url, pat=False) as api:
        codes = [api.get("/tokenflex/v1/contract").status_code for _ in range(51)]
        assert codes[:50] == [200] * 50 and codes[50] == 429
        r = api.get("/tokenflex/v1/contract")
        assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 12
        # insights calls are not limited
        assert client(sb.base_url).get("/insights/v1/contexts").status_code == 200


def test_rate_limit_refills_on_the_scaled_clock(sandbox_factory):
    sb = sandbox_factory(time_scale=0.02)  # one request back every 0.24 s
    with client(sb.base_url, pat=False) as api:
        codes = []
        while len(codes) < 300 and 429 not in codes:
            codes.append(api.get("/tokenflex/v1/contract").status_code)
        assert codes[-1] == 429 and len(codes) > 50
        time.sleep(0.3)
        assert api.get("/tokenflex/v1/contract").status_code == 200


def test_outstanding_export_limit(sandbox_factory):
    sb = sandbox_factory(time_scale=10.0, rate_limits=False)  # exports stay Requested for 30 s
    n = sb.data.contract_number
    with client(sb.base_url, pat=False) as api:
        body = {"metrics": ["useCount"], "downloadFileName": "x"}
        codes = [api.post(f"/tokenflex/v1/export/{n}/requests", json=body).status_code for _ in range(51)]
        assert codes[:50] == [200] * 50 and codes[50] == 429


def test_query_pagination_all_pages_equal_total_no_duplicates(api, db, n):
    body = {"fields": ["usageDate", "userName", "productName", "productVersion", "machineName"], "metrics": ["useCount"]}
    qid = api.post(f"/tokenflex/v1/usage/{n}/query", json=body).json()["id"]
    first = wait_for(lambda: api.get(f"/tokenflex/v1/usage/{n}/query/{qid}").json(), lambda j: j["status"] == "DONE")
    total = first["result"]["total"]
    assert len(first["result"]["rows"]) == 100 and first["result"]["limit"] == 100
    rows, offset = [], 0
    while offset < total + 250:
        page = api.get(f"/tokenflex/v1/usage/{n}/query/{qid}", params={"offset": offset, "limit": 250}).json()["result"]
        rows += [tuple(r) for r in page["rows"]]
        offset += 250
    expected = db.execute("SELECT count(*) FROM (SELECT DISTINCT usage_date, user_name, product_name, product_version, "
                          "machine_name FROM tf)").fetchone()[0]
    assert len(rows) == total == expected and len(set(rows)) == total
    assert api.get(f"/tokenflex/v1/usage/{n}/query/{qid}", params={"limit": 10_001}).status_code == 400


# -- fidelity to Autodesk's clients and reference pages --------------------------------------------------------------------------------
def test_enrichment_names_as_fields_and_where_terms(api, db, sandbox):
    """Autodesk's export app asks for "Geo" and "Country" (GET enrichment names them GEO, Country)."""
    n = sandbox.data.contract_number
    names = api.get(f"/tokenflex/v1/contract/{n}/enrichment").json()
    geo = api.get(f"/tokenflex/v1/contract/{n}/enrichment/GEO").json()[0]
    assert "GEO" in names and "Country" in names
    body = {"fields": ["Geo", "Country", "productName"], "metrics": ["tokensConsumed", "usageHours"],
            "usageCategory": ["DESKTOP_PRODUCT"], "where": f"contractYear >= 1 AND geo = '{geo}'"}
    columns, rows = run_tokenflex_query(api, n, body)
    assert columns == body["fields"] + body["metrics"]
    expected = db.execute("""SELECT custom_field1, custom_field4, product_name, sum(tokens_consumed), sum(usage_hours)
                             FROM tf WHERE usage_category = 'DESKTOP_PRODUCT' AND custom_field1 = ?
                             GROUP BY ALL""", [geo]).fetchall()
    assert sorted(tuple(r[:3]) for r in rows) == sorted(r[:3] for r in expected) and rows
    assert sum(r[3] for r in rows) == pytest.approx(sum(r[3] for r in expected))
    assert api.post(f"/tokenflex/v1/usage/{n}/query", json={"fields": ["Planet"]}).status_code == 400


DESKTOP_SESSION = {"fields": ["usageDate", "userName", "productName", "chargedItemID", "sessionStartDate",
                              "sessionEndDate", "chargeCategory", "machineName", "customField1"],
                   "usageCategory": ["DESKTOP_PRODUCT"], "where": "contractYear = 2"}


@pytest.mark.parametrize("metrics, refused", [
    (["tokensConsumed", "usageMinutes", "useCount"], "useCount"),
    (["tokensConsumed", "uniqueUsers"], "uniqueUsers"),
    (["uniqueProducts"], "uniqueProducts"),
])
def test_session_level_desktop_export_refuses_other_metrics(sandbox_factory, metrics, refused):
    sb = sandbox_factory()
    n = sb.data.contract_number
    with client(sb.base_url, pat=False) as api:
        r = api.post(EXPORTS.format(n=n), json={**DESKTOP_SESSION, "metrics": metrics})
        assert r.status_code == 400 and refused in r.json()["developerMessage"]
        log = sb.app_state.export_refusals()
        assert len(log) == 1 and log[0]["status"] == 400 and refused in log[0]["message"]
        assert log[0]["route"] == "/tokenflex/v1/export/{contract}/requests" and log[0]["method"] == "POST"


def test_session_level_desktop_export_allowed_shapes(sandbox_factory):
    sb = sandbox_factory()
    n = sb.data.contract_number
    with client(sb.base_url, pat=False) as api:
        ok = [
            {**DESKTOP_SESSION, "metrics": ["tokensConsumed", "usageMinutes", "usageHours"]},
            {**DESKTOP_SESSION, "fields": ["sessionStartDate", "licenseServerTimeZoneOffset"], "metrics": ["usageMinutes"]},
            # not session level: aggregate metrics are fine
            {"fields": ["usageDate", "productName"], "metrics": ["useCount", "uniqueUsers"], "usageCategory": ["DESKTOP_PRODUCT"]},
            # session level for cloud products is not bound by the desktop rule
            {"fields": ["chargedItemID", "hubName"], "metrics": ["useCount"], "usageCategory": ["CLOUD_PRODUCT"]},
        ]
        for body in ok:
            r = api.post(EXPORTS.format(n=n), json=body)
            assert r.status_code == 200, (body, r.text)
        assert sb.app_state.export_refusals() == []
        r = api.post(EXPORTS.format(n=n), json={**DESKTOP_SESSION, "fields": ["chargedItemID", "hubName"],
                                                "metrics": ["tokensConsumed"]})
        assert r.status_code == 400 and "hubName" in r.json()["developerMessage"]
        assert [x["errorCode"] for x in sb.app_state.export_refusals()] == ["INVALID_FIELD"]
        # other routes' refusals are logged too, apart from export requests
        assert api.get(f"/tokenflex/v1/usage/{n}/query/query:nope").status_code == 404
        assert sb.app_state.refused(status=404)[-1]["route"] == "/tokenflex/v1/usage/{contract}/query/{query_id}"


def test_session_export_csv_has_usage_minutes_for_every_row(sandbox_factory):
    sb = sandbox_factory()
    n = sb.data.contract_number
    with client(sb.base_url, pat=False) as api:
        body = {**DESKTOP_SESSION, "metrics": ["tokensConsumed", "usageMinutes", "usageHours"]}
        key = api.post(EXPORTS.format(n=n), json=body).json()["requestKey"]
        url = f"{EXPORTS.format(n=n)}/{quote(key, safe='')}"
        done = wait_for(lambda: api.get(url).json(), lambda j: j["requestStatus"] != "Requested")
        rows = list(csv.DictReader(io.StringIO(httpx.get(done["downloadUrl"]).text)))
        assert rows and all(r["usageMinutes"] != "" for r in rows)


def test_export_request_shapes_of_the_reference_pages(api, sandbox):
    n = sandbox.data.contract_number
    r = api.post(EXPORTS.format(n=n), json={"fields": ["productName"], "metrics": ["tokensConsumed"]})
    assert r.status_code == 200, r.text  # downloadFileName is optional
    req = r.json()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d#[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
                        req["requestKey"])
    assert req["downloadFileName"].endswith(".csv") and n in req["downloadFileName"]
    assert req["readFlag"] == "N" and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}", req["exportRequestDate"])
    url = f"{EXPORTS.format(n=n)}/{quote(req['requestKey'], safe='')}"
    done = wait_for(lambda: api.get(url).json(), lambda j: j["requestStatus"] != "Requested")
    assert done["readFlag"] == "N"
    # markRead answers the keys whose flag changed; one already "Y" is no success
    assert api.post(f"{EXPORTS.format(n=n)}/markRead", json=[req["requestKey"], "nope"]).json() == [req["requestKey"]]
    assert api.post(f"{EXPORTS.format(n=n)}/markRead", json=[req["requestKey"]]).json() == []
    assert api.get(url).json()["readFlag"] == "Y"
    assert api.post(f"{EXPORTS.format(n=n)}/markRead", json={"keys": []}).status_code == 400
    # listing: fromDate and toDate are required date-times; "null" lists UI and scheduled exports
    assert api.get(EXPORTS.format(n=n), params={"fromDate": "2020-01-01T00:00:00Z"}).status_code == 400
    assert api.get(EXPORTS.format(n=n), params={"fromDate": "2020-01-01", "toDate": "yesterday"}).status_code == 400
    listed = api.get(EXPORTS.format(n=n), params={"fromDate": "2020-08-20T22:43:13.132559Z",
                                                 "toDate": "2099-01-01T00:00:00Z"}).json()
    assert req["requestKey"] in [x["requestKey"] for x in listed] and all("downloadUrl" not in x for x in listed)
    assert api.get(EXPORTS.format(n="null"), params={"fromDate": "2020-01-01T00:00:00Z",
                                                    "toDate": "2099-01-01T00:00:00Z"}).json() == []
