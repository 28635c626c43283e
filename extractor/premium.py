"""Premium Reporting (``/insights/v1``) extraction: teams, usage queries, Users/Subscriptions exports.

Usage comes from usage queries grouped by every field the API offers (one row per distinct
combination, metric ``totalTokens``), one query per team and calendar month, paged with the
largest page the service accepts. Users and Subscriptions come from CSV exports, downloaded
from their pre-signed URLs and parsed by the importer. Each team is one transaction: its
rows and its state are committed together or not at all.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from . import jobs
from .apirows import (
    empty_table,
    filter_dates,
    read_export_file,
    scratch_dir,
    select_by_id,
    set_text_column,
    typed_columns,
    typed_table,
)
from .config import Settings
from .dataset import DataDir, Replace
from .errors import ApiError, InputError
from .http import ApiClient, json_ok
from .incremental import DEFAULT_LAG_DAYS, day_windows, month_windows, plan_range, state_entry
from .logs import log, progress
from .personal import hash_personal_columns, load_salt
from .schemas import PREMIUM_SUBSCRIPTIONS, PREMIUM_TEAMS, PREMIUM_USAGE, PREMIUM_USAGE_FILES, PREMIUM_USERS

INSIGHTS = "/insights/v1"
REPORTS = ("usage", "users", "subscriptions")
#: also accepted: the USAGE export report (one row per user x product x day, the same data as
#: the "Export usage" file of Autodesk Account) -> premium_usage_files; not run by default,
#: since the usage queries already cover usage
OPTIONAL_REPORTS = ("usage-export",)
#: the export API's longest date range
MAX_EXPORT_DAYS = 365

#: usage-query field -> canonical column (seed 002). Not requested: ``profileImage`` (a
#: pre-signed URL), ``tokens`` (the metric ``totalTokens`` is the sum we want) and
#: ``usageWeek`` (derivable from usageDate; it would not change the grain).
USAGE_FIELDS: dict[str, str] = {
    "usageDate": "usage_date",
    "usageMonth": "usage_month",
    "contextId": "context_id",
    "teamName": "team_name",
    "productName": "product_name",
    "childProductName": "child_product_name",
    "productLineCode": "product_line_code",
    "featureId": "feature_id",
    "version": "version",
    "minorVersion": "minor_version",
    "source": "source",
    "hashedUserId": "hashed_user_id",
    "userId": "user_id",
    "emailAddress": "email",
    "firstName": "first_name",
    "lastName": "last_name",
    "fullName": "full_name",
    "userName": "user_name",
    "isParentProduct": "is_parent_product",
    "isProductVersioned": "is_product_versioned",
    "reportingEntityId": "reporting_entity_id",
    "contractNumber": "contract_number",
}
#: refused when the admin hides personal data (userId is allowed only with personal data on)
PERSONAL_FIELDS = frozenset({"emailAddress", "firstName", "lastName", "fullName", "userName", "userId"})
METRICS = {"totalTokens": "tokens"}
#: page sizes tried in turn until the service accepts one (its maximum is not documented)
PAGE_LIMITS = (10000, 2000, 1000, 500, 100)
RUNNING = {"SUBMITTED", "RUNNING", "QUEUED", "PROCESSING", "IN_PROGRESS", "PENDING"}
FAILED = {"FAILED", "ERROR", "EXPIRED", "TIMEOUT", "CANCELLED"}
#: usage queries (monthly windows) submitted before the first of them is read
QUERIES_AHEAD = 4
EXPORT_REPORT_KINDS = {"USERS": ("users", PREMIUM_USERS), "SUBSCRIPTIONS": ("subscriptions", PREMIUM_SUBSCRIPTIONS),
                       "USAGE": ("usage", PREMIUM_USAGE_FILES)}


@dataclass
class QueryShape:
    """What this team's usage queries ask for; narrowed once when the service refuses."""

    fields: list[str] = field(default_factory=lambda: list(USAGE_FIELDS))
    limit: int = field(default_factory=lambda: PAGE_LIMITS[0])
    personal_hidden: bool = False


@dataclass
class PremiumResult:
    teams: list[dict[str, Any]]
    rows: dict[str, int] = field(default_factory=dict)
    ranges: dict[str, tuple[str, str]] = field(default_factory=dict)
    personal_hidden: list[str] = field(default_factory=list)


# -- teams ---------------------------------------------------------------------------------
def list_teams(api: ApiClient) -> list[dict[str, Any]]:
    body = api.get_json(f"{INSIGHTS}/contexts")
    if isinstance(body, dict):  # tolerate a wrapped list
        body = body.get("contexts") or body.get("results") or body.get("items") or []
    if not isinstance(body, list):
        raise ApiError("GET insights/v1/contexts: expected a list of teams")
    teams = []
    for item in body:
        if isinstance(item, dict) and item.get("contextId") is not None:
            teams.append({
                "context_id": str(item["contextId"]),
                "team_name": item.get("alias") or item.get("name") or item.get("teamName"),
                "reporting_benefits": ",".join(item.get("reportingBenefits") or []),
            })
    return teams


def select_teams(items: list[dict[str, Any]], wanted: Iterable[str] | None) -> list[dict[str, Any]]:
    return select_by_id(items, wanted, "context_id", "--team", "team")


# -- usage queries -------------------------------------------------------------------------
def _where(start: date, end: date) -> str:
    return f"usageDate >= '{start.isoformat()}' AND usageDate <= '{end.isoformat()}'"


def _refusal(response) -> str:
    return response.text[:300].replace("\n", " ")


def _submit_usage_query(api: ApiClient, team_id: str, start: date, end: date, shape: QueryShape) -> str:
    """POST a usage query, narrowing page size / personal fields on 400; returns the query id."""
    while True:
        body = {"fields": shape.fields, "metrics": list(METRICS), "where": _where(start, end),
                "contextId": team_id, "orderBy": "usageDate ASC"}
        response = api.post(f"{INSIGHTS}/usage-queries", params={"contextId": team_id, "offset": 0, "limit": shape.limit},
                            json=body, raise_for_status=False, expect=None)
        if response.is_success:
            data = response.json()
            if not data.get("id"):
                raise ApiError(f"usage query for team {team_id}: response has no query id")
            return str(data["id"])
        if response.status_code != 400:
            raise ApiClient.error_for(response, f"POST insights/v1/usage-queries (team {team_id})")
        if not _narrow(shape, _refusal(response), team_id):
            raise ApiError(f"usage query for team {team_id} refused: HTTP 400 {_refusal(response)}")


def _narrow(shape: QueryShape, message: str, team_id: str) -> bool:
    """Change the shape after a 400; False when there is nothing left to try."""
    lower = message.lower()
    mentions_personal = "personal" in lower or any(f.lower() in lower for f in PERSONAL_FIELDS) or "hash" in lower
    mentions_limit = "limit" in lower or "page" in lower
    has_personal = any(f in PERSONAL_FIELDS for f in shape.fields)
    smaller = [n for n in PAGE_LIMITS if n < shape.limit]
    if mentions_personal and has_personal:
        _drop_personal(shape, team_id, message)
        return True
    if mentions_limit and smaller:
        shape.limit = smaller[0]
        log.debug("team %s: page size refused, trying %d", team_id, shape.limit)
        return True
    if smaller:  # unknown reason: smaller pages first, then without personal fields
        shape.limit = smaller[0]
        return True
    if has_personal:  # refused for a reason we cannot read: the personal fields are the last suspect
        _drop_personal(shape, team_id, message)
        return True
    return False


def _drop_personal(shape: QueryShape, team_id: str, message: str) -> None:
    shape.fields = [f for f in shape.fields if f not in PERSONAL_FIELDS]
    shape.personal_hidden = True
    log.warning("team %s: usage query refused with its personal fields (%s); extracting without names/emails "
                "(hashedUserId is the user key)", team_id, message[:160])


def _get_results(api: ApiClient, query_id: str, offset: int, shape: QueryShape, team_id: str) -> dict:
    while True:
        response = api.get(f"{INSIGHTS}/usage-queries/{query_id}", params={"offset": offset, "limit": shape.limit},
                           raise_for_status=False, expect=json_ok)
        if response.is_success:
            return response.json()
        smaller = [n for n in PAGE_LIMITS if n < shape.limit]
        if response.status_code == 400 and smaller:
            shape.limit = smaller[0]
            continue
        raise ApiClient.error_for(response, f"GET insights/v1/usage-queries/{query_id} (team {team_id})")


class UsageQuery(jobs.Job):
    """One usage query (team x window) as a job: its status comes with the first page."""

    def __init__(self, team_id: str, start: date, end: date, shape: QueryShape):
        super().__init__(what=f"usage query {{id}} (team {team_id}, {start}..{end})")
        self.team_id, self.start, self.end, self.shape = team_id, start, end, shape

    def submit(self, api: ApiClient) -> str:
        return _submit_usage_query(api, self.team_id, self.start, self.end, self.shape)

    def check(self, api: ApiClient) -> dict:
        return _get_results(api, self.id, 0, self.shape, self.team_id)

    def status(self, info: dict) -> tuple[str, str]:
        return _job_state(info.get("status"), self.label)


def _job_state(value: Any, label: str) -> tuple[str, str]:
    word = str(value or "").upper()
    if word == "COMPLETED":
        return jobs.DONE, word
    if word in RUNNING:
        return jobs.RUNNING, word
    if word in FAILED:
        return jobs.FAILED, word
    raise ApiError(f"{label}: unexpected status {word!r}")


def query_usage(api: ApiClient, query: UsageQuery, task=None) -> dict[str, list]:
    """All rows of a submitted usage query as canonical columns; a query whose result
    expires while paging is submitted again."""
    jobs.wait(api, [query])
    while True:
        columns = _page_all(api, query.id, query.info, query.shape, query.team_id, query.label, task)
        if columns is not None:
            return columns
        jobs.retry(api, query, "expired while paging")
        jobs.wait(api, [query])


def _page_all(api, query_id, first, shape, team_id, what, task) -> dict[str, list] | None:
    """Every page of a completed query, column by column; None if the result expired meanwhile."""
    columns: dict[str, list] | None = None
    names: list[str] = []
    page = first
    offset = 0
    while True:
        page_columns = page.get("columns") or []
        rows = page.get("rows") or []
        total = int((page.get("pagination") or {}).get("totalResults", page.get("totalResults", 0)) or 0)
        if columns is None:
            names = [USAGE_FIELDS.get(c) or METRICS.get(c) or _snake(c) for c in page_columns]
            columns = {n: [] for n in names}
            unknown = [c for c in page_columns if c not in USAGE_FIELDS and c not in METRICS]
            if unknown:
                log.debug("%s: extra columns kept as text: %s", what, ", ".join(unknown))
        elif len(page_columns) != len(names):
            raise ApiError(f"{what}: the page at offset {offset} has other columns than the first page")
        if rows:
            if any(len(row) != len(names) for row in rows):
                raise ApiError(f"{what}: a row at offset {offset} does not have {len(names)} values")
            for name, values in zip(names, zip(*rows)):
                columns[name].extend(values)
        offset += len(rows)
        if task is not None:
            task.advance(len(rows))
        if offset >= total:
            return columns
        if not rows:
            raise ApiError(f"{what}: page at offset {offset} is empty but totalResults is {total}")
        page = _get_results(api, query_id, offset, shape, team_id)
        if str(page.get("status", "COMPLETED")).upper() in FAILED:
            return None


def _snake(name: str) -> str:
    out = []
    for ch in name:
        if ch.isupper() and out:
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


def usage_table(columns: dict[str, list], team: dict[str, Any], start: date, end: date, where: str) -> pa.Table:
    n = len(next(iter(columns.values()), []))
    if not n:
        return empty_table(PREMIUM_USAGE)
    table = typed_columns(columns, PREMIUM_USAGE, where)
    # the team's id and name where the query did not return them
    for name, value in (("context_id", team["context_id"]), ("team_name", team.get("team_name"))):
        fill = pa.repeat(pa.scalar(value, pa.string()), n)
        if name not in table.column_names:
            table = table.append_column(pa.field(name, pa.string()), fill)
        else:
            column = pc.if_else(pc.or_kleene(pc.is_null(table[name]), pc.equal(table[name], "")), fill, table[name])
            table = table.set_column(table.column_names.index(name), pa.field(name, pa.string()), column)
    return filter_dates(table, "usage_date", start, end)


# -- exports (Users, Subscriptions) --------------------------------------------------------
class Export(jobs.Job):
    """One export (CSV) as a job: a failed one is submitted again; an expired download URL is
    renewed by reading the export again."""

    def __init__(self, team_id: str, reports: list[str], start: date | None = None, end: date | None = None):
        super().__init__(what=f"export {{id}} ({'+'.join(reports)}, team {team_id})")
        self.body: dict[str, Any] = {"outputFormat": "CSV", "reports": reports, "teamId": team_id}
        if start and end:
            self.body.update(startDate=f"{start.isoformat()}T00:00:00Z", endDate=f"{end.isoformat()}T23:59:59Z")

    def submit(self, api: ApiClient) -> str:
        created = api.post_json(f"{INSIGHTS}/exports", json=self.body)
        if not created.get("id"):
            raise ApiError(f"export {self.body['reports']} for team {self.body['teamId']}: response has no id")
        return str(created["id"])

    def check(self, api: ApiClient) -> dict:
        return api.get_json(f"{INSIGHTS}/exports/{self.id}")

    def status(self, info: dict) -> tuple[str, str]:
        return _job_state(info.get("status"), self.label)

    def downloads(self, info: dict) -> list[jobs.Download]:
        out = []
        for index, item in enumerate(info.get("downloads") or [], start=1):
            url = item.get("downloadURL") or item.get("downloadUrl") or item.get("url")
            if not url:
                raise ApiError(f"{self.label}: download {index} has no URL")
            expires = next((v for k, v in item.items() if "expir" in k.lower() and v not in (None, "")), None)
            out.append(jobs.Download(url, str(item.get("type") or "").upper(), expires))
        return out


def export_tables(api: ApiClient, settings: Settings, team: dict[str, Any], reports: list[str],
                  start: date | None = None, end: date | None = None) -> dict[str, pa.Table]:
    """{dataset name: table} for the USERS / SUBSCRIPTIONS (or USAGE, with dates) reports of one team."""
    wanted = [r.upper() for r in reports]
    export = jobs.run(api, Export(team["context_id"], wanted, start, end))
    what = f"export {export.id} (team {team['context_id']})"
    tables: dict[str, list[pa.Table]] = {EXPORT_REPORT_KINDS[r][1].name: [] for r in wanted}
    with scratch_dir(settings.data_dir) as folder:
        for report_type, path in jobs.fetch(api, export, folder, export.id):
            kind = EXPORT_REPORT_KINDS.get(report_type, (None, None))[0]
            if kind is None and len(wanted) == 1:
                kind = EXPORT_REPORT_KINDS[wanted[0]][0]
            imported = read_export_file(path, kind, f"{what} {report_type or 'file'}")
            dataset = imported.dataset
            if dataset not in tables:
                log.warning("%s: a %s file was not asked for; skipped", what, imported.kind)
                continue
            table = imported.table
            table = set_text_column(table, "team_id", team["context_id"])
            if "team_name" not in table.column_names or table.column("team_name").null_count == table.num_rows:
                table = set_text_column(table, "team_name", team.get("team_name"))
            tables[dataset].append(table)
    return {name: (pa.concat_tables(parts, promote_options="permissive") if parts else None)
            for name, parts in tables.items()}


# -- the whole extraction ------------------------------------------------------------------
def extract_premium(
    settings: Settings,
    auth,
    teams: Iterable[str] | None = None,
    since: date | None = None,
    until: date | None = None,
    reports: Iterable[str] = REPORTS,
    *,
    lag_days: int = DEFAULT_LAG_DAYS,
    hash_personal_data: bool = False,
    api: ApiClient | None = None,
) -> PremiumResult:
    """Extract Premium Reporting data into the dataset under ``settings.data_dir``."""
    reports = [r.strip().lower() for r in reports if r.strip()]
    bad = [r for r in reports if r not in REPORTS + OPTIONAL_REPORTS]
    if bad or not reports:
        raise InputError(f"--reports: unknown report(s) {', '.join(bad) or '(none)'} "
                         f"(choose from {', '.join(REPORTS + OPTIONAL_REPORTS)})")
    if since and until and since > until:
        raise InputError(f"--since {since} is after --until {until}")
    dd = DataDir(settings.data_dir)
    own_api = api is None
    api = api or ApiClient(settings, auth)
    try:
        with dd.lock("extract premium"):
            salt = load_salt(dd.state_dir) if hash_personal_data else None
            all_teams = list_teams(api)
            chosen = select_teams(all_teams, teams)
            result = PremiumResult(teams=chosen)
            teams_table = (typed_table(all_teams, PREMIUM_TEAMS, "insights/v1/contexts")
                           if all_teams else empty_table(PREMIUM_TEAMS))
            with progress("Premium teams", total=len(chosen), quiet=settings.quiet) as team_task:
                for i, team in enumerate(chosen):
                    # the team list rides with the first team's commit: a run that fails there changes nothing
                    try:
                        _extract_team(api, dd, settings, team, since, until, reports, lag_days, salt, result,
                                      teams_table=teams_table if i == 0 else None)
                    except ApiError as err:  # say which team failed (the teams before it are saved)
                        if f"team {team['context_id']}" in str(err):
                            raise
                        raise ApiError(f"{err} (team {team['context_id']})") from None
                    team_task.advance(1)
            if not chosen:
                with dd.transaction() as tx:
                    tx.write("premium_teams", teams_table, source="insights/v1/contexts", replace=Replace(everything=True))
            return result
    finally:
        if own_api:
            api.close()


def _write_day_range(tx, result, dataset: str, batches, source: str, team_column: str, team_id: str,
                     start: date, end: date, now: str) -> int:
    """Replace one team's days [start, end] of a usage dataset; the team's state advances with it."""
    replace = Replace(match={team_column: team_id}, date_from=start, date_to=end)
    n = tx.write(dataset, batches, source=source, replace=replace)
    result.rows[dataset] = result.rows.get(dataset, 0) + n
    tx.set_state(dataset, team_id, state_entry(tx.get_state(dataset, team_id), start, end, now))
    return n


def _extract_team(api, dd, settings, team, since, until, reports, lag_days, salt, result, teams_table=None) -> None:
    """One team, one transaction: rows are staged window by window (bounded memory); the
    state advances only if everything for this team arrived."""
    team_id = team["context_id"]
    label = f"team {team_id} ({team.get('team_name') or '?'})"
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    protect = (lambda t: hash_personal_columns(t, salt)) if salt is not None else (lambda t: t)
    with dd.transaction() as tx:
        if teams_table is not None:
            tx.write("premium_teams", teams_table, source="insights/v1/contexts", replace=Replace(everything=True))
        if "usage" in reports:
            start, end = plan_range(dd.read_state(["premium_usage"]), "premium_usage", team_id, since, until, lag_days)
            shape = QueryShape()

            def windows():
                # a few windows are submitted ahead, so the service runs them while we page
                pending = deque(month_windows(start, end))
                ahead: deque = deque()
                with progress(f"Premium usage {label} {start}..{end}", quiet=settings.quiet) as task:
                    while pending or ahead:
                        while pending and len(ahead) < QUERIES_AHEAD:
                            query = UsageQuery(team_id, *pending.popleft(), shape)
                            jobs.start(api, [query])
                            ahead.append(query)
                        query = ahead.popleft()
                        columns = query_usage(api, query, task)
                        yield protect(usage_table(columns, team, query.start, query.end, f"usage query {label}"))

            n = _write_day_range(tx, result, "premium_usage", windows(),
                                 f"insights/v1/usage-queries contextId={team_id} {start}..{end}",
                                 "context_id", team_id, start, end, now)
            if shape.personal_hidden:
                result.personal_hidden.append(team_id)
            result.ranges[team_id] = (start.isoformat(), end.isoformat())
            log.info("%s: %d usage rows %s..%s", label, n, start, end)
        if "usage-export" in reports:
            start, end = plan_range(dd.read_state(["premium_usage_files"]), "premium_usage_files", team_id, since, until, lag_days)

            def export_windows():
                for w_start, w_end in day_windows(start, end, MAX_EXPORT_DAYS):
                    with progress(f"Premium usage export {label} {w_start}..{w_end}", quiet=settings.quiet):
                        table = export_tables(api, settings, team, ["USAGE"], w_start, w_end)["premium_usage_files"]
                    if table is None:
                        raise ApiError(f"usage export for {label} {w_start}..{w_end}: no usage file among its downloads")
                    yield protect(filter_dates(table, "usage_date", w_start, w_end))

            n = _write_day_range(tx, result, "premium_usage_files", export_windows(),
                                 f"insights/v1/exports USAGE teamId={team_id} {start}..{end}",
                                 "team_id", team_id, start, end, now)
            log.info("%s: %d usage export rows %s..%s", label, n, start, end)
        export_reports = [r.upper() for r in reports if r in ("users", "subscriptions")]
        if export_reports:
            with progress(f"Premium {'+'.join(export_reports).lower()} export {label}", quiet=settings.quiet):
                tables = export_tables(api, settings, team, export_reports)
            for dataset, table in tables.items():
                if table is None:
                    raise ApiError(f"export for {label}: no {dataset.removeprefix('premium_')} file among its downloads")
                n = tx.write(dataset, protect(table), source=f"insights/v1/exports teamId={team_id}",
                             replace=Replace(match={"team_id": team_id}))
                result.rows[dataset] = result.rows.get(dataset, 0) + n
                tx.set_state(dataset, team_id, {"extracted_at": now})
                log.info("%s: %d %s rows", label, n, dataset)
