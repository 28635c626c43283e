"""tokenflex/v1 routes: contracts, enrichment, usage summary/last, usage queries, export requests, schedules."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import secrets
import time
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.csv as pacsv
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .app import (TF_DOWNLOAD_URL_TTL, TF_EXPORT_SECONDS, TF_PROCESSING_SECONDS, TF_QUEUED_SECONDS, TF_RESULT_TTL,
                  ApiProblem, DownloadFile, Job, Sandbox, _json_body, _page_params, _str_list, authenticate,
                  build_query, in_thread, run_job_query)
from .fields import TOKENFLEX_FIELDS, TOKENFLEX_METRICS, USAGE_CATEGORIES
from .ratelimit import MAX_OUTSTANDING_EXPORTS

FREQUENCIES = ("DAILY", "WEEKLY", "MONTHLY")


def _contract(sb: Sandbox, request: Request) -> str:
    number = request.path_params["contract"]
    if number != sb.data.contract_number:
        raise ApiProblem(404, "CONTRACT_NOT_FOUND", f"No Token Flex contract {number!r} for this user")
    return number


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def _query_scope(body: dict, contract: str) -> tuple[str, list]:
    categories = _str_list(body, "usageCategory")
    for c in categories:
        if c not in USAGE_CATEGORIES:
            raise ApiProblem(400, "INVALID_USAGE_CATEGORY", f"Unknown usageCategory {c!r}")
    sql, params = "contract_number = ?", [contract]
    if categories:
        sql += f" AND usage_category IN ({', '.join('?' for _ in categories)})"
        params += categories
    return sql, params


def _canonical(body: dict) -> str:
    keep = {k: body.get(k) for k in ("fields", "metrics", "usageCategory", "where", "orderBy")}
    return json.dumps(keep, sort_keys=True)


def routes(sb: Sandbox) -> list[Route]:
    def auth(request: Request, write: bool = False, read_ok_for_post: bool = False):
        return authenticate(sb, request, write=write, insights=False, read_ok_for_post=read_ok_for_post)

    async def contracts(request: Request):
        auth(request)
        rows = sb.data.contracts.to_pylist()
        c = rows[0]
        return JSONResponse([{
            "contractNumber": c["contract_number"], "contractName": c["contract_name"],
            "contractStartDate": _iso(c["contract_start_date"]), "contractEndDate": _iso(c["contract_end_date"]),
            "isActive": c["is_active"],
        }])

    async def contract_detail(request: Request):
        auth(request)
        _contract(sb, request)
        rows = sb.data.contracts.to_pylist()
        c = rows[0]
        return JSONResponse({
            "contractNumber": c["contract_number"], "contractName": c["contract_name"],
            "contractStartDate": _iso(c["contract_start_date"]), "contractEndDate": _iso(c["contract_end_date"]),
            "isActive": c["is_active"], "multiyearProvisionedTokens": c["multiyear_provisioned_tokens"],
            "contractYears": [{
                "year": r["contract_year"], "startDate": _iso(r["year_start_date"]), "endDate": _iso(r["year_end_date"]),
                "provisionedTokens": r["provisioned_tokens"], "consumedTokens": r["consumed_tokens"],
                "remainingTokens": r["remaining_tokens"], "multiyearTokensAtStart": r["multiyear_tokens_at_start"],
                "multiyearConsumedTokens": r["multiyear_consumed_tokens"],
            } for r in rows],
        })

    async def enrichment(request: Request):
        auth(request)
        _contract(sb, request)
        return JSONResponse(sb.data.enrichment["category_name"].to_pylist())

    async def enrichment_values(request: Request):
        auth(request)
        _contract(sb, request)
        category = unquote(request.path_params["category"])
        names = sb.data.enrichment.to_pylist()
        match = [r["custom_field"] for r in names if category in (r["category_name"], r["custom_field"])]
        if not match:
            raise ApiProblem(404, "CATEGORY_NOT_FOUND", f"No enrichment category {category!r}")
        column = "custom_field" + match[0].removeprefix("customField")
        _, rows = sb.sql(f"SELECT DISTINCT {column} FROM tokenflex_usage WHERE {column} IS NOT NULL ORDER BY 1")
        return JSONResponse([r[0] for r in rows])

    async def summary(request: Request):
        auth(request)
        contract = _contract(sb, request)
        q = request.query_params
        where, params = ["contract_number = ?"], [contract]
        for key, column in (("minUsageMonth", ">="), ("maxUsageMonth", "<=")):
            if q.get(key):
                try:
                    params.append(dt.date.fromisoformat(q[key][:10] if len(q[key]) >= 10 else q[key] + "-01"))
                except ValueError:
                    raise ApiProblem(400, "INVALID_PARAMETER", f"{key} must be a month like 2026-01 or 2026-01-01") from None
                where.append(f"usage_month {column} ?")
        if q.get("contractYear"):
            try:
                params.append(int(q["contractYear"]))
            except ValueError:
                raise ApiProblem(400, "INVALID_PARAMETER", "contractYear must be an integer") from None
            where.append("contract_year = ?")
        if q.get("usageCategory"):
            cats = q["usageCategory"].split(",")
            if any(c not in USAGE_CATEGORIES for c in cats):
                raise ApiProblem(400, "INVALID_USAGE_CATEGORY", f"Unknown usageCategory {q['usageCategory']!r}")
            where.append(f"usage_category IN ({', '.join('?' for _ in cats)})")
            params += cats
        _, rows = sb.sql(
            "SELECT usage_month, contract_year, usage_category, COUNT(DISTINCT user_name), SUM(tokens_consumed) "
            f"FROM tokenflex_usage WHERE {' AND '.join(where)} GROUP BY ALL ORDER BY ALL", params)
        return JSONResponse([{"usageMonth": _iso(r[0]), "contractYear": r[1], "usageCategory": r[2],
                              "uniqueUsers": r[3], "tokensConsumed": r[4]} for r in rows])

    async def last(request: Request):
        auth(request)
        contract = _contract(sb, request)
        processed = (sb.data.end_date + dt.timedelta(days=1)).isoformat() + "T06:00:00Z"
        _, rows = sb.sql("SELECT usage_category, charge_category, MAX(usage_date) FROM tokenflex_usage "
                         "WHERE contract_number = ? GROUP BY ALL ORDER BY ALL", [contract])
        return JSONResponse([{"usageCategory": r[0], "chargeCategory": r[1] or "N/A", "lastUsageDate": _iso(r[2]),
                              "lastProcessDate": processed} for r in rows])

    async def submit_query(request: Request):
        auth(request, write=True, read_ok_for_post=True)
        contract = _contract(sb, request)
        body = await _json_body(request)
        scope_sql, scope_params = _query_scope(body, contract)
        sql, params, _, outputs = build_query(
            "tokenflex_usage", TOKENFLEX_FIELDS, TOKENFLEX_METRICS, body, scope_sql=scope_sql,
            scope_params=scope_params, personal_hidden=False, allow_session=False, api="tokenflex/v1 usage query")
        query_id = "query:" + hashlib.sha224(f"{contract}|{_canonical(body)}".encode()).hexdigest()
        detail = f"/v1/usage/{contract}/query/{query_id}"
        cached = sb.jobs.get(query_id)
        if cached is not None and _tf_query_status(sb, cached) in ("DONE", "QUEUED", "PROCESSING"):
            return JSONResponse({"status": _tf_query_status(sb, cached), "id": query_id, "detail_uri": detail})
        fails = "job-error" in request.state.faults
        job = Job(id=query_id, kind="tf-query", created=time.monotonic(), created_wall=time.time(), fails=fails)
        job.extra["failure"] = "TIMEOUT" if (fails and int(query_id[-2:], 16) % 2) else "FAILED"
        await in_thread(run_job_query, sb, job, sql, params, outputs)
        job.created = time.monotonic()  # the status clock starts when the client gets the id
        with sb.lock:
            sb.jobs[query_id] = job
        return JSONResponse({"status": "QUEUED", "id": query_id, "detail_uri": detail})

    async def get_query(request: Request):
        auth(request)
        _contract(sb, request)
        offset, limit = _page_params(request)
        job = sb.jobs.get(request.path_params["query_id"])
        if job is None or job.kind != "tf-query":
            raise ApiProblem(404, "QUERY_NOT_FOUND", "No such query")
        status = _tf_query_status(sb, job)
        out = {"status": status, "id": job.id}
        if status == "DONE":
            out["result"] = {"columns": job.columns, "rows": job.rows[offset: offset + limit], "total": len(job.rows),
                             "offset": offset, "limit": limit}
        elif status in ("FAILED", "TIMEOUT"):
            out["error"] = "The query failed (sandbox job-error fault)"
        return JSONResponse(out)

    async def submit_export(request: Request):
        auth(request, write=True)
        contract = _contract(sb, request)
        body = await _json_body(request)
        name = body.get("downloadFileName")
        if not isinstance(name, str) or not name.strip() or "/" in name or len(name) > 200:
            raise ApiProblem(400, "INVALID_REQUEST", "downloadFileName is required (a file name without extension)")
        session_fields = [f for f in _str_list(body, "fields") if TOKENFLEX_FIELDS.get(f) and TOKENFLEX_FIELDS[f].session]
        categories = _str_list(body, "usageCategory")
        if session_fields and len(categories) != 1:
            raise ApiProblem(400, "MIXED_USAGE_CATEGORIES",
                             "session-level fields need exactly one usageCategory (categories cannot be mixed)")
        scope_sql, scope_params = _query_scope(body, contract)
        sql, params, names, outputs = build_query(
            "tokenflex_usage", TOKENFLEX_FIELDS, TOKENFLEX_METRICS, body, scope_sql=scope_sql,
            scope_params=scope_params, personal_hidden=False, allow_session=True, api="tokenflex/v1 export")
        with sb.lock:
            outstanding = sum(1 for j in sb.tf_exports.values() if _tf_export_status(sb, j) == "Requested")
        if outstanding >= MAX_OUTSTANDING_EXPORTS:
            raise ApiProblem(429, "TOO_MANY_EXPORTS", f"At most {MAX_OUTSTANDING_EXPORTS} outstanding export requests",
                             {"Retry-After": "1" if sb.time_scale < 0.2 else str(int(TF_EXPORT_SECONDS * sb.time_scale) + 1)})
        now = dt.datetime.now(dt.timezone.utc)
        key = f"{now.strftime('%Y-%m-%dT%H:%M:%S')}#{secrets.token_hex(16)}"
        job = Job(id=key, kind="tf-export", created=time.monotonic(), created_wall=time.time(),
                  fails="job-error" in request.state.faults)
        job.body = body
        job.extra = {"file_name": name.strip() + ".csv", "request_date": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                     "read": False, "sql": (sql, params, outputs, names)}
        with sb.lock:
            sb.tf_exports[key] = job
        return JSONResponse(await _export_object(sb, request, job, contract))

    async def get_export(request: Request):
        auth(request)
        contract = _contract(sb, request)
        job = _find_export(sb, request)
        return JSONResponse(await _export_object(sb, request, job, contract))

    async def refresh_url(request: Request):
        auth(request, write=True)
        contract = _contract(sb, request)
        job = _find_export(sb, request)
        if _tf_export_status(sb, job) != "Download":
            raise ApiProblem(400, "EXPORT_NOT_READY", "Only a finished export (Download) has a URL to refresh")
        job.extra.pop("url", None)
        return JSONResponse(await _export_object(sb, request, job, contract))

    async def retry(request: Request):
        auth(request, write=True)
        contract = _contract(sb, request)
        job = _find_export(sb, request)
        if _tf_export_status(sb, job) != "Error":
            raise ApiProblem(400, "EXPORT_NOT_FAILED", "Only an export in Error can be retried")
        job.created, job.fails = time.monotonic(), "job-error" in request.state.faults
        return JSONResponse(await _export_object(sb, request, job, contract))

    async def delete_export(request: Request):
        auth(request, write=True)
        _contract(sb, request)
        job = _find_export(sb, request)
        with sb.lock:
            sb.tf_exports.pop(job.id, None)
        return Response(status_code=204)

    async def list_exports(request: Request):
        auth(request)
        contract = _contract(sb, request)
        q = request.query_params
        try:
            lo = dt.date.fromisoformat(q["fromDate"][:10]) if q.get("fromDate") else None
            hi = dt.date.fromisoformat(q["toDate"][:10]) if q.get("toDate") else None
        except ValueError:
            raise ApiProblem(400, "INVALID_PARAMETER", "fromDate and toDate must be dates like 2026-11-01") from None
        out = []
        for job in sorted(list(sb.tf_exports.values()), key=lambda j: j.created_wall):
            day = dt.date.fromisoformat(job.extra["request_date"][:10])
            if (lo and day < lo) or (hi and day > hi):
                continue
            out.append(await _export_object(sb, request, job, contract, with_url=False))
        return JSONResponse(out)

    async def schedules(request: Request):
        if request.method == "GET":
            auth(request)
            _contract(sb, request)
            return JSONResponse(sb.tf_schedules)
        auth(request, write=True)
        contract = _contract(sb, request)
        body = await _json_body(request)
        frequency = body.get("frequency", "DAILY")
        if frequency not in FREQUENCIES:
            raise ApiProblem(400, "INVALID_REQUEST", f"frequency must be one of {', '.join(FREQUENCIES)}")
        if not isinstance(body.get("downloadFileName"), str) or not body["downloadFileName"].strip():
            raise ApiProblem(400, "INVALID_REQUEST", "downloadFileName is required")
        scope_sql, scope_params = _query_scope(body, contract)
        build_query("tokenflex_usage", TOKENFLEX_FIELDS, TOKENFLEX_METRICS, body, scope_sql=scope_sql,
                    scope_params=scope_params, personal_hidden=False, allow_session=True, api="tokenflex/v1 schedule")
        schedule = {"scheduleId": secrets.token_hex(8), "frequency": frequency, "contractNumber": contract,
                    **{k: body.get(k) for k in ("fields", "metrics", "usageCategory", "where", "downloadFileName")},
                    "createdDate": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        sb.tf_schedules.append(schedule)
        return JSONResponse(schedule, status_code=201)

    base = "/tokenflex/v1"
    return [
        Route(f"{base}/contract", contracts, methods=["GET"]),
        Route(f"{base}/contract/{{contract}}", contract_detail, methods=["GET"]),
        Route(f"{base}/contract/{{contract}}/enrichment", enrichment, methods=["GET"]),
        Route(f"{base}/contract/{{contract}}/enrichment/{{category}}", enrichment_values, methods=["GET"]),
        Route(f"{base}/usage/{{contract}}/summary", summary, methods=["GET"]),
        Route(f"{base}/usage/{{contract}}/last", last, methods=["GET"]),
        Route(f"{base}/usage/{{contract}}/query", submit_query, methods=["POST"]),
        Route(f"{base}/usage/{{contract}}/query/{{query_id}}", get_query, methods=["GET"]),
        Route(f"{base}/export/{{contract}}/requests", submit_export, methods=["POST"]),
        Route(f"{base}/export/{{contract}}/requests", list_exports, methods=["GET"]),
        Route(f"{base}/export/{{contract}}/requests/{{key}}/refreshUrl", refresh_url, methods=["POST"]),
        Route(f"{base}/export/{{contract}}/requests/{{key}}/retry", retry, methods=["POST"]),
        Route(f"{base}/export/{{contract}}/requests/{{key}}", get_export, methods=["GET"]),
        Route(f"{base}/export/{{contract}}/requests/{{key}}", delete_export, methods=["DELETE"]),
        Route(f"{base}/export/{{contract}}/schedules", schedules, methods=["GET", "POST"]),
    ]


def _tf_query_status(sb: Sandbox, job: Job) -> str:
    age = sb.age(job)
    if age >= TF_RESULT_TTL:
        return "EXPIRED"
    if age < TF_QUEUED_SECONDS:
        return "QUEUED"
    if age < TF_PROCESSING_SECONDS:
        return "PROCESSING"
    return job.extra.get("failure", "FAILED") if job.fails else "DONE"


def _tf_export_status(sb: Sandbox, job: Job) -> str:
    if sb.age(job) < TF_EXPORT_SECONDS:
        return "Requested"
    return "Error" if job.fails else "Download"


def _find_export(sb: Sandbox, request: Request) -> Job:
    key = request.path_params["key"]
    job = sb.tf_exports.get(key)
    if job is None:
        hint = "" if "#" in key else " (the request key holds '#' and ':'; URI-encode it)"
        raise ApiProblem(404, "EXPORT_NOT_FOUND", f"No export request {key!r}{hint}")
    return job


def _export_csv(sb: Sandbox, job: Job) -> bytes:
    sql, params, outputs, names = job.extra["sql"]
    from .app import _json_value

    columns, rows = sb.sql(sql, params)
    cols = list(zip(*rows)) if rows else [[] for _ in names]
    table = pa.table({name: pa.array([_json_value(v, o) for v in col]) if col else pa.array([], pa.string())
                      for name, col, o in zip(names, cols, outputs)})
    sink = io.BytesIO()
    pacsv.write_csv(table, sink, pacsv.WriteOptions(quoting_style="needed"))
    return sink.getvalue()


async def _export_object(sb: Sandbox, request: Request, job: Job, contract: str, with_url: bool = True) -> dict:
    status = _tf_export_status(sb, job)
    out = {"requestKey": job.id, "requestStatus": status, "downloadFileName": job.extra["file_name"],
           "exportRequestDate": job.extra["request_date"], "contractNumber": contract}
    if status == "Download":
        file_id = "tf-" + hashlib.sha1(job.id.encode()).hexdigest()
        if file_id not in sb.downloads:
            csv = await in_thread(_export_csv, sb, job)

            def mark_read(j=job):
                j.extra["read"] = True

            sb.downloads[file_id] = DownloadFile(file_id, csv, job.extra["file_name"], "plain", on_download=mark_read)
        if "url" not in job.extra:
            url, expires = sb.signed_url(request, file_id, TF_DOWNLOAD_URL_TTL, expired="expire-url" in request.state.faults)
            job.extra["url"] = (url, expires)
        url, expires = job.extra["url"]
        if with_url:
            out["downloadUrl"] = url
        out["downloadUrlExpireDate"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires))
        out["readFlag"] = job.extra["read"]
    elif status == "Error":
        out["errorMessage"] = "The export failed (sandbox job-error fault)"
    return out
