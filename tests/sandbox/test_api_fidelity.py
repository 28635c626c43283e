"""insights/v1 and tokenflex/v1 as Autodesk's own clients and reference pages use them: scopes per
endpoint, a usage query without contextId, the exports list, by-product CSV in several files,
Token Flex enrichment names, the session-level desktop export rule (and the refusal log a test
reads), exports and schedules in the reference pages' shapes."""

from __future__ import annotations

import csv
import io
import json
import re
from urllib.parse import quote

import duckdb
import httpx
import pytest

from extractor.sandbox import PAT

from .helpers import client, decode_download, export, run_premium_query, run_tokenflex_query, token, wait_for

EXPORTS = "/tokenflex/v1/export/{n}/requests"


def bearer(base_url: str, scope: str, pat: bool = False) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token(base_url, scope)}", **({"ADSK-PAT": PAT} if pat else {})}
    return httpx.Client(base_url=base_url, headers=headers, timeout=30)


# -- scopes as the reference pages require them ------------------------------------------------
def test_insights_needs_only_data_read(sandbox):
    """The Power BI connector and the PAT sample ask for data:read and POST queries and exports."""
    team = sandbox.data.teams["context_id"][0].as_py()
    with bearer(sandbox.base_url, "data:read", pat=True) as read, bearer(sandbox.base_url, "data:write", pat=True) as write:
        assert read.get("/insights/v1/contexts").status_code == 200
        assert read.post("/insights/v1/usage-queries", params={"contextId": team},
                         json={"metrics": ["uniqueUsers"]}).status_code == 200
        assert read.post("/insights/v1/exports", json={"outputFormat": "CSV", "reports": ["USERS"]}).status_code == 200
        for call in (lambda: write.get("/insights/v1/exports"),
                     lambda: write.post("/insights/v1/exports", json={"outputFormat": "CSV", "reports": ["USERS"]})):
            r = call()
            assert r.status_code == 403 and "data:read" in r.json()["developerMessage"]


def test_tokenflex_writes_need_data_write(sandbox):
    n = sandbox.data.contract_number
    with bearer(sandbox.base_url, "data:read") as read, bearer(sandbox.base_url, "data:read data:write") as both:
        assert read.post(f"/tokenflex/v1/usage/{n}/query", json={"metrics": ["tokensConsumed"]}).status_code == 200
        key = both.post(EXPORTS.format(n=n), json={"metrics": ["tokensConsumed"]}).json()["requestKey"]
        one = f"{EXPORTS.format(n=n)}/{quote(key, safe='')}"
        assert read.get(one).status_code == 200 and read.get(f"/tokenflex/v1/export/{n}/schedules").status_code == 200
        refused = [
            read.post(EXPORTS.format(n=n), json={"metrics": ["tokensConsumed"]}),
            read.post(one + "/refreshUrl"), read.post(one + "/retry"), read.delete(one),
            read.post(f"{EXPORTS.format(n=n)}/markRead", json=[key]),
            read.post(f"/tokenflex/v1/export/{n}/schedules", json={"frequencyExpression": "0 0 6 1 * ?",
                                                                    "scheduleObjects": [{"usageCategory": "CLOUD"}]}),
        ]
        for r in refused:
            assert r.status_code == 403 and "data:write" in r.json()["developerMessage"], r.request.url


# -- insights ----------------------------------------------------------------------------------
def test_usage_query_without_context_id_answers_for_the_default_team(sandbox):
    """The PAT sample: '?offset=0&limit=100&<id>' (a bare key), a 'context' body key, empty
    where/orderBy and an empty metrics list."""
    first = sandbox.data.teams["context_id"][0].as_py()
    body = {"fields": ["productName"], "metrics": [], "where": "", "orderBy": ""}
    with client(sandbox.base_url, scope="data:read") as api:
        r = api.post(f"/insights/v1/usage-queries?offset=0&limit=100&{first}", json={**body, "context": first})
        assert r.status_code == 200, r.text
        done = wait_for(lambda: api.get(f"/insights/v1/usage-queries/{r.json()['id']}").json(),
                        lambda j: j["status"] not in ("SUBMITTED", "RUNNING"))
        _, rows = run_premium_query(api, first, body)
        assert done["status"] == "COMPLETED" and sorted(done["rows"]) == sorted(rows) and rows
        other = sandbox.data.teams["context_id"][1].as_py()
        _, others = run_premium_query(api, other, {"fields": ["contextId"], "metrics": ["uniqueUsers"]})
        assert {r[0] for r in others} == {other}  # an explicit contextId still picks its team


def test_exports_list_newest_first_with_downloads(sandbox_factory):
    sb = sandbox_factory()
    with client(sb.base_url, scope="data:read") as api:
        made = [export(api, {"outputFormat": "CSV", "reports": [report]}) for report in ("USERS", "SUBSCRIPTIONS", "USERS")]
        listing = api.get("/insights/v1/exports", params={"limit": 2}).json()
        assert listing["pagination"] == {"totalResults": 3, "offset": 0, "limit": 2}
        assert [e["id"] for e in listing["exports"]] == [made[2]["id"], made[1]["id"]]
        rest = api.get("/insights/v1/exports", params={"limit": 2, "offset": 2}).json()["exports"]
        assert [e["id"] for e in rest] == [made[0]["id"]]
        for item in listing["exports"] + rest:
            assert item["status"] == "COMPLETED" and item["downloads"]
            for d in item["downloads"]:
                assert httpx.get(d["downloadURL"]).status_code == 200


def test_csv_usage_report_by_product_comes_in_several_files(sandbox_factory):
    sb = sandbox_factory()
    spec = {"reports": ["USAGE_REPORT"], "usageReports": ["USAGE_REPORT_BY_PRODUCT"],
            "startDate": "2026-08-01T00:00:00Z", "endDate": "2026-10-31T00:00:00Z"}
    with client(sb.base_url, scope="data:read") as api:
        done = export(api, {**spec, "outputFormat": "CSV"})
        whole = export(api, {**spec, "outputFormat": "JSON"})
        assert len(done["downloads"]) >= 2 and {d["type"] for d in done["downloads"]} == {"USAGE_REPORT"}
        rows = []
        for d in done["downloads"]:
            rows += list(csv.DictReader(io.StringIO(decode_download(httpx.get(d["downloadURL"]).content).decode())))
        expected = json.loads(decode_download(httpx.get(whole["downloads"][0]["downloadURL"]).content))
        assert len(whole["downloads"]) == 1 and len(rows) == len(expected)
        assert sorted((r["team_alias"], r["product_name"], r["usage_type"]) for r in rows) == \
            sorted((r["team_alias"], r["product_name"], r["usage_type"]) for r in expected)


# -- Token Flex --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tf(sandbox):
    with client(sandbox.base_url, pat=False) as c:
        yield c


@pytest.fixture(scope="module")
def db(sandbox):
    con = duckdb.connect()
    con.register("tf", sandbox.data.tokenflex_usage)
    yield con
    con.close()


def test_enrichment_names_as_fields_and_where_terms(tf, db, sandbox):
    """Autodesk's export app asks for "Geo" and "Country" (GET enrichment names them GEO, Country)."""
    n = sandbox.data.contract_number
    names = tf.get(f"/tokenflex/v1/contract/{n}/enrichment").json()
    geo = tf.get(f"/tokenflex/v1/contract/{n}/enrichment/GEO").json()[0]
    assert "GEO" in names and "Country" in names
    body = {"fields": ["Geo", "Country", "productName"], "metrics": ["tokensConsumed", "usageHours"],
            "usageCategory": ["DESKTOP_PRODUCT"], "where": f"contractYear >= 1 AND geo = '{geo}'"}
    columns, rows = run_tokenflex_query(tf, n, body)
    assert columns == body["fields"] + body["metrics"]
    expected = db.execute("""SELECT custom_field1, custom_field4, product_name, sum(tokens_consumed), sum(usage_hours)
                             FROM tf WHERE usage_category = 'DESKTOP_PRODUCT' AND custom_field1 = ?
                             GROUP BY ALL""", [geo]).fetchall()
    assert sorted(tuple(r[:3]) for r in rows) == sorted(r[:3] for r in expected) and rows
    assert sum(r[3] for r in rows) == pytest.approx(sum(r[3] for r in expected))
    assert tf.post(f"/tokenflex/v1/usage/{n}/query", json={"fields": ["Planet"]}).status_code == 400


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


def test_export_request_shapes_of_the_reference_pages(tf, sandbox):
    n = sandbox.data.contract_number
    r = tf.post(EXPORTS.format(n=n), json={"fields": ["productName"], "metrics": ["tokensConsumed"]})
    assert r.status_code == 200, r.text  # downloadFileName is optional
    req = r.json()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d#[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
                        req["requestKey"])
    assert req["downloadFileName"].endswith(".csv") and n in req["downloadFileName"]
    assert req["readFlag"] == "N" and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}", req["exportRequestDate"])
    url = f"{EXPORTS.format(n=n)}/{quote(req['requestKey'], safe='')}"
    done = wait_for(lambda: tf.get(url).json(), lambda j: j["requestStatus"] != "Requested")
    assert done["readFlag"] == "N"
    # markRead answers the keys whose flag changed; one already "Y" is no success
    assert tf.post(f"{EXPORTS.format(n=n)}/markRead", json=[req["requestKey"], "nope"]).json() == [req["requestKey"]]
    assert tf.post(f"{EXPORTS.format(n=n)}/markRead", json=[req["requestKey"]]).json() == []
    assert tf.get(url).json()["readFlag"] == "Y"
    assert tf.post(f"{EXPORTS.format(n=n)}/markRead", json={"keys": []}).status_code == 400
    # listing: fromDate and toDate are required date-times; "null" lists UI and scheduled exports
    assert tf.get(EXPORTS.format(n=n), params={"fromDate": "2020-01-01T00:00:00Z"}).status_code == 400
    assert tf.get(EXPORTS.format(n=n), params={"fromDate": "2020-01-01", "toDate": "yesterday"}).status_code == 400
    listed = tf.get(EXPORTS.format(n=n), params={"fromDate": "2020-08-20T22:43:13.132559Z",
                                                 "toDate": "2099-01-01T00:00:00Z"}).json()
    assert req["requestKey"] in [x["requestKey"] for x in listed] and all("downloadUrl" not in x for x in listed)
    assert tf.get(EXPORTS.format(n="null"), params={"fromDate": "2020-01-01T00:00:00Z",
                                                    "toDate": "2099-01-01T00:00:00Z"}).json() == []
