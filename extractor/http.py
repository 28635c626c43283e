"""The one HTTP client every API call goes through.

It owns: connect/read timeouts, retries (429, 5xx, connection errors and resets, read
timeouts, truncated bodies) honouring ``Retry-After`` or else a capped exponential backoff
with jitter, a token-bucket rate limiter for ``tokenflex/`` paths, one token refresh on
401, and a job-polling helper with growing intervals and an overall deadline.

Every knob has a constructor argument and an environment variable, so tests can shrink
waits without touching code: ``APS_HTTP_TIMEOUT``, ``APS_HTTP_MAX_ATTEMPTS``,
``APS_HTTP_BACKOFF_BASE``, ``APS_HTTP_BACKOFF_CAP``, ``APS_TOKENFLEX_RATE_PER_MIN``,
``APS_TOKENFLEX_BURST``, ``APS_POLL_INTERVAL``, ``APS_POLL_MAX_INTERVAL``, ``APS_POLL_DEADLINE``.
"""

from __future__ import annotations

import email.utils
import json
import os
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, TypeVar
from urllib.parse import urlsplit

import httpx

from . import __version__
from .config import Settings
from .errors import ApiError, AuthError
from .logs import log, redact

T = TypeVar("T")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# Errors worth another attempt: timeouts, resets/refused connections, truncated bodies.
RETRY_EXCEPTIONS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value in (None, ""):
        return default
    try:
        return float(value)
    except ValueError:
        raise ApiError(f"environment variable {name}={value!r} is not a number") from None


@dataclass
class HttpOptions:
    """Timeouts, retry and polling knobs; ``from_env`` fills what the caller left None."""

    timeout: float = 30.0
    connect_timeout: float = 10.0
    max_attempts: int = 8
    backoff_base: float = 0.5
    backoff_cap: float = 60.0
    tokenflex_rate_per_min: float = 5.0
    tokenflex_burst: float = 50.0
    poll_interval: float = 0.5
    poll_max_interval: float = 10.0
    poll_deadline: float = 3600.0

    @classmethod
    def from_env(cls, **overrides: Any) -> "HttpOptions":
        opts = cls(
            timeout=_env_float("APS_HTTP_TIMEOUT", cls.timeout),
            connect_timeout=min(_env_float("APS_HTTP_TIMEOUT", cls.connect_timeout), cls.connect_timeout),
            max_attempts=int(_env_float("APS_HTTP_MAX_ATTEMPTS", cls.max_attempts)),
            backoff_base=_env_float("APS_HTTP_BACKOFF_BASE", cls.backoff_base),
            backoff_cap=_env_float("APS_HTTP_BACKOFF_CAP", cls.backoff_cap),
            tokenflex_rate_per_min=_env_float("APS_TOKENFLEX_RATE_PER_MIN", cls.tokenflex_rate_per_min),
            tokenflex_burst=_env_float("APS_TOKENFLEX_BURST", cls.tokenflex_burst),
            poll_interval=_env_float("APS_POLL_INTERVAL", cls.poll_interval),
            poll_max_interval=_env_float("APS_POLL_MAX_INTERVAL", cls.poll_max_interval),
            poll_deadline=_env_float("APS_POLL_DEADLINE", cls.poll_deadline),
        )
        for key, value in overrides.items():
            if value is not None:
                setattr(opts, key, value)
        return opts


class TokenBucket:
    """Allows ``burst`` calls at once, then ``rate_per_min`` per minute (thread-safe)."""

    def __init__(self, rate_per_min: float, burst: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.rate = rate_per_min / 60.0
        self.capacity = max(1.0, burst)
        self.tokens = self.capacity
        self._clock = clock
        self._sleep = sleep
        self._last = clock()
        self._lock = threading.Lock()
        self.waited = 0.0

    def acquire(self) -> float:
        """Take one token, sleeping until one is available; returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                self.tokens = min(self.capacity, self.tokens + (now - self._last) * self.rate)
                self._last = now
                if self.tokens >= 1.0:
                    self.tokens -= 1.0
                    self.waited += waited
                    return waited
                wait = (1.0 - self.tokens) / self.rate if self.rate > 0 else 1.0
            self._sleep(wait)
            waited += wait


class AuthProvider(Protocol):
    def headers_for(self, path: str) -> dict[str, str]: ...

    def refresh_after_unauthorized(self) -> None: ...


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: a number, or an HTTP date (RFC 9110); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def safe_url(url: str | httpx.URL) -> str:
    """A URL as it may be logged: host and path, never the query string (signatures)."""
    parts = urlsplit(str(url))
    return f"{parts.netloc}{parts.path}" + ("?***" if parts.query else "")


def presigned_url_expired(url: str, now: float | None = None, margin: float = 1.0) -> bool:
    """True when an S3-style pre-signed URL (``X-Amz-Date`` + ``X-Amz-Expires``) is past its
    expiry; False when the URL does not say (the download is then tried and a 403 renews it)."""
    from datetime import datetime, timezone
    from urllib.parse import parse_qs

    query = {k.lower(): v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    stamp, lifetime = query.get("x-amz-date"), query.get("x-amz-expires")
    if not stamp or lifetime is None:
        return False
    try:
        signed = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc).timestamp()
        return signed + float(lifetime) - margin <= (time.time() if now is None else now)
    except ValueError:
        return False


class ApiClient:
    """``get/post/delete(path)`` against ``settings.base_url`` with retries and auth headers."""

    def __init__(
        self,
        settings: Settings,
        auth: AuthProvider | None = None,
        *,
        options: HttpOptions | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        **option_overrides: Any,
    ):
        self.settings = settings
        self.auth = auth
        self.options = options or HttpOptions.from_env(**option_overrides)
        self._sleep = sleep
        timeout = httpx.Timeout(self.options.timeout, connect=self.options.connect_timeout)
        self._client = httpx.Client(
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": f"aps-usage/{__version__}"},
            follow_redirects=False,
        )
        self.tokenflex_limiter = TokenBucket(
            self.options.tokenflex_rate_per_min, self.options.tokenflex_burst, sleep=sleep
        )
        self.stats = {"requests": 0, "retries": 0, "rate_limited": 0}
        if auth is not None and hasattr(auth, "attach"):
            auth.attach(self)

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "ApiClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests --------------------------------------------------------------------------
    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.settings.base_url}/{path.lstrip('/')}"

    def request(
        self,
        method: str,
        path: str,
        *,
        authenticated: bool = True,
        expect: Callable[[httpx.Response], bool] | None = None,
        raise_for_status: bool = True,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send with retries. The body is read fully inside the retry loop, so a truncated
        body is retried like a reset. ``raise_for_status=False`` hands back 4xx responses
        (after retries for the retryable ones) for the caller to interpret."""
        url = self.url(path)
        label = f"{method} {safe_url(url)}"
        rel_path = urlsplit(url).path
        limited = "/tokenflex/" in rel_path and url.startswith(self.settings.base_url)
        extra_headers = dict(kwargs.pop("headers", None) or {})
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            if limited:
                waited = self.tokenflex_limiter.acquire()
                if waited > 0.5:
                    log.debug("rate limiter waited %.1fs before %s", waited, label)
            call_headers = dict(extra_headers)
            if authenticated and self.auth is not None:
                call_headers.update(self.auth.headers_for(rel_path))
            self.stats["requests"] += 1
            try:
                response = self._client.request(method, url, headers=call_headers, **kwargs)
                response.read()
                if expect is not None and response.is_success and not expect(response):
                    raise _BadBody(f"incomplete or unreadable body from {label}")
            except (*RETRY_EXCEPTIONS, _BadBody) as err:
                self._backoff_or_raise(attempt, label, f"{type(err).__name__}: {err}", None)
                continue
            status = response.status_code
            if status == 401 and authenticated and self.auth is not None and not refreshed:
                refreshed = True
                log.debug("%s -> 401, refreshing the token once", label)
                self.auth.refresh_after_unauthorized()
                attempt -= 1
                continue
            if status in RETRY_STATUSES:
                if status == 429:
                    self.stats["rate_limited"] += 1
                self._backoff_or_raise(
                    attempt, label, f"HTTP {status}", retry_after_seconds(response.headers.get("Retry-After"))
                )
                continue
            if raise_for_status and not response.is_success:
                raise self.error_for(response, label)
            return response

    def _backoff_or_raise(self, attempt: int, label: str, reason: str, retry_after: float | None) -> None:
        if attempt >= self.options.max_attempts:
            raise ApiError(redact(f"{label} failed after {attempt} attempts: {reason}"))
        if retry_after is not None:
            delay = min(retry_after, max(self.options.backoff_cap, 0.0))
        else:
            # "equal jitter": half the capped exponential step fixed, half random
            ceiling = min(self.options.backoff_cap, self.options.backoff_base * (2 ** (attempt - 1)))
            delay = random.uniform(ceiling / 2, ceiling)
        self.stats["retries"] += 1
        log.debug("%s: %s; retry %d in %.2fs", label, reason, attempt, delay)
        if delay > 0:
            self._sleep(delay)

    @staticmethod
    def error_for(response: httpx.Response, label: str) -> Exception:
        detail = response.text[:300].replace("\n", " ").strip()
        message = redact(f"{label} -> HTTP {response.status_code}: {detail}")
        if response.status_code in (401, 403) and "/authentication/" not in label:
            return AuthError(message)
        return ApiError(message)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", path, **kwargs)

    def get_json(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, expect=_json_ok, **kwargs).json()

    def post_json(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, expect=_json_ok, **kwargs).json()

    def download(self, url: str, **kwargs: Any) -> httpx.Response:
        """GET a pre-signed URL: no auth headers (the URL is the credential); 4xx returned."""
        return self.request("GET", url, authenticated=False, raise_for_status=False, **kwargs)

    def download_to(self, url: str, path: Path) -> httpx.Response:
        """Stream a pre-signed URL into ``path`` (bounded memory), with the same retries as
        ``request``; a truncated body is retried from the start. A 4xx response is returned
        (its body not written) for the caller to renew the URL."""
        label = f"GET {safe_url(url)}"
        attempt = 0
        while True:
            attempt += 1
            self.stats["requests"] += 1
            try:
                with self._client.stream("GET", self.url(url)) as response:
                    if response.status_code in RETRY_STATUSES:
                        reason, wait = f"HTTP {response.status_code}", retry_after_seconds(response.headers.get("Retry-After"))
                    elif not response.is_success:
                        response.read()
                        return response
                    else:
                        with open(path, "wb") as fh:
                            for chunk in response.iter_bytes(1 << 20):
                                fh.write(chunk)
                        return response
            except RETRY_EXCEPTIONS as err:
                reason, wait = f"{type(err).__name__}: {err}", None
            self._backoff_or_raise(attempt, label, reason, wait)

    # -- polling ---------------------------------------------------------------------------
    def poll(
        self,
        fetch: Callable[[], T],
        done: Callable[[T], bool],
        *,
        what: str,
        deadline: float | None = None,
    ) -> T:
        """Call ``fetch`` until ``done(result)``; waits 0.5 s * 1.5^n capped, until a deadline."""
        limit = time.monotonic() + (deadline if deadline is not None else self.options.poll_deadline)
        interval = self.options.poll_interval
        while True:
            result = fetch()
            if done(result):
                return result
            if time.monotonic() + interval > limit:
                raise ApiError(f"{what} did not finish within {deadline or self.options.poll_deadline:.0f}s")
            self._sleep(interval)
            interval = min(self.options.poll_max_interval, interval * 1.5)


class _BadBody(Exception):
    pass


def _json_ok(response: httpx.Response) -> bool:
    try:
        json.loads(response.content)
    except ValueError:
        return False
    return True
