"""Token Flex (``/tokenflex/v1``) extraction: contracts, enrichment, usage through exports.

Usage comes ONLY from export requests (CSV), never by paging the query API: at 5 requests a
minute, paging a year of sessions would take days. Session-level fields cannot mix usage
categories, so there is one export request per category, all submitted first and then
polled together. Each contract is one transaction (rows and state together).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from urllib.parse import quote

import pyarrow as pa

from . import jobs
from .apirows import (
    empty_table,
    filter_dates,
    scratch_dir,
    select_by_id,
    set_text_column,
    stream_export_file,
    typed_table,
)
from .config import Settings
from .dataset import DataDir, Replace
from .errors import ApiError, InputError, UsageError
from .http import ApiClient
from .incremental import DEFAULT_LAG_DAYS, parse_day, plan_range, state_entry, utc_today
from .logs import log, progress
from .personal import hash_personal_columns, load_salt
from .schemas import TOKENFLEX_CONTRACTS, TOKENFLEX_ENRICHMENT

TOKENFLEX = "/tokenflex/v1"
GENERAL_FIELDS = ["usageDate", "usageMonth", "contractYear", "usageCategory", "productLineCode", "productName",
                  "userName", "chargedItemID", *[f"customField{i}" for i in range(1, 11)]]
#: fields specific to each usage category (seed 003); session-level ones force one request per category
CATEGORY_FIELDS: dict[str, list[str]] = {
    "DESKTOP_PRODUCT": ["chargeCategory", "sessionStartDate", "sessionEndDate", "productVersion",
                        "productFeatureCode", "machineName", "licenseServerName", "usageType"],
    "CLOUD_PRODUCT": ["chargeCategory", "hubName", "projectName"],
    "CLOUD_SERVICE": ["chargeCategory", "jobStatus"],
    "MANUAL_ADJUSTMENT": ["reasonType", "tokenPool"],
    "MANUAL_CONSUMPTION": ["reasonType"],
}
USAGE_CATEGORIES = tuple(CATEGORY_FIELDS)
#: the metrics each category's export asks for. Desktop exports are session level (they hold
#: chargedItemID, sessionStartDate, ...), where Autodesk's reference page for POST
#: export/:contract_number/requests allows only tokensConsumed, usageMinutes and usageHours
#: and refuses the request for any other metric; the other categories have no such rule.
METRICS: dict[str, list[str]] = {
    "DESKTOP_PRODUCT": ["tokensConsumed", "usageMinutes", "usageHours"],
    **{category: ["tokensConsumed", "usageMinutes", "useCount"] for category in USAGE_CATEGORIES[1:]},
}
DONE, ERROR = "DOWNLOAD", "ERROR"


@dataclass
class TokenFlexResult:
    contracts: list[dict[str, Any]]
    rows: dict[str, int] = field(default_factory=dict)
    ranges: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: contract -> the API's lastProcessDate (GET usage/:n/last)
    processed: dict[str, str] = field(default_factory=dict)
    #: contract years whose extracted tokens differ from GET usage/:n/summary
    summary_mismatches: list[str] = field(default_factory=list)


# -- contracts -----------------------------------------------------------------------------
def list_contracts(api: ApiClient) -> list[dict[str, Any]]:
    body = api.get_json(f"{TOKENFLEX}/contract")
    if isinstance(body, dict):
        body = body.get("contracts") or body.get("results") or []
    if not isinstance(body, list):
        raise ApiError("GET tokenflex/v1/contract: expected a list of contracts")
    return [
        {
            "contract_number": str(c["contractNumber"]),
            "contract_name": c.get("contractName"),
            "contract_start_date": c.get("contractStartDate"),
            "contract_end_date": c.get("contractEndDate"),
            "is_active": c.get("isActive"),
        }
        for c in body
        if isinstance(c, dict) and c.get("contractNumber") is not None
    ]


def select_contracts(items: list[dict[str, Any]], wanted: Iterable[str] | None) -> list[dict[str, Any]]:
    return select_by_id(items, wanted, "contract_number", "--contract", "contract")


def contract_years(api: ApiClient, contract: dict[str, Any]) -> pa.Table:
    number = contract["contract_number"]
    detail = api.get_json(f"{TOKENFLEX}/contract/{quote(number, safe='')}")
    base = {**contract,
            "contract_name": detail.get("contractName", contract.get("contract_name")),
            "contract_start_date": detail.get("contractStartDate", contract.get("contract_start_date")),
            "contract_end_date": detail.get("contractEndDate", contract.get("contract_end_date")),
            "is_active": detail.get("isActive", contract.get("is_active")),
            "multiyear_provisioned_tokens": detail.get("multiyearProvisionedTokens")}
    rows = [
        {**base, "contract_year": y.get("year"), "year_start_date": y.get("startDate"),
         "year_end_date": y.get("endDate"), "provisioned_tokens": y.get("provisionedTokens"),
         "consumed_tokens": y.get("consumedTokens"), "remaining_tokens": y.get("remainingTokens"),
         "multiyear_tokens_at_start": y.get("multiyearTokensAtStart"),
         "multiyear_consumed_tokens": y.get("multiyearConsumedTokens")}
        for y in detail.get("contractYears") or []
    ] or [base]
    return typed_table(rows, TOKENFLEX_CONTRACTS, f"tokenflex/v1/contract/{number}")


def enrichment(api: ApiClient, number: str) -> pa.Table:
    body = api.get_json(f"{TOKENFLEX}/contract/{quote(number, safe='')}/enrichment")
    if isinstance(body, dict):
        body = body.get("enrichment") or body.get("categories") or body.get("results") or []
    rows = []
    for i, item in enumerate(body or [], start=1):
        if isinstance(item, dict):  # tolerate {"customField": ..., "name": ...}
            name = item.get("name") or item.get("categoryName") or item.get("category")
            custom = item.get("customField") or f"customField{i}"
        else:
            name, custom = item, f"customField{i}"
        rows.append({"contract_number": number, "custom_field": custom, "category_name": name})
    return typed_table(rows, TOKENFLEX_ENRICHMENT, f"tokenflex/v1/contract/{number}/enrichment") if rows \
        else empty_table(TOKENFLEX_ENRICHMENT)


# -- usage queries (small ad hoc answers; bulk usage comes from exports) ----------------------
QUERY_PAGE = 100


def resolve_detail_uri(api: ApiClient, number: str, query_id: str, detail_uri: str | None) -> str:
    """The URL of a query's results. The reference page shows ``detail_uri`` as
    ``/v1/usage/<n>/query/<id>`` (relative to the API's base), Autodesk's export app resolves
    ``/tokenflex/v1/...`` against the host: both work, and so does a full URL or none."""
    if detail_uri:
        if detail_uri.startswith(("http://", "https://")):
            return detail_uri
        path = "/" + detail_uri.lstrip("/")
        return api.url(path if path.startswith("/tokenflex/") else "/tokenflex" + path)
    return api.url(f"{TOKENFLEX}/usage/{quote(number, safe='')}/query/{quote(query_id, safe=':')}")


class Query(jobs.Job):
    """One usage query (``POST usage/:n/query``): ids may carry a ``query:`` prefix, and a
    cached answer comes back DONE, with its ``result``, in the POST answer itself."""

    def __init__(self, number: str, body: dict):
        super().__init__(what=f"Token Flex usage query {{id}} (contract {number})")
        self.number, self.body = number, body
        self.url = ""
        self._answered: dict | None = None

    def submit(self, api: ApiClient) -> str:
        answer = api.post_json(f"{TOKENFLEX}/usage/{quote(self.number, safe='')}/query", json=self.body)
        query_id = str(answer.get("id") or "")
        if not query_id:
            raise ApiError(f"usage query for contract {self.number}: response has no id")
        self.url = resolve_detail_uri(api, self.number, query_id, answer.get("detail_uri"))
        self._answered = answer if isinstance(answer.get("result"), dict) else None
        return query_id

    def check(self, api: ApiClient) -> dict:
        if self._answered is not None and self.status(self._answered)[0] == jobs.DONE:
            return self._answered
        return self.page(api, 0)

    def page(self, api: ApiClient, offset: int) -> dict:
        return api.get_json(self.url, params={"offset": offset, "limit": QUERY_PAGE})

    def status(self, info: dict) -> tuple[str, str]:
        word = str(info.get("status") or "").upper()
        if word == "DONE":
            return jobs.DONE, word
        if word in ("FAILED", "TIMEOUT", "EXPIRED", "ERROR"):
            return jobs.FAILED, word
        return jobs.RUNNING, word


def query(api: ApiClient, number: str, body: dict) -> dict[str, list]:
    """The whole answer of a usage query as {column: values}, every page read."""
    job = jobs.run(api, Query(number, body))
    result = job.info.get("result") or {}
    names = list(result.get("columns") or [])
    columns: dict[str, list] = {name: [] for name in names}
    while True:
        rows = result.get("rows") or []
        for name, values in zip(names, zip(*rows)):
            columns[name].extend(values)
        offset = int(result.get("offset") or 0) + len(rows)
        if not rows or offset >= int(result.get("total") or 0):
            return columns
        result = job.page(api, offset).get("result") or {}


# -- usage exports -------------------------------------------------------------------------
def _request_path(number: str, key: str = "") -> str:
    path = f"{TOKENFLEX}/export/{quote(number, safe='')}/requests"
    return f"{path}/{quote(key, safe='')}" if key else path


def date_filter(start: date, end: date) -> str:
    return f"usageDate >= '{start.isoformat()}' AND usageDate <= '{end.isoformat()}'"


def export_body(category: str, start: date, end: date, number: str) -> dict:
    return {
        "fields": GENERAL_FIELDS + CATEGORY_FIELDS[category],
        "metrics": METRICS[category],
        "usageCategory": [category],
        "where": date_filter(start, end),
        "downloadFileName": f"aps-usage-{number}-{category.lower()}-{start:%Y%m%d}-{end:%Y%m%d}",
    }


class ExportRequest(jobs.Job):
    """One export request (a usage category x a date range) as a job: a request in Error is
    retried in place (``POST .../retry``), an expired URL renewed by ``POST .../refreshUrl``."""

    def __init__(self, number: str, category: str, start: date, end: date):
        super().__init__(what=f"Token Flex export request {{id}} (contract {number}, {category})")
        self.number, self.category, self.start, self.end = number, category, start, end

    @property
    def path(self) -> str:
        return _request_path(self.number, self.id)

    def submit(self, api: ApiClient) -> str:
        body = export_body(self.category, self.start, self.end, self.number)
        created = api.post_json(_request_path(self.number), json=body)
        key = created.get("requestKey") or created.get("id")
        if not key:
            raise ApiError(f"export request for contract {self.number} {self.category}: response has no requestKey")
        return str(key)

    def check(self, api: ApiClient) -> dict:
        return api.get_json(self.path)

    def status(self, info: dict) -> tuple[str, str]:
        word = str(info.get("requestStatus") or info.get("status") or "").upper()
        if word == DONE:
            return jobs.DONE, word
        if word in (ERROR, "FAILED", "EXPIRED", "TIMEOUT"):
            return jobs.FAILED, word
        return jobs.RUNNING, word

    def retry(self, api: ApiClient) -> None:
        # raise_for_status off: a retried POST whose first answer was lost gets a 400
        # ("not in Error") although the retry did happen; the next poll tells
        api.post(f"{self.path}/retry", raise_for_status=False)

    def downloads(self, info: dict) -> list[jobs.Download]:
        url = info.get("downloadUrl") or info.get("downloadURL")
        return [jobs.Download(url, self.category, info.get("downloadUrlExpireDate"))] if url else []

    def renew(self, api: ApiClient) -> dict:
        refreshed = api.post(f"{self.path}/refreshUrl", raise_for_status=False)
        try:
            body = refreshed.json() if refreshed.is_success and refreshed.content else {}
        except ValueError:
            body = {}
        return body if self.downloads(body) else self.check(api)

    def delete(self, api: ApiClient) -> None:
        api.delete(self.path, raise_for_status=False)


def request_exports(api: ApiClient, number: str, start: date, end: date,
                    categories: Iterable[str] = USAGE_CATEGORIES) -> list[ExportRequest]:
    """One export request per usage category, submitted together, polled until all are ready."""
    requests = [ExportRequest(number, category, start, end) for category in categories]
    try:
        jobs.start(api, requests)
        jobs.wait(api, requests)
    except BaseException:
        jobs.delete(api, requests)
        raise
    return requests


def usage_batches(api: ApiClient, settings: Settings, number: str, requests: list[ExportRequest], start: date,
                  end: date) -> Iterator[pa.Table]:
    """The rows of every finished request, file by file and batch by batch (bounded memory),
    with the contract number set and only the days of [start, end]."""
    with scratch_dir(settings.data_dir) as folder:
        for request in requests:
            for _, path in jobs.fetch(api, request, folder, f"{number}-{request.category.lower()}"):
                for table in stream_export_file(path, "tokenflex", request.label):
                    yield filter_dates(set_text_column(table, "contract_number", number), "usage_date", start, end)
                path.unlink()


# -- the whole extraction ------------------------------------------------------------------
def extract_tokenflex(
    settings: Settings,
    auth,
    contracts: Iterable[str] | None = None,
    since: date | None = None,
    until: date | None = None,
    *,
    lag_days: int = DEFAULT_LAG_DAYS,
    hash_personal_data: bool = False,
    api: ApiClient | None = None,
) -> TokenFlexResult:
    """Extract Token Flex contracts and usage into the dataset under ``settings.data_dir``."""
    if since and until and since > until:
        raise InputError(f"--since {since} is after --until {until}")
    dd = DataDir(settings.data_dir)
    own_api = api is None
    api = api or ApiClient(settings, auth)
    try:
        with dd.lock("extract tokenflex"):
            salt = load_salt(dd.state_dir) if hash_personal_data else None
            chosen = select_contracts(list_contracts(api), contracts)
            result = TokenFlexResult(contracts=chosen)
            with progress("Token Flex contracts", total=len(chosen), quiet=settings.quiet) as task:
                for contract in chosen:
                    _extract_contract(api, dd, settings, contract, since, until, lag_days, salt, result)
                    task.advance(1)
            return result
    finally:
        if own_api:
            api.close()


def processed_through(api: ApiClient, number: str) -> tuple[date | None, str | None]:
    """(the last complete day of usage, the API's lastProcessDate) from ``GET usage/:n/last``.

    Autodesk processes usage once a day; ``lastProcessDate`` says when it last ran, so the
    days before it are complete and its own day is not (yet). Categories share one process
    run: the newest date of any category counts. (None, None) when the API does not say;
    extraction then falls back to ``--lag-days`` alone."""
    response = api.get(f"{TOKENFLEX}/usage/{quote(number, safe='')}/last", raise_for_status=False)
    if not response.is_success:
        log.debug("contract %s: GET usage/last -> HTTP %d; no processing date", number, response.status_code)
        return None, None
    try:
        body = response.json()
    except ValueError:
        return None, None
    rows = body if isinstance(body, list) else (body.get("results") or [body] if isinstance(body, dict) else [])
    stamps = [(when, str(r["lastProcessDate"])) for r in rows if isinstance(r, dict)
              for when in [jobs.parse_timestamp(r.get("lastProcessDate"))] if when is not None]
    if not stamps:
        return None, None
    when, text = max(stamps)
    return when.date() - timedelta(days=1), text


def full_months(start: date, end: date) -> tuple[date, date] | None:
    """(first, last) month start of the calendar months wholly inside [start, end], or None."""
    first = start if start.day == 1 else (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    last = end.replace(day=1) if (end + timedelta(days=1)).day == 1 else \
        (end.replace(day=1) - timedelta(days=1)).replace(day=1)
    return (first, last) if first <= last else None


class TokenTally:
    """Tokens of the extracted rows per (contract year, usage month), summed batch by batch."""

    def __init__(self) -> None:
        self.sums: dict[tuple[int, date], float] = {}

    def add(self, table: pa.Table) -> pa.Table:
        if table.num_rows and {"contract_year", "usage_month", "tokens_consumed"} <= set(table.column_names):
            grouped = table.group_by(["contract_year", "usage_month"]).aggregate([("tokens_consumed", "sum")])
            for year, month, tokens in zip(*(grouped[c].to_pylist() for c in
                                             ("contract_year", "usage_month", "tokens_consumed_sum"))):
                month = parse_day(month, "usage_month") if month is not None else None
                if year is not None and month is not None:
                    self.sums[(int(year), month)] = self.sums.get((int(year), month), 0.0) + (tokens or 0.0)
        return table


def check_summary(api: ApiClient, number: str, start: date, end: date, tally: TokenTally) -> list[str]:
    """Compare each contract year's extracted tokens with ``GET usage/:n/summary`` (the API's
    own totals) over the whole months of [start, end]; a warning per year that differs."""
    months = full_months(start, end)
    if months is None:
        return []
    first, last = months
    try:  # the rows are committed already: a summary that cannot be read is a warning, not a failure
        body = api.get_json(f"{TOKENFLEX}/usage/{quote(number, safe='')}/summary",
                            params={"minUsageMonth": first.isoformat(), "maxUsageMonth": last.isoformat()})
    except UsageError as err:
        log.warning("contract %s: tokens not cross-checked with the usage summary (%s)", number, err)
        return []
    rows = body if isinstance(body, list) else (body.get("results") or body.get("summary") or [])
    expected: dict[int, float] = {}
    for row in rows:
        month = parse_day(row.get("usageMonth"), "summary usageMonth") if row.get("usageMonth") else None
        if row.get("contractYear") is None or (month is not None and not first <= month <= last):
            continue
        year = int(row["contractYear"])
        expected[year] = expected.get(year, 0.0) + float(row.get("tokensConsumed") or 0)
    got: dict[int, float] = {}
    for (year, month), tokens in tally.sums.items():
        if first <= month <= last:
            got[year] = got.get(year, 0.0) + tokens
    warnings = []
    for year in sorted(set(expected) | set(got)):
        want, have = expected.get(year, 0.0), got.get(year, 0.0)
        if abs(want - have) > max(0.01, 1e-6 * abs(want)):
            warnings.append(f"contract {number} year {year}: extracted {have:,.2f} tokens for {first:%Y-%m}.."
                            f"{last:%Y-%m} but the usage summary says {want:,.2f}")
            log.warning("%s", warnings[-1])
    return warnings


def _extract_contract(api, dd, settings, contract, since, until, lag_days, salt, result) -> None:
    """One contract, one transaction: contract years, custom field names and usage rows
    (streamed from the export files into the dataset) with the state, or nothing. Usage
    stops at the last day Autodesk has processed; the summary cross-checks the tokens."""
    number = contract["contract_number"]
    years = contract_years(api, contract)
    names = enrichment(api, number)
    fresh_to, processed = processed_through(api, number)
    until = until or utc_today()
    if fresh_to is not None and fresh_to < until:
        log.info("contract %s: usage processed through %s (lastProcessDate %s); not asking for later days",
                 number, fresh_to, processed)
        until = fresh_to
    if processed:
        result.processed[number] = processed
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if since is not None and since > until:
        log.warning("contract %s: --since %s is after the last processed day %s; no usage extracted",
                    number, since, until)
        with dd.transaction() as tx:
            _write_contract(tx, result, number, years, names)
        return
    start, end = plan_range(dd.read_state(["tokenflex_usage"]), "tokenflex_usage", number, since, until, lag_days)
    tally = TokenTally()
    with progress(f"Token Flex usage contract {number} {start}..{end}", quiet=settings.quiet) as task:
        requests = request_exports(api, number, start, end)
        try:

            def batches() -> Iterator[pa.Table]:
                for table in usage_batches(api, settings, number, requests, start, end):
                    task.advance(table.num_rows)
                    tally.add(table)
                    yield hash_personal_columns(table, salt) if salt is not None else table

            with dd.transaction() as tx:
                _write_contract(tx, result, number, years, names)
                n = tx.write("tokenflex_usage", batches(), source=f"tokenflex/v1/export/{number}/requests {start}..{end}",
                             replace=Replace(match={"contract_number": number}, date_from=start, date_to=end))
                result.rows["tokenflex_usage"] = result.rows.get("tokenflex_usage", 0) + n
                extra = {"last_process_date": processed} if processed else {}
                tx.set_state("tokenflex_usage", number,
                             state_entry(tx.get_state("tokenflex_usage", number), start, end, now, **extra))
        finally:
            jobs.delete(api, requests)
    result.ranges[number] = (start.isoformat(), end.isoformat())
    log.info("contract %s: %d usage rows %s..%s", number, n, start, end)
    result.summary_mismatches += check_summary(api, number, start, end, tally)


def _write_contract(tx, result, number: str, years: pa.Table, names: pa.Table) -> None:
    for dataset, table, source in (("tokenflex_contracts", years, f"tokenflex/v1/contract/{number}"),
                                   ("tokenflex_enrichment", names, f"tokenflex/v1/contract/{number}/enrichment")):
        n = tx.write(dataset, table, source=source, replace=Replace(match={"contract_number": number}))
        result.rows[dataset] = result.rows.get(dataset, 0) + n
