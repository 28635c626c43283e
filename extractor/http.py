"""The one HTTP client every API call goes through.

It owns: connect/read timeouts, retries (429, 5xx, connection errors and resets, read
timeouts, truncated bodies) honouring ``Retry-After`` or else a capped exponential backoff
with jitter (tenacity), a token-bucket rate limiter for ``tokenflex/`` paths, and the
polling schedule of asynchronous jobs (growing intervals, an overall deadline). Tokens,
their refresh and the one retry after a 401 are the ``httpx.Auth`` flow of ``auth.Auth``;
the job lifecycle itself is ``jobs``.

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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential,
)

from . import __version__
from .config import Settings
from .errors import ApiError, AuthError
from .logs import log, redact

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
    def from_env(cls, **overrides: Any) -> HttpOptions:
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
    from datetime import datetime
    from urllib.parse import parse_qs

    query = {k.lower(): v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    stamp, lifetime = query.get("x-amz-date"), query.get("x-amz-expires")
    if not stamp or lifetime is None:
        return False
    try:
        signed = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
        return signed + float(lifetime) - margin <= (time.time() if now is None else now)
    except ValueError:
        return False


class Retryable(Exception):
    """An answer worth another attempt: a retryable status or an unreadable body."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.retry_after = retry_after


class ApiClient:
    """``get/post/delete(path)`` against ``settings.base_url``: one httpx client, the auth
    flow of ``auth`` (an ``httpx.Auth``: headers, token refresh, one retry on 401) and
    retries from tenacity."""

    def __init__(
        self,
        settings: Settings,
        auth: httpx.Auth | None = None,
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

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- retries ---------------------------------------------------------------------------
    def retrying(self, label: str) -> Retrying:
        """The retry policy of one call: connection errors, timeouts, truncated bodies and
        429/5xx (``Retryable``) are tried again up to ``max_attempts`` times, waiting
        ``Retry-After`` when the server says, else a capped exponential backoff with jitter."""
        return Retrying(
            stop=stop_after_attempt(max(1, self.options.max_attempts)),
            wait=self._backoff,
            retry=retry_if_exception_type((*RETRY_EXCEPTIONS, Retryable)),
            sleep=self._sleep,
            before_sleep=lambda state: self._count_retry(label, state),
            retry_error_callback=lambda state: self._give_up(label, state),
        )

    def _backoff(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            return min(retry_after, max(self.options.backoff_cap, 0.0))
        # "equal jitter": half the capped exponential step fixed, half random (no herd of clients)
        ceiling = min(self.options.backoff_cap, self.options.backoff_base * (2 ** (state.attempt_number - 1)))
        return random.uniform(ceiling / 2, ceiling)

    def _count_retry(self, label: str, state: RetryCallState) -> None:
        self.stats["retries"] += 1
        log.debug("%s: %s; retry %d in %.2fs", label, _reason(state), state.attempt_number, state.upcoming_sleep)

    @staticmethod
    def _give_up(label: str, state: RetryCallState) -> NoReturn:
        raise ApiError(redact(f"{label} failed after {state.attempt_number} attempts: {_reason(state)}"))

    def _retryable_status(self, response: httpx.Response) -> None:
        if response.status_code in RETRY_STATUSES:
            if response.status_code == 429:
                self.stats["rate_limited"] += 1
            raise Retryable(f"HTTP {response.status_code}", retry_after_seconds(response.headers.get("Retry-After")))

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
        """Send with retries. The body is read fully inside each attempt, so a truncated
        body is retried like a reset. ``raise_for_status=False`` hands back 4xx responses
        (after retries for the retryable ones) for the caller to interpret."""
        url = self.url(path)
        label = f"{method} {safe_url(url)}"
        limited = "/tokenflex/" in urlsplit(url).path and url.startswith(self.settings.base_url)
        auth = self.auth if authenticated else None
        kwargs.setdefault("auth", auth)

        def attempt() -> httpx.Response:
            if limited:
                waited = self.tokenflex_limiter.acquire()
                if waited > 0.5:
                    log.debug("rate limiter waited %.1fs before %s", waited, label)
            self.stats["requests"] += 1
            response = self._client.request(method, url, **kwargs)
            response.read()
            if expect is not None and response.is_success and not expect(response):
                raise Retryable(f"incomplete or unreadable body from {label}")
            self._retryable_status(response)
            return response

        response = self.retrying(label)(attempt)
        if raise_for_status and not response.is_success:
            raise self.error_for(response, label)
        return response

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
        return self.request("GET", path, expect=json_ok, **kwargs).json()

    def post_json(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, expect=json_ok, **kwargs).json()

    def download_to(self, url: str, path: Path) -> httpx.Response:
        """Stream a pre-signed URL into ``path`` (bounded memory; no auth header: the URL is
        the credential), with the same retries as ``request``; a truncated body is retried
        from the start. A 4xx response is returned (its body not written) for the caller to
        renew the URL."""
        label = f"GET {safe_url(url)}"

        def attempt() -> httpx.Response:
            self.stats["requests"] += 1
            with self._client.stream("GET", self.url(url), auth=None) as response:
                self._retryable_status(response)
                if not response.is_success:
                    response.read()
                    return response
                with open(path, "wb") as fh:
                    for chunk in response.iter_bytes(1 << 20):
                        fh.write(chunk)
                return response

        return self.retrying(label)(attempt)

    # -- polling ---------------------------------------------------------------------------
    def polling(self, on_timeout: Callable[[], NoReturn]) -> Retrying:
        """The polling schedule of asynchronous jobs: call again while the result says "not
        yet", every ``poll_interval`` s growing 1.5x up to ``poll_max_interval``, and call
        ``on_timeout`` rather than sleep past ``poll_deadline``."""
        return Retrying(
            retry=retry_if_result(bool),
            wait=wait_exponential(multiplier=self.options.poll_interval, exp_base=1.5,
                                  max=self.options.poll_max_interval),
            stop=stop_before_delay(self.options.poll_deadline),
            sleep=self._sleep,
            retry_error_callback=lambda state: on_timeout(),
        )


def _reason(state: RetryCallState) -> str:
    error = state.outcome.exception() if state.outcome else None
    if isinstance(error, Retryable):
        return str(error)
    return f"{type(error).__name__}: {error}"


def json_ok(response: httpx.Response) -> bool:
    """The body is JSON (an ``expect`` check: a truncated body is retried like a dropped connection)."""
    try:
        json.loads(response.content)
    except ValueError:
        return False
    return True
