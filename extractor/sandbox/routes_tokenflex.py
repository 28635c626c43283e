"""tokenflex/v1 routes: contracts, enrichment, usage summary/last, usage queries, export requests, schedules."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import re
import time
import uuid
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.csv as pacsv
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .app import (
    TF_DOWNLOAD_URL_TTL,
    TF_EXPORT_SECONDS,
    TF_PROCESSING_SECONDS,
    TF_QUEUED_SECONDS,
    TF_RESULT_TTL,
    ApiProblem,
    DownloadFile,
    Job,
    Sandbox,
    _json_body,
    _page_params,
    _str_list,
    authenticate,
    build_query,
    in_thread,
    run_job_query,
)
from .fields import TOKENFLEX_FIELDS, TOKENFLEX_METRICS, USAGE_CATEGORIES
from .ratelimit import MAX_OUTSTANDING_EXPORTS

#: reference page of POST export/:contract_number/requests: a desktop export with one of these
#: fields is session level, and then only SESSION_METRICS may be asked for
SESSION_FIELDS = ("chargedItemID", "sessionStartDate", "sessionEndDate", "licenseServerTimeZoneOffset", "chargeCategory")
SESSION_METRICS = ("tokensConsumed", "usageMinutes", "usageHours")
#: fields of the other usage categories, refused in a desktop session-level export
NOT_DESKTOP_FIELDS = ("hubId", "hubName", "projectId", "projectName", "jobStatus", "transactionDate", "reasonType",
                      "reasonComment", "tokenPool")
#: the schedule reference pages: only this date range, and these usage categories
SCHEDULE_DATE_RANGES = ("Previous-1-Month",)
SCHEDULE_CATEGORIES = ("DESKTOP_PRODUCT", "CLOUD")
_CRON_FIELD = re.compile(r"[0-9A-Za-z*?/,#LW-]+\Z")
WRITE = "data:write"


def _timestamp(ts: float) -> str:
    """Token Flex timestamps carry microseconds and no zone: 2018-10-29T03:25:31.123456."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def _parse_datetime(value: str, name: str) -> dt.datetime:
    """fromDate/toDate: ISO date-times (with or without Z and fractions) or plain dates, as UTC."""
    try:
        parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise ApiProblem(400, "INVALID_PARAMETER",
                         f"{name} must be a date-time like 2018-08-20T22:43:13.132559Z, got {value!r}") from None
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)


def _tf_fields(sb: Sandbox, body: dict) -> dict:
    """The field table with the contract's enrichment category names (GET .../enrichment) as
    aliases of their customFieldN, matched without regard to case: Autodesk's export app asks
    for "Geo" and "Country". A field keeps the spelling the client asked for."""
    fields = dict(TOKENFLEX_FIELDS)
    by_name = {r["category_name"]: r["custom_field"] for r in sb.data.enrichment.to_pylist()}
    folded = {name.casefold(): custom for name, custom in by_name.items()}
    for name, custom in by_name.items():
        fields.setdefault(name, TOKENFLEX_FIELDS[custom])
    for name in body.get("fields") or []:
        if isinstance(name, str) and name not in fields and name.casefold() in folded:
            fields[name] = TOKENFLEX_FIELDS[folded[name.casefold()]]
    return fields


def _check_session_rules(body: dict) -> None:
    """A session-level desktop export allows only SESSION_METRICS and desktop fields: "including
    any other fields or metrics ... will cause the request to be rejected" (reference page)."""
    fields, categories = _str_list(body, "fields"), _str_list(body, "usageCategory")
    if categories != ["DESKTOP_PRODUCT"] or not any(f in SESSION_FIELDS for f in fields):
        return
    metrics = [m for m in _str_list(body, "metrics") if m not in SESSION_METRICS]
    if metrics:
        raise ApiProblem(400, "INVALID_METRIC",
                         f"Metric(s) {', '.join(metrics)} not allowed in a session-level DESKTOP_PRODUCT export: "
                         f"only {', '.join(SESSION_METRICS)}")
    others = [f for f in fields if f in NOT_DESKTOP_FIELDS]
    if others:
        raise ApiProblem(400, "INVALID_FIELD",
                         f"Field(s) {', '.join(others)} not allowed in a session-level DESKTOP_PRODUCT export")


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
    def auth(request: Request, scope: str = "data:read"):
        return authenticate(sb, request, insights=False, scope=scope)

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
        auth(request)  # the reference page: data:read, though it is a POST
        contract = _contract(sb, request)
        offset, limit = _page_params(request)
        body = await _json_body(request)
        scope_sql, scope_params = _query_scope(body, contract)
        sql, params, _, outputs = build_query(
            "tokenflex_usage", _tf_fields(sb, body), TOKENFLEX_METRICS, body, scope_sql=scope_sql,
            scope_params=scope_params, personal_hidden=False, allow_session=False, api="tokenflex/v1 usage query")
        query_id = "query:" + hashlib.sha224(f"{contract}|{_canonical(body)}".encode()).hexdigest()
        # the reference page's form; Autodesk's export app resolves it against the host
        detail = f"/tokenflex/v1/usage/{contract}/query/{query_id}"
        cached = sb.jobs.get(query_id)
        status = _tf_query_status(sb, cached) if cached is not None else None
        if status == "DONE":  # a cached answer comes back at once, its first page included
            return JSONResponse({"status": "DONE", "id": query_id, "detail_uri": detail,
                                 "result": _result_page(cached, offset, limit)})
        if status in ("QUEUED", "PROCESSING"):
            return JSONResponse({"status": status, "id": query_id, "detail_uri": detail})
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
            out["result"] = _result_page(job, offset, limit)
        elif status in ("FAILED", "TIMEOUT"):
            out["error"] = "The query failed (sandbox job-error fault)"
        return JSONResponse(out)

    async def submit_export(request: Request):
        auth(request, WRITE)
        contract = _contract(sb, request)
        body = await _json_body(request)
        now = dt.datetime.now(dt.UTC)
        name = _file_name(body, f"{contract}_{now:%Y%m%d%H%M%S}")
        fields = _tf_fields(sb, body)
        session_fields = [f for f in _str_list(body, "fields") if fields.get(f) and fields[f].session]
        categories = _str_list(body, "usageCategory")
        if session_fields and len(categories) != 1:
            raise ApiProblem(400, "MIXED_USAGE_CATEGORIES",
                             "session-level fields need exactly one usageCategory (categories cannot be mixed)")
        _check_session_rules(body)
        scope_sql, scope_params = _query_scope(body, contract)
        sql, params, names, outputs = build_query(
            "tokenflex_usage", fields, TOKENFLEX_METRICS, body, scope_sql=scope_sql,
            scope_params=scope_params, personal_hidden=False, allow_session=True, api="tokenflex/v1 export")
        with sb.lock:
            outstanding = sum(1 for j in sb.tf_exports.values() if _tf_export_status(sb, j) == "Requested")
        if outstanding >= MAX_OUTSTANDING_EXPORTS:
            raise ApiProblem(429, "TOO_MANY_EXPORTS", f"At most {MAX_OUTSTANDING_EXPORTS} outstanding export requests",
                             {"Retry-After": "1" if sb.time_scale < 0.2 else str(int(TF_EXPORT_SECONDS * sb.time_scale) + 1)})
        key = f"{now:%Y-%m-%dT%H:%M:%S}#{uuid.uuid4()}"  # the reference pages' form
        job = Job(id=key, kind="tf-export", created=time.monotonic(), created_wall=now.timestamp(),
                  fails="job-error" in request.state.faults)
        job.body = body
        job.extra = {"file_name": name + ".csv", "request_date": _timestamp(now.timestamp()),
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
        auth(request, WRITE)
        contract = _contract(sb, request)
        job = _find_export(sb, request)
        if _tf_export_status(sb, job) != "Download":
            raise ApiProblem(400, "EXPORT_NOT_READY", "Only a finished export (Download) has a URL to refresh")
        job.extra.pop("url", None)
        return JSONResponse(await _export_object(sb, request, job, contract))

    async def retry(request: Request):
        auth(request, WRITE)
        contract = _contract(sb, request)
        job = _find_export(sb, request)
        if _tf_export_status(sb, job) != "Error":
            raise ApiProblem(400, "EXPORT_NOT_FAILED", "Only an export in Error can be retried")
        job.created, job.fails = time.monotonic(), "job-error" in request.state.faults
        return JSONResponse(await _export_object(sb, request, job, contract))

    async def delete_export(request: Request):
        auth(request, WRITE)
        _contract(sb, request)
        job = _find_export(sb, request)
        with sb.lock:
            sb.tf_exports.pop(job.id, None)
        return Response(status_code=204)

    async def list_exports(request: Request):
        auth(request)
        q = request.query_params
        for key in ("fromDate", "toDate"):
            if not q.get(key):
                raise ApiProblem(400, "INVALID_PARAMETER", f"{key} is required (a date-time like 2018-09-21T00:00:00Z)")
        lo, hi = _parse_datetime(q["fromDate"], "fromDate"), _parse_datetime(q["toDate"], "toDate")
        if request.path_params["contract"] == "null":
            return JSONResponse([])  # exports made in Autodesk Account's UI and scheduled ones: none here
        contract = _contract(sb, request)
        out = []
        with sb.lock:
            jobs = sorted(sb.tf_exports.values(), key=lambda j: j.created_wall)
        for job in jobs:
            made = dt.datetime.fromtimestamp(job.created_wall, dt.UTC)
            if lo <= made < hi:  # fromDate inclusive, toDate exclusive
                out.append(await _export_object(sb, request, job, contract, with_url=False))
        return JSONResponse(out)

    async def mark_read(request: Request):
        auth(request, WRITE)
        _contract(sb, request)
        try:
            keys = await request.json()
        except Exception:
            keys = None
        if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
            raise ApiProblem(400, "INVALID_REQUEST", "The body must be a non-empty JSON array of requestKey strings")
        changed = []
        with sb.lock:
            for key in keys:
                job = sb.tf_exports.get(key)
                if job is not None and not job.extra["read"]:  # already "Y" is no success (reference page)
                    job.extra["read"] = True
                    changed.append(key)
        return JSONResponse(changed)

    async def schedules(request: Request):
        if request.method == "GET":
            auth(request)
            _contract(sb, request)
            with sb.lock:
                return JSONResponse(list(sb.tf_schedules))
        auth(request, WRITE)
        contract = _contract(sb, request)
        schedule = {"scheduleID": str(uuid.uuid4()), **_schedule_body(sb, await _json_body(request), contract)}
        with sb.lock:
            sb.tf_schedules.append(schedule)
        return JSONResponse(schedule, status_code=201)

    def _find_schedule(request: Request) -> dict:
        wanted = unquote(request.path_params["schedule_id"])
        for schedule in sb.tf_schedules:
            if schedule["scheduleID"] == wanted:
                return schedule
        # the reference page answers an unknown schedule with 400, not 404
        raise ApiProblem(400, "SCHEDULE_NOT_FOUND", f"No schedule {wanted!r}")

    async def schedule(request: Request):
        if request.method == "GET":
            auth(request)
            _contract(sb, request)
            return JSONResponse(_find_schedule(request))
        auth(request, WRITE)
        contract = _contract(sb, request)
        with sb.lock:
            found = _find_schedule(request)
            if request.method == "DELETE":
                sb.tf_schedules.remove(found)
                return Response(status_code=204)
        body = await _json_body(request)
        updated = _schedule_body(sb, {**{k: v for k, v in found.items() if k != "scheduleID"}, **body}, contract)
        with sb.lock:
            found.update(updated)
        return JSONResponse(found)

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
        Route(f"{base}/export/{{contract}}/requests/markRead", mark_read, methods=["POST"]),
        Route(f"{base}/export/{{contract}}/requests/{{key}}/refreshUrl", refresh_url, methods=["POST"]),
        Route(f"{base}/export/{{contract}}/requests/{{key}}/retry", retry, methods=["POST"]),
        Route(f"{base}/export/{{contract}}/requests/{{key}}", get_export, methods=["GET"]),
        Route(f"{base}/export/{{contract}}/requests/{{key}}", delete_export, methods=["DELETE"]),
        Route(f"{base}/export/{{contract}}/schedules", schedules, methods=["GET", "POST"]),
        Route(f"{base}/export/{{contract}}/schedules/{{schedule_id}}", schedule, methods=["GET", "PUT", "DELETE"]),
    ]


def _result_page(job: Job, offset: int, limit: int) -> dict:
    return {"columns": job.columns, "rows": job.rows[offset: offset + limit], "total": len(job.rows),
            "offset": offset, "limit": limit}


def _file_name(body: dict, default: str) -> str:
    """downloadFileName is optional (the reference page's example sends none): a default name
    stands in; ".csv" is added to either."""
    name = body.get("downloadFileName")
    if name is None:
        return default
    if not isinstance(name, str) or not name.strip() or "/" in name or len(name) > 200:
        raise ApiProblem(400, "INVALID_REQUEST", "downloadFileName must be a file name without extension")
    return name.strip()


def _schedule_body(sb: Sandbox, body: dict, contract: str) -> dict:
    """A schedule as the reference pages show it: dateRangeExpression, enableFlag, a cron-like
    frequencyExpression (seconds minutes hours day-of-month month day-of-week), scheduleObjects."""
    date_range = body.get("dateRangeExpression", SCHEDULE_DATE_RANGES[0])
    if date_range not in SCHEDULE_DATE_RANGES:
        raise ApiProblem(400, "INVALID_REQUEST", f"dateRangeExpression must be {' or '.join(SCHEDULE_DATE_RANGES)}")
    enable = body.get("enableFlag", "Y")
    if enable not in ("Y", "N"):
        raise ApiProblem(400, "INVALID_REQUEST", "enableFlag must be \"Y\" or \"N\"")
    cron = body.get("frequencyExpression")
    parts = cron.split() if isinstance(cron, str) else []
    if len(parts) != 6 or not all(_CRON_FIELD.match(p) for p in parts):
        raise ApiProblem(400, "INVALID_REQUEST", "frequencyExpression must be a cron-like expression of 6 fields "
                         "(seconds minutes hours day-of-month month day-of-week), e.g. \"0 0 6 1 * ?\"")
    objects = body.get("scheduleObjects")
    if not isinstance(objects, list) or not objects or not all(isinstance(o, dict) for o in objects):
        raise ApiProblem(400, "INVALID_REQUEST", "scheduleObjects must be a non-empty array of report objects")
    for obj in objects:
        if obj.get("usageCategory") not in SCHEDULE_CATEGORIES:
            raise ApiProblem(400, "INVALID_USAGE_CATEGORY",
                             f"scheduleObjects[].usageCategory must be one of {', '.join(SCHEDULE_CATEGORIES)}")
        if obj.get("fields") or obj.get("metrics"):  # a report that names its columns must name real ones
            build_query("tokenflex_usage", _tf_fields(sb, obj), TOKENFLEX_METRICS,
                        {k: obj.get(k) for k in ("fields", "metrics", "where")}, scope_sql="contract_number = ?",
                        scope_params=[contract], personal_hidden=False, allow_session=True,
                        api="tokenflex/v1 schedule")
    return {"dateRangeExpression": date_range, "enableFlag": enable, "frequencyExpression": cron,
            "scheduleObjects": objects}


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
           "exportRequestDate": job.extra["request_date"], "contractNumber": contract,
           "readFlag": "Y" if job.extra["read"] else "N"}
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
        out["downloadUrlExpireDate"] = _timestamp(expires)
    elif status == "Error":
        out["errorMessage"] = "The export failed (sandbox job-error fault)"
    return out
