"""ASGI middleware: one that answers a path with doubled slashes like the single-slash path, and
one that injects the faults drawn by :class:`FaultPlan` into API and download calls."""

from __future__ import annotations

import asyncio
import json
import logging
import re

from .ratelimit import retry_after_header

log = logging.getLogger("aps_usage.sandbox")

_FAULTABLE = ("/insights/", "/tokenflex/", "/sandbox-downloads/")


def _abort_connection(receive) -> bool:
    """Close the TCP connection without a response (uvicorn's cycle object owns the transport)."""
    owner = getattr(receive, "__self__", None)
    transport = getattr(owner, "transport", None)
    if transport is None:
        return False
    transport.abort()
    return True


_SLASHES = re.compile(r"/{2,}")


class CollapseSlashes:
    """``//authentication/v2/token`` (what the official APS SDK sends when a base URL ends in
    ``/``) is served like ``/authentication/v2/token``, on every route. Starlette's router
    matches paths literally and has no stock option for this, hence these few lines."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and "//" in scope.get("path", ""):
            scope = {**scope, "path": _SLASHES.sub("/", scope["path"])}
            if scope.get("raw_path"):
                scope["raw_path"] = _SLASHES.sub("/", scope["raw_path"].decode("latin-1")).encode("latin-1")
        return await self.app(scope, receive, send)


class FaultMiddleware:
    def __init__(self, app, sandbox):
        self.app = app
        self.sb = sandbox

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        plan = self.sb.faults
        faultable = path.startswith(_FAULTABLE) or (plan.include_auth and path.startswith("/authentication/"))
        chosen = plan.draw() if (plan.active and faultable) else set()
        scope.setdefault("state", {})["faults"] = chosen
        if chosen:
            log.debug("sandbox fault %s on %s", sorted(chosen), path)
        for code in ("429", "500", "502", "503"):
            if code in chosen:
                headers = [(b"content-type", b"application/json")]
                if code == "429":
                    from .app import http_date

                    wait = max(1.0, 2.0 * self.sb.time_scale)
                    value = http_date(2.0) if "retry-after-date" in chosen else retry_after_header(wait)
                    headers.append((b"retry-after", value.encode()))
                body = json.dumps({"developerMessage": f"Sandbox injected fault {code}", "errorCode": f"SANDBOX_{code}",
                                   "moreInfo": None}).encode()
                headers.append((b"content-length", str(len(body)).encode()))
                await send({"type": "http.response.start", "status": int(code), "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        if "reset" in chosen:
            if _abort_connection(receive):
                return
            raise ConnectionResetError("sandbox injected reset")
        if "slow" in chosen:
            await asyncio.sleep(self.sb.slow_seconds)
        if "truncate" in chosen:
            return await self._truncated(scope, receive, send)
        return await self.app(scope, receive, send)

    async def _truncated(self, scope, receive, send):
        """Announce the full Content-Length, send half the body, then drop the connection."""
        start = {}
        chunks: list[bytes] = []

        async def capture(message):
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        body = b"".join(chunks)
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body) + 64).encode()))
        await send({"type": "http.response.start", "status": start.get("status", 200), "headers": headers})
        await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
        await asyncio.sleep(0.01)
        if not _abort_connection(receive):
            raise ConnectionResetError("sandbox injected truncation")
