"""insights/v1 contract tests over real HTTP, answers checked against sandbox.data computed independently."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import time

import duckdb
import httpx
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from openpyxl import load_workbook

from .helpers import client, run_premium_query, wait_for
from .helpers import decode_download as _decode
from .helpers import export as _export


@pytest.fixture(scope="module")
def api(sandbox):
    with client(sandbox.base_url) as c:
        yield c


@pytest.fixture(scope="module")
def db(sandbox):
    con = duckdb.connect()
    con.register("usage", sandbox.data.usage)
    yield con
    con.close()


def ctx(sandbox, i=0):
    return sandbox.data.teams["context_id"][i].as_py()


def test_contexts_shape(api, sandbox):
    teams = api.get("/insights/v1/contexts").json()
    assert [t["contextId"] for t in teams] == sandbox.data.teams["context_id"].to_pylist()
    for t in teams:
        assert set(t) == {"contextId", "alias", "reportingBenefits"} and "ReportingAPIAccess" in t["reportingBenefits"]


def test_query_status_walk_submitted_running_completed(sandbox_factory):
    sandbox = sandbox_factory(time_scale=0.2)  # SUBMITTED 0.2 s, RUNNING until 0.5 s
    api = client(sandbox.base_url)
    r = api.post("/insights/v1/usage-queries", params={"contextId": ctx(sandbox)}, json={"metrics": ["uniqueUsers"]})
    body = r.json()
    assert r.status_code == 200 and body["status"] == "SUBMITTED" and isinstance(body["startTime"], int)
    seen = []
    wait_for(lambda: seen.append(api.get(f"/insights/v1/usage-queries/{body['id']}").json()["status"]) or seen[-1],
             lambda s: s == "COMPLETED", interval=0.02)
    order = [s for i, s in enumerate(seen) if i == 0 or seen[i - 1] != s]
    assert order == ["SUBMITTED", "RUNNING", "COMPLETED"]


def test_query_expires(sandbox_factory):
    sb = sandbox_factory(time_scale=0.0005)  # result TTL 600 s -> 0.3 s
    with client(sb.base_url) as c:
        qid = c.post("/insights/v1/usage-queries", params={"contextId": ctx(sb)}, json={"metrics": ["uniqueUsers"]}).json()["id"]
        assert wait_for(lambda: c.get(f"/insights/v1/usage-queries/{qid}").json()["status"], lambda s: s == "EXPIRED",
                        timeout=5) == "EXPIRED"


@pytest.mark.parametrize("body, sql", [
    ({"fields": ["productName", "usageMonth"], "metrics": ["uniqueUsers", "totalUniqueDays"]},
     "SELECT product_name, strftime(usage_month, '%Y-%m-%d'), count(DISTINCT hashed_user_id), count(DISTINCT usage_date) "
     "FROM usage WHERE context_id = ? GROUP BY ALL"),
    ({"fields": ["childProductName", "source"], "metrics": ["totalTokens", "uniqueVersions", "uniqueMinorVersions"],
      "where": "source IN ('flex', 'ppu') AND usageDate >= '2026-09-01'"},
     "SELECT child_product_name, source, sum(tokens), count(DISTINCT version), count(DISTINCT minor_version) FROM usage "
     "WHERE context_id = ? AND source IN ('flex', 'ppu') AND usage_date >= DATE '2026-09-01' GROUP BY ALL"),
    ({"fields": ["emailAddress", "featureId", "version"], "where": "isParentProduct = 1 AND productLineCode IN ('AECCOL', 'PDCOLL')"},
     "SELECT DISTINCT email, feature_id, version FROM usage WHERE context_id = ? AND is_parent_product = 1 "
     "AND product_line_code IN ('AECCOL', 'PDCOLL')"),
    ({"metrics": ["uniqueProducts", "uniqueChildProducts", "earliestUsageDate", "latestUsageDate"],
      "where": "(productName LIKE 'Aut%' OR productName LIKE '%Collection') AND isParentProduct = 1"},
     "SELECT count(DISTINCT product_name), count(DISTINCT child_product_name), strftime(min(usage_date), '%Y-%m-%dT00:00:00Z'), "
     "strftime(max(usage_date), '%Y-%m-%dT00:00:00Z') FROM usage WHERE context_id = ? AND "
     "(product_name LIKE 'Aut%' OR product_name LIKE '%Collection') AND is_parent_product = 1"),
])
def test_query_answers_equal_independent_aggregates(api, db, sandbox, body, sql):
    for i in range(2):
        columns, rows = run_premium_query(api, ctx(sandbox, i), body, limit=37)
        assert columns == body.get("fields", []) + body.get("metrics", [])
        expected = db.execute(sql, [ctx(sandbox, i)]).fetchall()
        norm = lambda rs: sorted(tuple(x if x is not None else "" for x in r) for r in rs)  # noqa: E731
        assert norm(rows) == norm(expected)
        assert len(rows) >= 1


def test_pagination_all_pages_equal_total_no_duplicates(api, sandbox, db):
    body = {"fields": ["usageDate", "hashedUserId", "childProductName", "source", "version"]}
    r = api.post("/insights/v1/usage-queries", params={"contextId": ctx(sandbox), "offset": 0, "limit": 100}, json=body)
    qid = r.json()["id"]
    first = wait_for(lambda: api.get(f"/insights/v1/usage-queries/{qid}").json(), lambda j: j["status"] == "COMPLETED")
    total = first["pagination"]["totalResults"]
    assert first["pagination"] == {"totalResults": total, "offset": 0, "limit": 100} and len(first["rows"]) == min(100, total)
    assert total == db.execute("SELECT count(*) FROM usage WHERE context_id = ?", [ctx(sandbox)]).fetchone()[0]
    rows, offset = [], 0
    while True:
        page = api.get(f"/insights/v1/usage-queries/{qid}", params={"offset": offset, "limit": 97}).json()
        if not page["rows"]:
            break
        rows += [tuple(r) for r in page["rows"]]
        offset += 97
    assert len(rows) == total and len(set(rows)) == total


def test_order_by(api, sandbox):
    cols, rows = run_premium_query(api, ctx(sandbox), {"fields": ["childProductName"], "metrics": ["totalUniqueDays"],
                                                       "orderBy": "totalUniqueDays DESC"})
    days = [r[1] for r in rows]
    assert days == sorted(days, reverse=True)
    r = api.post("/insights/v1/usage-queries", params={"contextId": ctx(sandbox)},
                 json={"fields": ["productName"], "orderBy": "fullName ASC"})
    assert r.status_code == 400


@pytest.mark.parametrize("params, body, code", [
    ({"contextId": "999"}, {"metrics": ["uniqueUsers"]}, 404),
    ({"contextId": "4865648"}, {}, 400),
    ({"contextId": "4865648"}, {"fields": ["nope"]}, 400),
    ({"contextId": "4865648"}, {"metrics": ["nope"]}, 400),
    ({"contextId": "4865648"}, {"metrics": ["uniqueUsers"], "where": "NOT source = 'sus'"}, 400),
    ({"contextId": "4865648"}, {"metrics": ["uniqueUsers"], "where": "fullName = 'x'"}, 400),
    ({"contextId": "4865648"}, {"metrics": ["uniqueUsers"], "where": "productName LIKE 'R%'"}, 400),
    ({"contextId": "4865648"}, {"metrics": ["uniqueUsers"], "where": "((source = 'sus'))"}, 400),
    ({"contextId": "4865648"}, {"metrics": ["uniqueUsers"], "where": "teamName = 'x'"}, 400),
    ({"contextId": "4865648", "limit": "10001"}, {"metrics": ["uniqueUsers"]}, 400),
])
def test_bad_queries_400(api, params, body, code):
    r = api.post("/insights/v1/usage-queries", params=params, json=body)
    assert r.status_code == code, r.text
    assert r.json()["developerMessage"]


def test_limit_bounds_on_poll(api, sandbox):
    qid = api.post("/insights/v1/usage-queries", params={"contextId": ctx(sandbox)}, json={"metrics": ["uniqueUsers"]}).json()["id"]
    assert api.get(f"/insights/v1/usage-queries/{qid}", params={"limit": 10_000}).status_code == 200
    assert api.get(f"/insights/v1/usage-queries/{qid}", params={"limit": 10_001}).status_code == 400
    assert api.get(f"/insights/v1/usage-queries/{qid}", params={"offset": -1}).status_code == 400
    assert api.get("/insights/v1/usage-queries/unknown").status_code == 404


# ---- exports ----------------------------------------------------------------------------------

def test_csv_export_several_files_encodings_and_contents(sandbox_factory):
    sb = sandbox_factory(export_split_rows=1000)
    with client(sb.base_url) as api:
        done = _export(api, {"outputFormat": "CSV", "reports": ["SUBSCRIPTIONS", "USERS", "USAGE", "USAGE_REPORT"],
                             "usageReports": ["USAGE_REPORT_BY_PRODUCT", "USAGE_REPORT_BY_USER"],
                             "startDate": "2026-08-01T00:00:00Z", "endDate": "2026-10-31T00:00:00Z"})
        assert done["status"] == "COMPLETED"
        types = [d["type"] for d in done["downloads"]]
        assert types.count("USAGE") >= 2 and types.count("USAGE_REPORT") >= 3  # by-product: one file per team
        usage_rows, magics = [], set()
        for d in done["downloads"]:
            assert "X-Amz-Signature=" in d["downloadURL"] and "/sandbox-downloads/" in d["downloadURL"]
            raw = httpx.get(d["downloadURL"]).content
            magics.add(raw[:2])
            rows = list(csv.DictReader(io.StringIO(_decode(raw).decode())))
            if d["type"] == "USAGE":
                usage_rows += rows
        assert {b"\x1f\x8b", b"PK"} <= magics and len(magics) == 3  # plain, gzip and zip
        day = sb.data.usage["usage_date"]
        expected = sb.data.usage.filter(pc.and_(pc.greater_equal(day, pa.scalar(dt.date(2026, 8, 1))),
                                                pc.less_equal(day, pa.scalar(dt.date(2026, 10, 31)))))
        assert len(usage_rows) == expected.num_rows
        assert {"team_alias", "email", "hashed_autodesk_id", "product_name", "offering_name", "day_used",
                "tokens_used"} <= set(usage_rows[0])
        assert min(r["day_used"] for r in usage_rows) >= "2026-08-01"
        flex_tokens = sum(float(r["tokens_used"]) for r in usage_rows if r["tokens_used"])
        assert flex_tokens == pytest.approx(sum(t for t in expected["tokens"].to_pylist() if t))


def test_json_and_excel_exports(api, sandbox):
    done = _export(api, {"outputFormat": "JSON", "reports": ["USERS"], "teamId": ctx(sandbox, 1)})
    assert done["teamName"] == sandbox.data.teams["team_name"][1].as_py()
    rows = json.loads(_decode(httpx.get(done["downloads"][0]["downloadURL"]).content))
    assert rows and {r["team_id"] for r in rows} == {ctx(sandbox, 1)}
    done = _export(api, {"outputFormat": "EXCEL", "reports": ["SUBSCRIPTIONS", "USERS", "USAGE"],
                         "startDate": "2026-10-01T00:00:00Z", "endDate": "2026-10-31T00:00:00Z"})
    raw = httpx.get(done["downloads"][0]["downloadURL"]).content
    assert raw[:4] == b"PK\x03\x04"
    wb = load_workbook(io.BytesIO(raw), read_only=True)
    assert wb.sheetnames == ["Subscriptions", "Users", "Usage"]
    assert sum(1 for _ in wb["Subscriptions"].iter_rows()) == sandbox.data.subscriptions.num_rows + 1
    usage = list(wb["Usage"].iter_rows(values_only=True))
    assert usage[0][0] == "team_alias" and len(usage) > 10
    r = api.post("/insights/v1/exports", json={"outputFormat": "EXCEL", "reports": ["USERS", "SUBSCRIPTIONS"]},
                 headers={"Accept-Language": "de-DE"})
    done = wait_for(lambda: api.get(f"/insights/v1/exports/{r.json()['id']}").json(), lambda j: j["status"] != "SUBMITTED")
    wb = load_workbook(io.BytesIO(httpx.get(done["downloads"][0]["downloadURL"]).content), read_only=True)
    assert wb.sheetnames == ["Benutzer", "Abonnements"]


@pytest.mark.parametrize("body", [
    {"outputFormat": "PDF", "reports": ["USERS"]},
    {"outputFormat": "CSV", "reports": []},
    {"outputFormat": "CSV", "reports": ["USAGE"]},  # dates required
    {"outputFormat": "CSV", "reports": ["USAGE"], "startDate": "2025-01-01T00:00:00Z", "endDate": "2026-01-02T00:00:00Z"},
    {"outputFormat": "CSV", "reports": ["USAGE"], "startDate": "2026-02-01T00:00:00Z", "endDate": "2026-01-01T00:00:00Z"},
    {"outputFormat": "CSV", "reports": ["USAGE"], "startDate": "yesterday", "endDate": "2026-01-01T00:00:00Z"},
    {"outputFormat": "CSV", "reports": ["USAGE_REPORT"], "startDate": "2026-01-01T00:00:00Z", "endDate": "2026-02-01T00:00:00Z"},
    {"outputFormat": "CSV", "reports": ["USERS"], "filters": {"bogus": 1}},
])
def test_bad_exports_400(api, body):
    r = api.post("/insights/v1/exports", json=body)
    assert r.status_code == 400, r.text


def test_download_url_expires_and_a_fresh_get_renews_it(sandbox_factory):
    sb = sandbox_factory(time_scale=0.002)  # URL lifetime 300 s -> 0.6 s, rounded up to the 2 s minimum
    with client(sb.base_url) as api:
        done = _export(api, {"outputFormat": "CSV", "reports": ["USERS"]})
        url = done["downloads"][0]["downloadURL"]
        assert "X-Amz-Expires=2&" in url
        assert httpx.get(url).status_code == 200
        time.sleep(2.05)
        r = httpx.get(url)
        assert r.status_code == 403 and b"expired" in r.content
        fresh = api.get(f"/insights/v1/exports/{done['id']}").json()["downloads"][0]["downloadURL"]
        assert fresh != url and httpx.get(fresh).status_code == 200
        # a tampered signature is refused too
        assert httpx.get(fresh.replace("X-Amz-Signature=", "X-Amz-Signature=0")).status_code == 403


def test_export_list_and_expiry(sandbox_factory):
    sb = sandbox_factory(time_scale=0.0002)  # export TTL 1800 s -> 0.36 s
    with client(sb.base_url) as api:
        e1 = _export(api, {"outputFormat": "CSV", "reports": ["USERS"]}, wait=False)
        e2 = _export(api, {"outputFormat": "CSV", "reports": ["SUBSCRIPTIONS"], "teamId": ctx(sb, 2)}, wait=False)
        listing = api.get("/insights/v1/exports", params={"limit": 1}).json()
        # newest first (the list of Autodesk's Premium Reporting page)
        assert listing["pagination"]["totalResults"] == 2 and [e["id"] for e in listing["exports"]] == [e2["id"]]
        assert [e["id"] for e in api.get("/insights/v1/exports", params={"offset": 1}).json()["exports"]] == [e1["id"]]
        assert [e["id"] for e in api.get("/insights/v1/exports", params={"teamId": ctx(sb, 2)}).json()["exports"]] == [e2["id"]]
        assert wait_for(lambda: api.get(f"/insights/v1/exports/{e1['id']}").json()["status"], lambda s: s == "EXPIRED",
                        timeout=5) == "EXPIRED"
        assert api.get("/insights/v1/exports/nope").status_code == 404


def test_hidden_personal_data(sandbox_factory):
    sb = sandbox_factory(hide_personal_data=True)
    with client(sb.base_url) as api:
        r = api.post("/insights/v1/usage-queries", params={"contextId": ctx(sb)}, json={"fields": ["emailAddress"]})
        assert r.status_code == 400 and "personal" in r.json()["developerMessage"]
        r = api.post("/insights/v1/usage-queries", params={"contextId": ctx(sb)},
                     json={"metrics": ["uniqueUsers"], "where": "userId = 'X'"})
        assert r.status_code == 400
        cols, rows = run_premium_query(api, ctx(sb), {"fields": ["hashedUserId"], "metrics": ["totalUniqueDays"]})
        assert rows and all(len(r[0]) == 40 for r in rows)
        done = _export(api, {"outputFormat": "CSV", "reports": ["USERS"]})
        rows = list(csv.DictReader(io.StringIO(_decode(httpx.get(done["downloads"][0]["downloadURL"]).content).decode())))
        assert {r["email"] for r in rows} == {"*****"} and {r["first_name"] for r in rows} == {"*****"}
        assert all(len(r["hashed_autodesk_id"]) == 40 for r in rows)
