"""The one lifecycle of the APIs' asynchronous jobs: submit, poll, retry a failed job,
download its files renewing expired URLs, delete it.

Premium usage queries and exports and Token Flex export requests all go this way; each API
says only what differs (a ``Job`` subclass: how to submit, read a status, retry, list and
renew download URLs). Polling waits grow 1.5x per round up to ``APS_POLL_MAX_INTERVAL``
and stop at ``APS_POLL_DEADLINE`` (tenacity, through ``ApiClient.polling``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import ApiError, UsageError
from .http import ApiClient, presigned_url_expired, safe_url
from .logs import log

RUNNING, DONE, FAILED = "running", "done", "failed"
#: a failed job is resubmitted (or retried) at most this many times
RESUBMITS = 3
#: an expired or refused download URL is renewed at most this many times
URL_RENEWALS = 6
#: answers to a download that a fresh URL may cure (expired or revoked signature, moved file)
RENEWABLE = (401, 403, 404, 410)


@dataclass
class Download:
    url: str
    kind: str = ""  # the report a file holds, when the API says (Premium exports)
    expires: Any = None  # an expiry stamp from the API: ISO text or epoch (s or ms)

    def expired(self) -> bool:
        """Past its expiry, by the API's stamp or by the pre-signed URL itself."""
        if self.expires in (None, ""):
            return presigned_url_expired(self.url)
        when = parse_timestamp(self.expires)
        return when is not None and when <= datetime.now(UTC)


@dataclass(eq=False)  # a job is itself, whatever its fields say
class Job:
    """One asynchronous job. Subclasses implement ``submit``, ``check`` and ``status``; the
    defaults retry by submitting again and renew URLs by checking again."""

    what: str
    id: str = ""
    info: dict = field(default_factory=dict)
    retries: int = 0

    def submit(self, api: ApiClient) -> str:
        raise NotImplementedError

    def check(self, api: ApiClient) -> dict:
        raise NotImplementedError

    def status(self, info: dict) -> tuple[str, str]:
        """(RUNNING | DONE | FAILED, the API's own word for it)."""
        raise NotImplementedError

    def retry(self, api: ApiClient) -> None:
        self.id = self.submit(api)

    def downloads(self, info: dict) -> list[Download]:
        return []

    def renew(self, api: ApiClient) -> dict:
        return self.check(api)

    def delete(self, api: ApiClient) -> None:
        pass

    @property
    def label(self) -> str:
        return f"{self.what.format(id=self.id)}"


def start(api: ApiClient, jobs: Iterable[Job]) -> None:
    for job in jobs:
        job.id = job.submit(api)


def retry(api: ApiClient, job: Job, reason: str) -> None:
    """Retry a job that failed (or whose result expired), or fail naming it."""
    if job.retries >= RESUBMITS:
        raise ApiError(f"{job.label} {reason}; gave up after {RESUBMITS} resubmissions")
    job.retries += 1
    log.warning("%s %s; resubmitting (%d/%d)", job.label, reason, job.retries, RESUBMITS)
    job.retry(api)


def wait(api: ApiClient, jobs: list[Job]) -> None:
    """Poll every job until it is done (``job.info`` then holds its last answer); a failed one
    is retried up to ``RESUBMITS`` times."""
    pending = list(jobs)

    def poll_round() -> list[Job]:
        for job in list(pending):
            info = job.check(api)
            state, word = job.status(info)
            if state == DONE:
                job.info = info
                pending.remove(job)
            elif state == FAILED:
                retry(api, job, f"ended {word}")
        return pending

    def timed_out():
        raise ApiError(f"{', '.join(j.label for j in pending)} did not finish within {api.options.poll_deadline:.0f}s")

    api.polling(timed_out)(poll_round)


def run(api: ApiClient, job: Job) -> Job:
    """Submit one job and wait for it."""
    start(api, [job])
    wait(api, [job])
    return job


def fetch(api: ApiClient, job: Job, folder: Path, stem: str) -> list[tuple[str, Path]]:
    """Download every file of a finished job into ``folder`` as ``<stem>-<n>``: an expired
    or refused URL is renewed (``job.renew``) up to ``URL_RENEWALS`` times."""
    files = []
    if not job.downloads(job.info):  # Token Flex may answer Download before the URL is there
        job.info = job.renew(api)
    downloads = job.downloads(job.info)
    if not downloads:
        raise ApiError(f"{job.label} finished without a download URL")
    for index in range(len(downloads)):
        for attempt in range(URL_RENEWALS + 1):
            item = downloads[index]
            path = folder / f"{stem}-{index + 1}"
            response = None if item.expired() else api.download_to(item.url, path)
            if response is not None and response.is_success:
                files.append((item.kind, path))
                break
            reason = "expired" if response is None else f"HTTP {response.status_code}"
            if response is not None and response.status_code not in RENEWABLE:
                raise ApiError(f"{job.label}: download {index + 1} ({safe_url(item.url)}) failed: {reason}")
            if attempt == URL_RENEWALS:
                raise ApiError(f"{job.label}: download {index + 1} still failing ({reason}) after renewing its URL "
                               f"{URL_RENEWALS} times")
            log.info("%s: download URL %s (%s); getting a fresh one", job.label, safe_url(item.url), reason)
            job.info = job.renew(api)
            downloads = job.downloads(job.info)
            if len(downloads) <= index:
                raise ApiError(f"{job.label}: the job no longer lists download {index + 1}")
    return files


def delete(api: ApiClient, jobs: Iterable[Job]) -> None:
    """Best effort (Token Flex allows at most 50 outstanding export requests)."""
    for job in jobs:
        if job.id:
            try:
                job.delete(api)
            except UsageError:
                log.debug("could not delete %s", job.label)


def parse_timestamp(value: Any) -> datetime | None:
    """An API timestamp as an aware UTC datetime: epoch seconds or milliseconds, or ISO 8601
    with or without ``Z`` / an offset and with or without (micro)seconds fractions, as the
    public sources disagree; None when it does not read."""
    if value in (None, ""):
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000 if value > 1e11 else value, UTC)
    text = str(value).strip()
    try:
        return parse_timestamp(float(text))
    except ValueError:
        pass
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
