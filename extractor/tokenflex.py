"""Token Flex (``/tokenflex/v1``) extraction: contracts, enrichment, usage through exports.

Usage comes ONLY from export requests (CSV), never by paging the query API: at 5 requests a
minute, paging a year of sessions would take days. Session-level fields cannot mix usage
categories, so there is one export request per category, all submitted first and then
polled together. Each contract is one transaction (rows and state together).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator
from urllib.parse import quote

import pyarrow as pa

from .apirows import empty_table, filter_dates, scratch_dir, select_by_id, set_text_column, stream_export_file, typed_table
from .config import Settings
from .dataset import DataDir, Replace
from .errors import ApiError, InputError
from .http import ApiClient, presigned_url_expired, safe_url
from .incremental import DEFAULT_LAG_DAYS, plan_range, state_entry
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
METRICS = ["tokensConsumed", "usageMinutes", "useCount"]
REQUIRED_METRICS = ["tokensConsumed"]
JOB_RETRIES = 3
#: an expired or refused download URL is renewed at most this many times
URL_RENEWALS = 6
DONE, ERROR = "DOWNLOAD", "ERROR"


@dataclass
class TokenFlexResult:
    contracts: list[dict[str, Any]]
    rows: dict[str, int] = field(default_factory=dict)
    ranges: dict[str, tuple[str, str]] = field(default_factory=dict)


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


# -- usage exports -------------------------------------------------------------------------
def _request_path(number: str, key: str = "") -> str:
    path = f"{TOKENFLEX}/export/{quote(number, safe='')}/requests"
    return f"{path}/{quote(key, safe='')}" if key else path


def date_filter(start: date, end: date, by_month: bool = False) -> str:
    if by_month:  # the coarser variant, for a service that refuses usageDate in where
        return f"usageMonth >= '{start:%Y-%m}-01' AND usageMonth <= '{end:%Y-%m}-01'"
    return f"usageDate >= '{start.isoformat()}' AND usageDate <= '{end.isoformat()}'"


def export_body(category: str, start: date, end: date, metrics: list[str], number: str, by_month: bool = False) -> dict:
    return {
        "fields": GENERAL_FIELDS + CATEGORY_FIELDS[category],
        "metrics": metrics,
        "usageCategory": [category],
        "where": date_filter(start, end, by_month),
        "downloadFileName": f"aps-usage-{number}-{category.lower()}-{start:%Y%m%d}-{end:%Y%m%d}",
    }


def submit_export(api: ApiClient, number: str, category: str, start: date, end: date,
                  metrics: list[str], by_month: bool = False) -> tuple[str, list[str], bool]:
    """POST one export request. On a 400 the next plausible variant is tried: tokensConsumed
    only, then a usageMonth filter (rows outside [start, end] are dropped after download).
    Returns the request key and the variant accepted, which the next category starts from."""
    filters = [True] if by_month else [False, True]
    variants = [(chosen, monthly) for monthly in filters
                for chosen in ([metrics] + ([list(REQUIRED_METRICS)] if metrics != REQUIRED_METRICS else []))]
    for chosen, monthly in variants:
        response = api.post(_request_path(number), json=export_body(category, start, end, chosen, number, monthly),
                            raise_for_status=False)
        if response.is_success:
            body = response.json()
            key = body.get("requestKey") or body.get("id")
            if not key:
                raise ApiError(f"export request for contract {number} {category}: response has no requestKey")
            return str(key), chosen, monthly
        if response.status_code != 400:
            break
        log.debug("contract %s %s: export refused (%s); trying the next variant", number, category,
                  response.text[:300].replace("\n", " "))
    raise ApiClient.error_for(response, f"POST tokenflex/v1/export/{number}/requests ({category})")


def _url_expired(info: dict, url: str) -> bool:
    value = info.get("downloadUrlExpireDate")
    if not value:
        return presigned_url_expired(url)
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return False
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when <= datetime.now(timezone.utc)


@dataclass
class _Job:
    category: str
    key: str
    metrics: list[str]
    retries: int = 0
    info: dict = field(default_factory=dict)


def wait_for_exports(api: ApiClient, number: str, jobs: list[_Job]) -> None:
    """Poll every request until it is ``Download``; ``Error`` is retried, then fails by name."""
    pending = {job.key: job for job in jobs}
    deadline = time.monotonic() + api.options.poll_deadline
    interval = api.options.poll_interval
    while pending:
        for key, job in list(pending.items()):
            info = api.get_json(_request_path(number, key))
            status = str(info.get("requestStatus") or info.get("status") or "").upper()
            if status == DONE:
                job.info = info
                del pending[key]
            elif status in (ERROR, "FAILED", "EXPIRED", "TIMEOUT"):
                if job.retries >= JOB_RETRIES:
                    raise ApiError(f"Token Flex export request {key} (contract {number}, {job.category}) "
                                   f"ended {status} after {job.retries} retries")
                job.retries += 1
                log.warning("export request %s ended %s; retrying (%d/%d)", key, status, job.retries, JOB_RETRIES)
                # raise_for_status off: a retried POST whose first answer was lost gets a 400
                # ("not in Error") although the retry did happen; the next poll tells
                api.post(f"{_request_path(number, key)}/retry", raise_for_status=False)
        if not pending:
            return
        if time.monotonic() + interval > deadline:
            raise ApiError(f"Token Flex export request(s) {', '.join(pending)} (contract {number}) did not finish "
                           f"within {api.options.poll_deadline:.0f}s")
        api._sleep(interval)
        interval = min(api.options.poll_max_interval, interval * 1.5)


def download_export(api: ApiClient, number: str, job: _Job, folder: Path) -> Path:
    """Fetch the CSV of a finished request into ``folder`` (renewing an expired URL)."""
    info = job.info
    what = f"Token Flex export request {job.key} (contract {number}, {job.category})"
    for attempt in range(1, URL_RENEWALS + 2):
        url = info.get("downloadUrl") or info.get("downloadURL")
        response = None
        if url and not _url_expired(info, url):
            path = folder / f"{number}-{job.category.lower()}.csv"
            response = api.download_to(url, path)
            if response.is_success:
                return path
            if response.status_code not in (401, 403, 404, 410):
                raise ApiError(f"{what}: download {safe_url(url)} failed: HTTP {response.status_code}")
        if attempt > URL_RENEWALS:
            break
        log.info("%s: download URL %s; refreshing it", what,
                 "missing or expired" if response is None else f"refused (HTTP {response.status_code})")
        refreshed = api.post(f"{_request_path(number, job.key)}/refreshUrl", raise_for_status=False)
        try:
            body = refreshed.json() if refreshed.is_success and refreshed.content else {}
        except ValueError:
            body = {}
        info = body if (body.get("downloadUrl") or body.get("downloadURL")) else api.get_json(_request_path(number, job.key))
    raise ApiError(f"{what}: the download URL stays expired or refused after {URL_RENEWALS} refreshes")


def request_exports(api: ApiClient, number: str, start: date, end: date,
                    categories: Iterable[str] = USAGE_CATEGORIES) -> list[_Job]:
    """One export request per usage category, submitted together, polled until all are ready."""
    jobs = []
    metrics, by_month = list(METRICS), False
    for category in categories:
        key, metrics, by_month = submit_export(api, number, category, start, end, metrics, by_month)
        jobs.append(_Job(category, key, metrics))
    wait_for_exports(api, number, jobs)
    return jobs


def usage_batches(api: ApiClient, settings: Settings, number: str, jobs: list[_Job], start: date,
                  end: date) -> Iterator[pa.Table]:
    """The rows of every finished request, file by file and batch by batch (bounded memory),
    with the contract number set and only the days of [start, end]."""
    with scratch_dir(settings.data_dir) as folder:
        for job in jobs:
            path = download_export(api, number, job, folder)
            what = f"Token Flex export request {job.key} (contract {number}, {job.category})"
            for table in stream_export_file(path, "tokenflex", what):
                yield filter_dates(set_text_column(table, "contract_number", number), "usage_date", start, end)
            path.unlink()


def delete_requests(api: ApiClient, number: str, jobs: list[_Job]) -> None:
    """Best effort: at most 50 export requests may be outstanding per account."""
    for job in jobs:
        try:
            api.delete(_request_path(number, job.key), raise_for_status=False)
        except ApiError:
            log.debug("could not delete export request %s", job.key)


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


def _extract_contract(api, dd, settings, contract, since, until, lag_days, salt, result) -> None:
    """One contract, one transaction: contract years, custom field names and usage rows
    (streamed from the export files into the dataset) with the state, or nothing."""
    number = contract["contract_number"]
    years = contract_years(api, contract)
    names = enrichment(api, number)
    start, end = plan_range(dd.read_state(), "tokenflex_usage", number, since, until, lag_days)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with progress(f"Token Flex usage contract {number} {start}..{end}", quiet=settings.quiet) as task:
        jobs = request_exports(api, number, start, end)
        try:

            def batches() -> Iterator[pa.Table]:
                for table in usage_batches(api, settings, number, jobs, start, end):
                    task.advance(table.num_rows)
                    yield hash_personal_columns(table, salt) if salt is not None else table

            with dd.transaction() as tx:
                result.rows["tokenflex_contracts"] = result.rows.get("tokenflex_contracts", 0) + tx.write(
                    "tokenflex_contracts", years, source=f"tokenflex/v1/contract/{number}",
                    replace=Replace(match={"contract_number": number}))
                result.rows["tokenflex_enrichment"] = result.rows.get("tokenflex_enrichment", 0) + tx.write(
                    "tokenflex_enrichment", names, source=f"tokenflex/v1/contract/{number}/enrichment",
                    replace=Replace(match={"contract_number": number}))
                n = tx.write("tokenflex_usage", batches(), source=f"tokenflex/v1/export/{number}/requests {start}..{end}",
                             replace=Replace(match={"contract_number": number}, date_from=start, date_to=end))
                result.rows["tokenflex_usage"] = result.rows.get("tokenflex_usage", 0) + n
                tx.set_state("tokenflex_usage", number, state_entry(tx.get_state("tokenflex_usage", number), start, end, now))
        finally:
            delete_requests(api, number, jobs)
    result.ranges[number] = (start.isoformat(), end.isoformat())
    log.info("contract %s: %d usage rows %s..%s", number, n, start, end)
