"""Shared fixtures: the sandbox API server on 127.0.0.1 (real HTTP, real uvicorn)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "False")

from extractor import DEFAULT_CALLBACK_URL  # noqa: E402
from extractor.sandbox import CLIENT_ID, CLIENT_SECRET, PAT  # noqa: E402,F401  (re-exported for tests)

#: a registered Callback URL whose port is ``*`` matches any port of that host (a sandbox-only
#: convenience): until `auth login` listens on one fixed callback, it picks a free port per test
LOOPBACK_ANY_PORT = "http://127.0.0.1:*/callback"
#: the Callback URLs registered on every sandbox the tests start (fixtures and tests calling
#: create_app alike); a test passes ``callback_urls=[...]`` to sandbox_factory / create_app to
#: register only its own (APS matches them exactly). Drop LOOPBACK_ANY_PORT once `auth login`
#: listens on one configured callback.
TEST_CALLBACK_URLS = (DEFAULT_CALLBACK_URL, LOOPBACK_ANY_PORT)
import extractor.sandbox.app as _sandbox_app  # noqa: E402

_sandbox_app.DEFAULT_CALLBACK_URLS = TEST_CALLBACK_URLS
SANDBOX_OPTIONS = dict(seed=7, users=60, days=120, end_date="2026-10-31", time_scale=0.02)


@dataclass
class SandboxServer:
    base_url: str
    data: object  # extractor.sandbox.data.SandboxData
    app: object
    server: object

    @property
    def app_state(self):
        """The sandbox's live state (jobs, OAuth tokens, downloads, ``refusals`` and
        ``export_refusals()``, ``oauth.callback_urls``): extractor.sandbox.app.Sandbox."""
        return self.app.state.sandbox

    def stop(self) -> None:
        self.server.stop()


_DATA_KEYS = ("seed", "users", "days", "end_date")
_data_cache: dict[tuple, object] = {}


def _cached_data(options: dict):
    """Generated data is immutable: sandboxes with the same data options share one copy."""
    from extractor.sandbox.data import generate

    args = {k: options.pop(k) for k in _DATA_KEYS if k in options}
    key = tuple(sorted(args.items()))
    if key not in _data_cache:
        _data_cache[key] = generate(**args)
    return _data_cache[key]


def _start(**options) -> SandboxServer:
    from extractor.sandbox.app import create_app
    from extractor.sandbox.server import start_in_thread

    if options.get("data") is None:
        options.pop("data", None)
        options["data"] = _cached_data(options)
    app = create_app(**options)
    server = start_in_thread(app)
    return SandboxServer(server.base_url, app.state.data, app, server)


@pytest.fixture(scope="session")
def sandbox():
    """One sandbox for the session: seed 7, 60 users, 120 days ending 2026-10-31, time_scale 0.02."""
    running = _start(**SANDBOX_OPTIONS)
    yield running
    running.stop()


@pytest.fixture
def sandbox_factory():
    """``sandbox_factory(**create_app_kwargs)`` starts another sandbox (small data unless given); stopped at
    teardown. ``callback_urls=[...]`` sets the app's registered Callback URLs (default TEST_CALLBACK_URLS)."""
    started: list[SandboxServer] = []

    def factory(**options) -> SandboxServer:
        base = SANDBOX_OPTIONS if "data" not in options else {"time_scale": SANDBOX_OPTIONS["time_scale"]}
        merged = {**base, **options}
        running = _start(**merged)
        started.append(running)
        return running

    yield factory
    for running in started:
        running.stop()
