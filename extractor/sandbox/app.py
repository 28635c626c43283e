"""The sandbox ASGI app: APS OAuth v2, insights/v1 and tokenflex/v1 over generated data.

Jobs (usage queries, exports) are computed for real at submit time (DuckDB over the
generated tables) and then walk their documented statuses as time passes; every duration
is multiplied by ``time_scale`` so tests run in milliseconds.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import hashlib
import hmac
import math
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import duckdb
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .. import DEFAULT_CALLBACK_URL
from . import PAT
from .data import SandboxData, generate
from .faults import FaultPlan
from .fields import ApiField, query_fields
from .oauth import OAuthServer
from .ratelimit import RateLimiter, retry_after_header
from .where import WhereError, compile_where

#: page size limits of the query endpoints (Autodesk does not document a maximum)
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
#: a USAGE export is split into files of at most this many rows
EXPORT_SPLIT_ROWS = 50_000
MAX_EXPORT_DAYS = 365
#: the Callback URLs registered on the sandbox's APS app unless create_app is given others
DEFAULT_CALLBACK_URLS = (DEFAULT_CALLBACK_URL,)

# Unscaled durations in seconds (multiplied by time_scale).
QUERY_SUBMITTED_SECONDS = 1.0
QUERY_RUNNING_SECONDS = 2.5
QUERY_RESULT_TTL = 600.0
EXPORT_SECONDS = 3.0
EXPORT_TTL = 1800.0
DOWNLOAD_URL_TTL = 300.0
#: pre-signed URL lifetimes are whole seconds (as in S3), never shorter than this
MIN_URL_SECONDS = 2
TF_QUEUED_SECONDS = 1.0
TF_PROCESSING_SECONDS = 3.0
TF_RESULT_TTL = 600.0
TF_EXPORT_SECONDS = 3.0
TF_DOWNLOAD_URL_TTL = 600.0

PREMIUM_REPORTS = ("SUBSCRIPTIONS", "USERS", "USAGE", "USAGE_REPORT")
USAGE_REPORT_KINDS = ("USAGE_REPORT_BY_PRODUCT", "USAGE_REPORT_BY_USER")


class ApiProblem(Exception):
    """An error answered in Autodesk's shape: developerMessage / errorCode / moreInfo."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def api_error(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"developerMessage": message, "errorCode": code, "moreInfo": None}, status_code=status,
                        headers=headers)


def _iso_utc(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json_value(value: Any, output: str):
    if value is None:
        return None
    if output == "week" and isinstance(value, (dt.date, dt.datetime)):
        return value.strftime("%Y-%m-%dT00:00:00Z")
    if output == "timestamp" and isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S")
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if hasattr(value, "as_integer_ratio") and not isinstance(value, (int, float)):
        return float(value)  # Decimal
    return value


@dataclass
class Job:
    id: str
    kind: str  # premium-query | premium-export | tf-query | tf-export
    created: float  # monotonic
    created_wall: float
    fails: bool = False
    columns: list[str] = field(default_factory=list)
    rows: list[list] = field(default_factory=list)
    body: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)


@dataclass
class DownloadFile:
    id: str
    content: Any  # callable -> bytes, or bytes
    filename: str
    encoding: str  # plain | gzip | zip | xlsx
    on_download: Any = None
    _cached: bytes | None = None

    def body(self) -> bytes:
        if self._cached is None:
            self._cached = self.content() if callable(self.content) else self.content
        return self._cached


class Sandbox:
    """The sandbox's state: data, OAuth, jobs, downloads, limits, faults."""

    def __init__(self, data: SandboxData, *, hide_personal_data: bool, time_scale: float, faults: FaultPlan,
                 token_ttl: int = 3600, slow_seconds: float = 2.0, rate_limits: bool = True,
                 export_split_rows: int = EXPORT_SPLIT_ROWS, callback_urls=None):
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.data = data
        self.hide_personal_data = hide_personal_data
        self.time_scale = time_scale
        self.faults = faults
        self.slow_seconds = slow_seconds
        self.export_split_rows = max(1, int(export_split_rows))
        urls = DEFAULT_CALLBACK_URLS if callback_urls is None else callback_urls
        self.oauth = OAuthServer(time_scale=time_scale, token_ttl=token_ttl,
                                 callback_urls=[urls] if isinstance(urls, str) else list(urls))
        self.limiter = RateLimiter(time_scale=time_scale) if rate_limits else None
        self.jobs: dict[str, Job] = {}
        self.downloads: dict[str, DownloadFile] = {}
        self.tf_exports: dict[str, Job] = {}
        self.tf_schedules: list[dict] = []
        self.url_secret = secrets.token_bytes(16)
        self.lock = threading.RLock()
        self.db = duckdb.connect()
        self.db.register("usage", data.usage)
        self.db.register("tokenflex_usage", data.tokenflex_usage)
        self.request_log: list[tuple[str, str, int]] = []
        #: every request the API refused with a 4xx in Autodesk's error shape, oldest first:
        #: {"method", "route" (the path template), "path", "status", "errorCode", "message"}
        self.refusals: list[dict] = []

    def refused(self, method: str | None = None, route: str | None = None, status: int | None = None) -> list[dict]:
        """The refusals logged, narrowed to a method, a route template and a status when given."""
        with self.lock:
            return [r for r in self.refusals if (method is None or r["method"] == method)
                    and (route is None or r["route"] == route) and (status is None or r["status"] == status)]

    def export_refusals(self) -> list[dict]:
        """Token Flex export requests refused as invalid (HTTP 400): what an extractor that asks
        for exactly what each export variant allows never causes."""
        return self.refused("POST", "/tokenflex/v1/export/{contract}/requests", 400)

    def close(self) -> None:
        """Release the DuckDB connection (idempotent)."""
        with self.lock:
            if self.db is not None:
                self.db.close()
                self.db = None

    # -- time ---------------------------------------------------------------------------
    def scaled(self, seconds: float) -> float:
        return seconds * self.time_scale

    def age(self, job: Job) -> float:
        """Job age in unscaled seconds."""
        return (time.monotonic() - job.created) / self.time_scale

    # -- SQL ------------------------------------------------------------------------------
    def sql(self, query: str, params: list | None = None) -> tuple[list[str], list[tuple]]:
        with self.lock:
            cur = self.db.execute(query, params or [])
            columns = [d[0] for d in cur.description]
            return columns, cur.fetchall()

    # -- download URLs ------------------------------------------------------------------------
    def signed_url(self, request: Request, file_id: str, ttl: float, expired: bool = False) -> tuple[str, float]:
        """An S3-style pre-signed URL: valid from X-Amz-Date for X-Amz-Expires whole seconds
        (the scaled ttl, at least MIN_URL_SECONDS); ``expired`` signs one that is already past."""
        lifetime = max(MIN_URL_SECONDS, math.ceil(self.scaled(ttl)))
        signed_at = int(time.time()) - (lifetime + 1 if expired else 0)
        stamp = dt.datetime.fromtimestamp(signed_at, dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        # a fresh access key id per URL, so that a renewed URL always differs from the old one
        credential = f"ASIA{secrets.token_hex(8).upper()}/{stamp[:8]}/us-east-1/s3/aws4_request"
        signature = self._sign(file_id, stamp, str(lifetime), credential)
        base = str(request.base_url).rstrip("/")
        url = (f"{base}/sandbox-downloads/{quote(file_id)}?X-Amz-Algorithm=AWS4-HMAC-SHA256"
               f"&X-Amz-Credential={quote(credential, safe='')}&X-Amz-Date={stamp}"
               f"&X-Amz-Expires={lifetime}&X-Amz-SignedHeaders=host&X-Amz-Signature={signature}")
        return url, float(signed_at + lifetime)

    def _sign(self, file_id: str, stamp: str, lifetime: str, credential: str) -> str:
        message = f"{file_id}|{stamp}|{lifetime}|{credential}".encode()
        return hmac.new(self.url_secret, message, hashlib.sha256).hexdigest()

    def check_signature(self, file_id: str, stamp: str, lifetime: str, credential: str, signature: str) -> str | None:
        """None if the URL is valid now, else the reason it is not."""
        if not hmac.compare_digest(self._sign(file_id, stamp or "", lifetime or "", credential or ""), signature or ""):
            return "SignatureDoesNotMatch"
        try:
            signed_at = dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC).timestamp()
            expires_at = signed_at + int(lifetime)
        except (TypeError, ValueError):
            return "AuthorizationQueryParametersError"
        if time.time() >= expires_at:
            return "Request has expired"
        return None


async def _json_body(request: Request) -> dict:
    try:
        body = await request.json()
    except Exception:
        raise ApiProblem(400, "INVALID_REQUEST", "The request body must be a JSON object") from None
    if not isinstance(body, dict):
        raise ApiProblem(400, "INVALID_REQUEST", "The request body must be a JSON object")
    return body


def _page_params(request: Request) -> tuple[int, int]:
    q = request.query_params
    try:
        offset = int(q.get("offset", 0))
        limit = int(q.get("limit", DEFAULT_LIMIT))
    except ValueError:
        raise ApiProblem(400, "INVALID_PARAMETER", "offset and limit must be integers") from None
    if offset < 0:
        raise ApiProblem(400, "INVALID_PARAMETER", "offset must be >= 0")
    if not 1 <= limit <= MAX_LIMIT:
        raise ApiProblem(400, "INVALID_PARAMETER", f"limit must be between 1 and {MAX_LIMIT}")
    return offset, limit


def _str_list(body: dict, key: str, required: bool = False) -> list[str]:
    value = body.get(key)
    if value is None:
        if required:
            raise ApiProblem(400, "INVALID_REQUEST", f"{key} is required")
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ApiProblem(400, "INVALID_REQUEST", f"{key} must be a list of strings")
    return value


def _order_by(text: Any, names: list[str]) -> str:
    """ORDER BY from an orderBy like 'fullName ASC, totalTokens DESC' (names must be selected)."""
    parts = []
    if text:
        if not isinstance(text, str):
            raise ApiProblem(400, "INVALID_REQUEST", "orderBy must be a string")
        for item in text.split(","):
            words = item.split()
            if not words or len(words) > 2 or words[0] not in names:
                raise ApiProblem(400, "INVALID_REQUEST", f"orderBy: {item.strip()!r} is not a requested field or metric")
            direction = words[1].upper() if len(words) == 2 else "ASC"
            if direction not in ("ASC", "DESC"):
                raise ApiProblem(400, "INVALID_REQUEST", f"orderBy: direction must be ASC or DESC, got {words[1]!r}")
            parts.append(f'"{words[0]}" {direction} NULLS LAST')
    # then every column, so that pages are stable
    parts += [f"{i + 1} ASC NULLS LAST" for i in range(len(names))]
    return ", ".join(parts)


def build_query(table: str, fields: dict[str, ApiField], metrics: dict[str, tuple[str, str]], body: dict, *,
                scope_sql: str, scope_params: list, personal_hidden: bool, allow_session: bool,
                api: str) -> tuple[str, list, list[str], list[str]]:
    """SQL for a fields/metrics/where body. Returns (sql, params, column names, output kinds)."""
    wanted_fields = _str_list(body, "fields")
    wanted_metrics = _str_list(body, "metrics")
    if not wanted_fields and not wanted_metrics:
        raise ApiProblem(400, "INVALID_REQUEST", "at least one of fields or metrics is required")
    for name in wanted_fields:
        spec = fields.get(name)
        if spec is None:
            raise ApiProblem(400, "INVALID_FIELD", f"Unknown field {name!r} for {api}")
        if spec.session and not allow_session:
            raise ApiProblem(400, "INVALID_FIELD", f"Field {name!r} is session-level and only allowed in exports")
        if spec.personal and personal_hidden:
            raise ApiProblem(400, "PERSONAL_DATA_HIDDEN",
                             f"Field {name!r} is personal data, which the team admin has chosen to hide")
    for name in wanted_metrics:
        if name not in metrics:
            raise ApiProblem(400, "INVALID_METRIC", f"Unknown metric {name!r} for {api}")
    if len(set(wanted_fields)) != len(wanted_fields) or len(set(wanted_metrics)) != len(wanted_metrics):
        raise ApiProblem(400, "INVALID_REQUEST", "fields and metrics must not repeat")
    where = body.get("where")
    if where is not None and not isinstance(where, str):
        raise ApiProblem(400, "INVALID_WHERE", "where must be a string")
    try:
        where_sql, where_params = compile_where(where, query_fields(fields, allow_session=allow_session),
                                                personal_hidden=personal_hidden)
    except WhereError as err:
        raise ApiProblem(400, "INVALID_WHERE", str(err)) from None
    select = [f'{fields[f].sql} AS "{f}"' for f in wanted_fields]
    select += [f'{metrics[m][0]} AS "{m}"' for m in wanted_metrics]
    names = wanted_fields + wanted_metrics
    outputs = [fields[f].output for f in wanted_fields] + [metrics[m][1] for m in wanted_metrics]
    group = ""
    distinct = ""
    if wanted_metrics and wanted_fields:
        group = "GROUP BY " + ", ".join(str(i + 1) for i in range(len(wanted_fields)))
    elif not wanted_metrics:
        distinct = "DISTINCT "
    sql = (f"SELECT {distinct}{', '.join(select)} FROM {table} WHERE ({scope_sql}) AND ({where_sql}) {group} "
           f"ORDER BY {_order_by(body.get('orderBy'), names)}")
    return sql, scope_params + where_params, names, outputs


def create_app(
    data: SandboxData | None = None,
    *,
    seed: int = 42,
    users: int = 500,
    days: int = 365,
    end_date=None,
    hide_personal_data: bool = False,
    time_scale: float = 1.0,
    faults: str | None = None,
    token_ttl: int = 3600,
    slow_seconds: float = 2.0,
    rate_limits: bool = True,
    export_split_rows: int = EXPORT_SPLIT_ROWS,
    callback_urls=None,
) -> Starlette:
    """The sandbox as a Starlette app; ``app.state.sandbox`` holds its state and data.
    ``callback_urls``: the Callback URLs registered on the sandbox's APS app, matched exactly
    (a URL or a list; default DEFAULT_CALLBACK_URLS)."""
    if data is None:
        data = generate(seed=seed, users=users, days=days, end_date=end_date)
    plan = FaultPlan.parse(faults, seed=data.seed)
    sb = Sandbox(data, hide_personal_data=hide_personal_data, time_scale=time_scale, faults=plan,
                 token_ttl=token_ttl, slow_seconds=slow_seconds, rate_limits=rate_limits,
                 export_split_rows=export_split_rows, callback_urls=callback_urls)

    from . import routes_insights, routes_tokenflex  # here: the route tables need ApiProblem etc. above

    async def token(request: Request):
        return await sb.oauth.token_endpoint(request)

    async def authorize(request: Request):
        return await sb.oauth.authorize_endpoint(request)

    async def userinfo(request: Request):
        return await sb.oauth.userinfo_endpoint(request)

    async def download(request: Request):
        return routes_insights.download(sb, request)

    async def root(request: Request):
        return JSONResponse({"sandbox": "aps-usage", "start_date": data.start_date.isoformat(),
                             "end_date": data.end_date.isoformat(), "usage_rows": data.usage.num_rows})

    routes = [
        Route("/", root),
        Route("/authentication/v2/token", token, methods=["POST"]),
        Route("/authentication/v2/authorize", authorize, methods=["GET"]),
        Route("/userinfo", userinfo, methods=["GET"]),
        Route("/sandbox-downloads/{file_id:path}", download, methods=["GET"]),
        *routes_insights.routes(sb),
        *routes_tokenflex.routes(sb),
    ]

    async def problem_handler(request: Request, exc: ApiProblem):
        if 400 <= exc.status < 500:
            with sb.lock:
                sb.refusals.append({"method": request.method, "route": _route_template(app, request.scope),
                                    "path": request.url.path, "status": exc.status, "errorCode": exc.code,
                                    "message": exc.message})
        return api_error(exc.status, exc.code, exc.message, exc.headers)

    async def not_found(request: Request, exc):
        return api_error(404, "NOT_FOUND", f"No such resource: {request.url.path}")

    async def bad_method(request: Request, exc):
        return api_error(405, "METHOD_NOT_ALLOWED", f"{request.method} is not allowed on {request.url.path}")

    from starlette.exceptions import HTTPException

    async def http_exception(request: Request, exc: HTTPException):
        if exc.status_code == 404:
            return await not_found(request, exc)
        if exc.status_code == 405:
            return await bad_method(request, exc)
        return api_error(exc.status_code, "HTTP_ERROR", str(exc.detail))

    async def unexpected(request: Request, exc: Exception):
        import logging

        logging.getLogger("aps_usage.sandbox").exception("sandbox error on %s", request.url.path)
        return api_error(500, "INTERNAL_ERROR", f"Sandbox error: {type(exc).__name__}")

    app = Starlette(routes=routes, exception_handlers={ApiProblem: problem_handler, HTTPException: http_exception,
                                                       Exception: unexpected})
    app.state.sandbox = sb
    app.state.data = data
    from starlette.middleware.cors import CORSMiddleware

    from .middleware import CollapseSlashes, FaultMiddleware

    # the last one added runs first: slashes collapse before CORS, and a preflight is answered
    # before any fault is drawn
    app.add_middleware(FaultMiddleware, sandbox=sb)
    # Autodesk's Premium Reporting sample is a static page calling the APIs from the browser
    app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"],
                       allow_headers=CORS_HEADERS, expose_headers=["Retry-After", "Content-Disposition"], max_age=600)
    app.add_middleware(CollapseSlashes)
    return app


#: request headers a browser page may send (preflight ``Access-Control-Allow-Headers``)
CORS_HEADERS = ["Authorization", "ADSK-PAT", "Content-Type", "Accept-Language", "Accept", "x-correlation-id"]


def _route_template(app: Starlette, scope: dict) -> str:
    """The path template of the route that matched (``/tokenflex/v1/export/{contract}/requests``)."""
    from starlette.routing import Match

    for route in app.router.routes:
        if route.matches(scope)[0] == Match.FULL:
            return route.path
    return scope.get("path", "")


# -- helpers shared by the route modules ---------------------------------------------------

def authenticate(sb: Sandbox, request: Request, *, insights: bool, scope: str = "data:read"):
    """Check bearer token, expiry, the scope the endpoint's reference page requires, the PAT of
    2-legged insights calls, and Token Flex limits."""
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("bearer "):
        raise ApiProblem(401, "AUTH-001", "The Authorization header is missing or not a Bearer token")
    token, why = sb.oauth.lookup(header[7:].strip())
    if token is None:
        raise ApiProblem(401, "AUTH-006" if "expired" in why else "AUTH-001", why)
    if scope not in token.scopes:
        raise ApiProblem(403, "AUTH-002", f"The token does not carry the {scope} scope this endpoint requires")
    if insights and not token.three_legged and request.headers.get("adsk-pat") != PAT:
        raise ApiProblem(401, "AUTH-012",
                         "A 2-legged token needs a valid personal access token in the ADSK-PAT header")
    if not insights and sb.limiter is not None:
        wait = sb.limiter.acquire(token.subject)
        if wait > 0:
            raise ApiProblem(429, "TOO_MANY_REQUESTS", "Rate limit exceeded: 5 requests per minute (burst 50)",
                             {"Retry-After": retry_after_header(wait)})
    return token


def run_job_query(sb: Sandbox, job: Job, sql: str, params: list, outputs: list[str]) -> None:
    columns, rows = sb.sql(sql, params)
    job.columns = columns
    job.rows = [[_json_value(v, o) for v, o in zip(row, outputs)] for row in rows]


def new_job(sb: Sandbox, kind: str, job_id: str | None = None, fails: bool = False) -> Job:
    job = Job(id=job_id or uuid.uuid4().hex, kind=kind, created=time.monotonic(), created_wall=time.time(),
              fails=fails)
    with sb.lock:
        sb.jobs[job.id] = job
    return job


def http_date(seconds_from_now: float) -> str:
    return email.utils.formatdate(time.time() + seconds_from_now, usegmt=True)


async def in_thread(fn, *args):
    return await asyncio.to_thread(fn, *args)

