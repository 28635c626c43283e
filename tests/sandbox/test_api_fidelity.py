"""insights/v1 and tokenflex/v1 as Autodesk's own clients and reference pages use them: scopes per
endpoint, a usage query without contextId, the exports list, by-product CSV in several files.
(Token Flex shapes of the reference pages: test_tokenflex.py.)"""

from __future__ import annotations

import csv
import io
import json
from urllib.parse import quote

import httpx

from extractor.sandbox import PAT

from .helpers import client, decode_download, export, run_premium_query, token, wait_for

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
