"""insights/v1 routes: contexts, usage queries, exports, and the pre-signed download endpoint."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import time
import zipfile

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import reports
from .app import (
    DOWNLOAD_URL_TTL,
    EXPORT_SECONDS,
    EXPORT_TTL,
    MAX_EXPORT_DAYS,
    PREMIUM_REPORTS,
    QUERY_RESULT_TTL,
    QUERY_RUNNING_SECONDS,
    QUERY_SUBMITTED_SECONDS,
    USAGE_REPORT_KINDS,
    ApiProblem,
    DownloadFile,
    Job,
    Sandbox,
    _json_body,
    _page_params,
    authenticate,
    build_query,
    in_thread,
    new_job,
    run_job_query,
)
from .fields import PREMIUM_FIELDS, PREMIUM_METRICS

ENCODINGS = ("plain", "gzip", "zip")
SHEET_NAMES = {"SUBSCRIPTIONS": "Subscriptions", "USERS": "Users", "USAGE": "Usage", "USAGE_REPORT": "Usage Report"}
# Accept-Language localises EXCEL sheet names (a few languages are enough to make clients robust to it)
LOCALISED_SHEETS = {
    "de": {"SUBSCRIPTIONS": "Abonnements", "USERS": "Benutzer", "USAGE": "Nutzung"},
    "fr": {"SUBSCRIPTIONS": "Abonnements", "USERS": "Utilisateurs", "USAGE": "Utilisation"},
    "es": {"SUBSCRIPTIONS": "Suscripciones", "USERS": "Usuarios", "USAGE": "Uso"},
}


def routes(sb: Sandbox) -> list[Route]:
    async def contexts(request: Request):
        authenticate(sb, request, insights=True)
        return JSONResponse([
            {"contextId": r["context_id"], "alias": r["team_name"], "reportingBenefits": r["reporting_benefits"].split(",")}
            for r in sb.data.teams.to_pylist()
        ])

    async def submit_query(request: Request):
        authenticate(sb, request, insights=True)
        _page_params(request)
        body = await _json_body(request)
        # without a contextId (Autodesk's PAT sample sends none) the token's default team answers
        context_id = str(request.query_params.get("contextId") or body.get("contextId") or _default_team(sb))
        if context_id not in sb.data.teams["context_id"].to_pylist():
            raise ApiProblem(404, "CONTEXT_NOT_FOUND", f"No team with contextId {context_id!r}")
        sql, params, _, outputs = build_query(
            "usage", PREMIUM_FIELDS, PREMIUM_METRICS, body, scope_sql="context_id = ?", scope_params=[context_id],
            personal_hidden=sb.hide_personal_data, allow_session=True, api="insights/v1",
        )
        job = new_job(sb, "premium-query", fails="job-error" in request.state.faults)
        job.body = body
        await in_thread(run_job_query, sb, job, sql, params, outputs)
        job.created = time.monotonic()  # the status clock starts when the client gets the id
        return JSONResponse({"id": job.id, "status": "SUBMITTED", "startTime": int(job.created_wall)})

    async def get_query(request: Request):
        authenticate(sb, request, insights=True)
        offset, limit = _page_params(request)
        job = sb.jobs.get(request.path_params["query_id"])
        if job is None or job.kind != "premium-query":
            raise ApiProblem(404, "QUERY_NOT_FOUND", "No such usage query")
        age = sb.age(job)
        if age >= QUERY_RESULT_TTL:
            return JSONResponse({"id": job.id, "status": "EXPIRED"})
        if age < QUERY_SUBMITTED_SECONDS:
            return JSONResponse({"id": job.id, "status": "SUBMITTED"})
        if age < QUERY_RUNNING_SECONDS:
            return JSONResponse({"id": job.id, "status": "RUNNING"})
        if job.fails:
            return JSONResponse({"id": job.id, "status": "ERROR",
                                 "error": {"developerMessage": "The query failed (sandbox job-error fault)"}})
        return JSONResponse({
            "id": job.id, "status": "COMPLETED",
            "pagination": {"totalResults": len(job.rows), "offset": offset, "limit": limit},
            "columns": job.columns, "rows": job.rows[offset: offset + limit],
        })

    async def submit_export(request: Request):
        authenticate(sb, request, insights=True)
        body = await _json_body(request)
        spec = _validate_export(sb, body)
        job = new_job(sb, "premium-export", fails="job-error" in request.state.faults)
        language = request.headers.get("accept-language", "en")[:2].lower()
        with sb.lock:
            job.extra = {**spec, "seq": sum(1 for j in sb.jobs.values() if j.kind == "premium-export"),
                         "sheets": {**SHEET_NAMES, **LOCALISED_SHEETS.get(language, {})}}
        return JSONResponse(_export_object(sb, request, job, status="SUBMITTED"))

    async def get_export(request: Request):
        authenticate(sb, request, insights=True)
        job = sb.jobs.get(request.path_params["export_id"])
        if job is None or job.kind != "premium-export":
            raise ApiProblem(404, "EXPORT_NOT_FOUND", "No such export")
        if sb.age(job) >= EXPORT_SECONDS and not job.fails and "files" not in job.extra:
            await in_thread(_prepare_files, sb, job)
        return JSONResponse(_export_object(sb, request, job))

    async def list_exports(request: Request):
        authenticate(sb, request, insights=True)
        offset, limit = _page_params(request)
        team = request.query_params.get("teamId")
        with sb.lock:
            jobs = [j for j in sb.jobs.values() if j.kind == "premium-export" and "seq" in j.extra
                    and (not team or j.extra.get("teamId") == team)]
        jobs.sort(key=lambda j: (j.created_wall, j.extra["seq"]), reverse=True)  # newest first
        page = jobs[offset: offset + limit]
        for job in page:  # each listed export carries its downloads, as GET exports/<id> does
            if _export_status(sb, job) == "COMPLETED" and "files" not in job.extra:
                await in_thread(_prepare_files, sb, job)
        return JSONResponse({
            "pagination": {"totalResults": len(jobs), "offset": offset, "limit": limit},
            "exports": [_export_object(sb, request, j) for j in page],
        })

    return [
        Route("/insights/v1/contexts", contexts, methods=["GET"]),
        Route("/insights/v1/usage-queries", submit_query, methods=["POST"]),
        Route("/insights/v1/usage-queries/{query_id}", get_query, methods=["GET"]),
        Route("/insights/v1/exports", submit_export, methods=["POST"]),
        Route("/insights/v1/exports", list_exports, methods=["GET"]),
        Route("/insights/v1/exports/{export_id}", get_export, methods=["GET"]),
    ]


def _default_team(sb: Sandbox) -> str:
    """The team a query without contextId answers for: the first team the token sees."""
    return str(sb.data.teams["context_id"][0].as_py())


def _parse_instant(value, name: str) -> dt.date:
    if not isinstance(value, str):
        raise ApiProblem(400, "INVALID_DATE", f"{name} must be an ISO date-time like 2025-01-01T00:00:00Z")
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).date()
    except ValueError:
        raise ApiProblem(400, "INVALID_DATE", f"{name} {value!r} is not an ISO date-time") from None


def _validate_export(sb: Sandbox, body: dict) -> dict:
    fmt = body.get("outputFormat", "CSV")
    if fmt not in ("CSV", "JSON", "EXCEL"):
        raise ApiProblem(400, "INVALID_OUTPUT_FORMAT", "outputFormat must be CSV, JSON or EXCEL")
    wanted = body.get("reports")
    if not isinstance(wanted, list) or not wanted or not all(r in PREMIUM_REPORTS for r in wanted):
        raise ApiProblem(400, "INVALID_REPORTS", f"reports must be a non-empty list of {', '.join(PREMIUM_REPORTS)}")
    team_id = body.get("teamId")
    team_names = dict(zip(sb.data.teams["context_id"].to_pylist(), sb.data.teams["team_name"].to_pylist()))
    if team_id is not None and str(team_id) not in team_names:
        raise ApiProblem(404, "TEAM_NOT_FOUND", f"No team with id {team_id!r}")
    start = end = None
    if "USAGE" in wanted or "USAGE_REPORT" in wanted or body.get("startDate") or body.get("endDate"):
        if not body.get("startDate") or not body.get("endDate"):
            raise ApiProblem(400, "INVALID_DATE_RANGE", "startDate and endDate are required for USAGE and USAGE_REPORT")
        start = _parse_instant(body["startDate"], "startDate")
        end = _parse_instant(body["endDate"], "endDate")
        if end < start:
            raise ApiProblem(400, "INVALID_DATE_RANGE", "endDate is before startDate")
        if (end - start).days > MAX_EXPORT_DAYS:
            raise ApiProblem(400, "INVALID_DATE_RANGE", f"the date range is at most {MAX_EXPORT_DAYS} days")
    usage_reports = body.get("usageReports") or []
    if "USAGE_REPORT" in wanted:
        if not isinstance(usage_reports, list) or not usage_reports or not all(u in USAGE_REPORT_KINDS for u in usage_reports):
            raise ApiProblem(400, "INVALID_USAGE_REPORTS",
                             f"usageReports is required with USAGE_REPORT: a list of {', '.join(USAGE_REPORT_KINDS)}")
    filters = body.get("filters") or {}
    if not isinstance(filters, dict):
        raise ApiProblem(400, "INVALID_FILTERS", "filters must be an object")
    known = {"groupId", "productLineCode", "source", "assigned", "userStatus", "userId", "versionId"}
    for key, value in filters.items():
        if key not in known:
            raise ApiProblem(400, "INVALID_FILTERS", f"unknown filter {key!r}")
        if key == "assigned" and not isinstance(value, bool):
            raise ApiProblem(400, "INVALID_FILTERS", "filters.assigned must be true or false")
        if key != "assigned" and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise ApiProblem(400, "INVALID_FILTERS", f"filters.{key} must be a list of strings")
    return {
        "outputFormat": fmt, "reports": list(wanted), "teamId": str(team_id) if team_id is not None else None,
        "teamName": team_names.get(str(team_id)) if team_id is not None else None,
        "startDate": body.get("startDate"), "endDate": body.get("endDate"), "start": start, "end": end,
        "usageReports": list(usage_reports), "filters": filters,
    }


def _export_status(sb: Sandbox, job: Job) -> str:
    age = sb.age(job)
    if age >= EXPORT_TTL:
        return "EXPIRED"
    if age < EXPORT_SECONDS:
        return "SUBMITTED"
    return "ERROR" if job.fails else "COMPLETED"


def _export_object(sb: Sandbox, request: Request, job: Job, status: str | None = None, with_urls: bool = True) -> dict:
    x = job.extra
    status = status or _export_status(sb, job)
    downloads = []
    if status == "COMPLETED" and with_urls and "files" in x:
        expired = "expire-url" in request.state.faults
        for report, file_id in x["files"]:
            url, _ = sb.signed_url(request, file_id, DOWNLOAD_URL_TTL, expired=expired)
            downloads.append({"type": report, "downloadURL": url})
    out = {
        "id": job.id, "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(job.created_wall)),
        "downloads": downloads, "status": status, "outputFormat": x["outputFormat"], "teamId": x["teamId"],
        "teamName": x["teamName"], "reports": x["reports"], "startDate": x["startDate"], "endDate": x["endDate"],
    }
    if status == "ERROR":
        out["error"] = {"developerMessage": "The export failed (sandbox job-error fault)"}
    return out


def _table_csv(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pacsv.write_csv(table, sink)
    return sink.getvalue()


def _table_json(table: pa.Table) -> bytes:
    rows = table.to_pylist()
    return json.dumps(rows, default=lambda v: v.isoformat() if hasattr(v, "isoformat") else str(v)).encode()


def _encode(raw: bytes, encoding: str, member: str) -> bytes:
    if encoding == "gzip":
        return gzip.compress(raw, mtime=0)
    if encoding == "zip":
        sink = io.BytesIO()
        with zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(member, raw)
        return sink.getvalue()
    return raw


def report_tables(sb: Sandbox, x: dict) -> list[tuple[str, str, pa.Table]]:
    """(report, sheet/file stem, table) for every report of an export."""
    teams = [x["teamId"]] if x["teamId"] else None
    hide = sb.hide_personal_data
    out = []
    for report in x["reports"]:
        if report == "SUBSCRIPTIONS":
            out.append((report, "subscriptions", reports.subscriptions_report(sb.data, team_ids=teams)))
        elif report == "USERS":
            out.append((report, "users", reports.users_report(sb.data, hide_personal=hide, team_ids=teams)))
        elif report == "USAGE":
            out.append((report, "usage", reports.usage_report(sb.data, hide_personal=hide, start=x["start"], end=x["end"],
                                                              team_ids=teams, filters=x["filters"])))
        else:
            for kind in x["usageReports"]:
                table = reports.usage_summary_report(sb.data, kind, hide_personal=hide, start=x["start"], end=x["end"],
                                                     team_ids=teams, filters=x["filters"])
                if kind == "USAGE_REPORT_BY_PRODUCT" and x["outputFormat"] == "CSV":
                    # by-product usage comes as several CSV files (how Autodesk splits them is not
                    # public; the sandbox writes one file per team, so clients must read them all)
                    for i, team in enumerate(sorted(set(table["team_alias"].to_pylist()), key=str)):
                        part = table.filter(pc.equal(table["team_alias"], team))
                        out.append((report, f"{kind.lower()}_{i + 1}", part))
                    if table.num_rows == 0:
                        out.append((report, kind.lower(), table))
                else:
                    out.append((report, kind.lower(), table))
    return out


def _prepare_files(sb: Sandbox, job: Job) -> None:
    """Build the export's files once (a USAGE report above export_split_rows is split)."""
    x = job.extra
    tables = report_tables(sb, x)
    files: list[tuple[str, str]] = []
    if x["outputFormat"] == "EXCEL":
        file_id = f"{job.id}-0"
        sb.downloads[file_id] = DownloadFile(file_id, lambda: _xlsx(tables, x["sheets"]), f"export-{job.id}.xlsx", "xlsx")
        files.append(("EXCEL", file_id))
    else:
        k = 0
        for report, stem, table in tables:
            step = sb.export_split_rows if report == "USAGE" else max(1, table.num_rows)
            for part, lo in enumerate(range(0, max(1, table.num_rows), step)):
                piece = table.slice(lo, step)
                encoding = ENCODINGS[(x["seq"] + k) % (3 if x["outputFormat"] == "CSV" else 2)]
                ext = "csv" if x["outputFormat"] == "CSV" else "json"
                name = f"{stem}-{part + 1}.{ext}"
                render = _table_csv if ext == "csv" else _table_json
                file_id = f"{job.id}-{k}"
                suffix = {"plain": "", "gzip": ".gz", "zip": ".zip"}[encoding]
                sb.downloads[file_id] = DownloadFile(
                    file_id, (lambda p=piece, r=render, e=encoding, n=name: _encode(r(p), e, n)), name + suffix, encoding)
                files.append((report, file_id))
                k += 1
    x["files"] = files


def _xlsx(tables: list[tuple[str, str, pa.Table]], sheets: dict[str, str]) -> bytes:
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    for report, stem, table in tables:
        title = sheets[report] if report != "USAGE_REPORT" else stem.replace("_", " ").title()[:31]
        ws = wb.create_sheet(title)
        ws.append(table.column_names)
        for batch in table.to_batches(50_000):
            cols = [c.to_pylist() for c in batch.columns]
            for row in zip(*cols):
                ws.append(list(row))
    sink = io.BytesIO()
    wb.save(sink)
    return sink.getvalue()


def _s3_error(status: int, code: str, message: str) -> Response:
    body = f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>'
    return Response(body, status_code=status, media_type="application/xml")


def download(sb: Sandbox, request: Request) -> Response:
    file_id = request.path_params["file_id"]
    f = sb.downloads.get(file_id)
    q = request.query_params
    if f is None:
        return _s3_error(404, "NoSuchKey", "The specified key does not exist.")
    problem = sb.check_signature(file_id, q.get("X-Amz-Date", ""), q.get("X-Amz-Expires", ""),
                                 q.get("X-Amz-Credential", ""), q.get("X-Amz-Signature", ""))
    if problem == "Request has expired":
        return _s3_error(403, "AccessDenied", "Request has expired")
    if problem:
        return _s3_error(403, "SignatureDoesNotMatch", "The request signature we calculated does not match")
    body = f.body()
    if hasattr(f, "on_download") and f.on_download:
        f.on_download()
    return Response(body, media_type="application/octet-stream",
                    headers={"Content-Disposition": f'attachment; filename="{f.filename}"'})
