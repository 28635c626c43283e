"""APS OAuth v2 as the sandbox plays it: client credentials, authorization code with PKCE
(the authorize endpoint redirects at once, no browser needed), rotating refresh tokens,
scopes, and tokens that expire after ``expires_in`` (scaled by time_scale)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse

from . import ADMIN_EMAIL, CLIENT_ID, CLIENT_SECRET

DEFAULT_SCOPE = "data:read"
KNOWN_SCOPES = {"data:read", "data:write", "data:create", "data:search", "account:read", "account:write",
                "user-profile:read", "user:read", "openid"}


@dataclass
class Token:
    value: str
    client_id: str
    scopes: frozenset[str]
    expires_at: float
    three_legged: bool
    subject: str  # who the rate limits count against


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    scopes: frozenset[str]
    challenge: str | None
    expires_at: float


@dataclass
class _Refresh:
    client_id: str
    scopes: frozenset[str]
    public: bool


def oauth_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


@dataclass
class OAuthServer:
    time_scale: float = 1.0
    token_ttl: int = 3600
    clock: callable = time.monotonic
    tokens: dict[str, Token] = field(default_factory=dict)
    codes: dict[str, _Code] = field(default_factory=dict)
    refresh_tokens: dict[str, _Refresh] = field(default_factory=dict)
    spent_refresh_tokens: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def expires_in(self) -> int:
        return max(1, int(round(self.token_ttl * self.time_scale)))

    def _issue(self, client_id: str, scopes: frozenset[str], three_legged: bool) -> Token:
        token = Token(
            value=secrets.token_urlsafe(32), client_id=client_id, scopes=scopes,
            expires_at=self.clock() + self.token_ttl * self.time_scale, three_legged=three_legged,
            subject=f"user:{ADMIN_EMAIL}" if three_legged else f"client:{client_id}",
        )
        with self._lock:
            self.tokens[token.value] = token
        return token

    def lookup(self, value: str) -> tuple[Token | None, str]:
        """The token behind a bearer value, or None with the reason."""
        token = self.tokens.get(value)
        if token is None:
            return None, "The access token is not valid"
        if self.clock() >= token.expires_at:
            return None, "The access token has expired"
        return token, ""

    @staticmethod
    def _parse_scopes(text: str | None) -> frozenset[str] | None:
        scopes = frozenset((text or DEFAULT_SCOPE).split())
        return scopes if scopes <= KNOWN_SCOPES else None

    @staticmethod
    def _client_from(request: Request, form) -> tuple[str | None, str | None]:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            try:
                raw = base64.b64decode(header[6:].strip()).decode()
                cid, _, secret = raw.partition(":")
                return cid, secret
            except Exception:
                return None, None
        return form.get("client_id"), form.get("client_secret")

    async def token_endpoint(self, request: Request):
        form = await request.form()
        client_id, client_secret = self._client_from(request, form)
        grant = form.get("grant_type")
        if client_id != CLIENT_ID:
            return oauth_error(401, "invalid_client", "The client credentials are invalid")
        if client_secret is not None and client_secret != CLIENT_SECRET:
            return oauth_error(401, "invalid_client", "The client credentials are invalid")
        if grant == "client_credentials":
            if client_secret is None:
                return oauth_error(401, "invalid_client", "client_credentials needs the client secret")
            scopes = self._parse_scopes(form.get("scope"))
            if scopes is None:
                return oauth_error(400, "invalid_scope", "The requested scope is invalid")
            token = self._issue(client_id, scopes, three_legged=False)
            return JSONResponse({"access_token": token.value, "token_type": "Bearer", "expires_in": self.expires_in})
        if grant == "authorization_code":
            code = self.codes.pop(form.get("code") or "", None)
            if code is None or self.clock() > code.expires_at or code.client_id != client_id:
                return oauth_error(400, "invalid_grant", "The authorization code is invalid or expired")
            if form.get("redirect_uri") and form.get("redirect_uri") != code.redirect_uri:
                return oauth_error(400, "invalid_grant", "redirect_uri does not match the authorize request")
            verifier = form.get("code_verifier")
            if code.challenge:
                if not verifier or _s256(verifier) != code.challenge:
                    return oauth_error(400, "invalid_grant", "PKCE verification failed")
            elif client_secret is None:
                return oauth_error(401, "invalid_client", "A confidential client must send its secret")
            return self._issue_pair(client_id, code.scopes, public=client_secret is None)
        if grant == "refresh_token":
            value = form.get("refresh_token") or ""
            with self._lock:
                refresh = self.refresh_tokens.pop(value, None)
                if refresh is not None:
                    self.spent_refresh_tokens.add(value)
            if refresh is None or refresh.client_id != client_id:
                return oauth_error(400, "invalid_grant", "The refresh token is invalid, expired or already used")
            if client_secret is None and not refresh.public:
                return oauth_error(401, "invalid_client", "A confidential client must send its secret")
            scopes = refresh.scopes
            if form.get("scope"):
                asked = self._parse_scopes(form.get("scope"))
                if asked is None or not asked <= refresh.scopes:
                    return oauth_error(400, "invalid_scope", "A refresh may only narrow the scope")
                scopes = asked
            return self._issue_pair(client_id, scopes, public=refresh.public)
        return oauth_error(400, "unsupported_grant_type", f"grant_type {grant!r} is not supported")

    def _issue_pair(self, client_id: str, scopes: frozenset[str], public: bool) -> JSONResponse:
        token = self._issue(client_id, scopes, three_legged=True)
        refresh = secrets.token_urlsafe(40)
        with self._lock:
            self.refresh_tokens[refresh] = _Refresh(client_id, scopes, public)
        return JSONResponse({
            "access_token": token.value, "token_type": "Bearer", "expires_in": self.expires_in,
            "refresh_token": refresh, "scope": " ".join(sorted(scopes)),
        })

    async def authorize_endpoint(self, request: Request):
        q = request.query_params
        if q.get("client_id") != CLIENT_ID:
            return oauth_error(400, "invalid_client", "Unknown client_id")
        redirect_uri = q.get("redirect_uri")
        if not redirect_uri or not redirect_uri.startswith(("http://", "https://")):
            return oauth_error(400, "invalid_request", "redirect_uri is required")
        if q.get("response_type") != "code":
            return oauth_error(400, "unsupported_response_type", "Only response_type=code is supported")
        challenge = q.get("code_challenge")
        if challenge and q.get("code_challenge_method", "plain") != "S256":
            return oauth_error(400, "invalid_request", "code_challenge_method must be S256")
        scopes = self._parse_scopes(q.get("scope"))
        if scopes is None:
            return oauth_error(400, "invalid_scope", "The requested scope is invalid")
        code = secrets.token_urlsafe(24)
        self.codes[code] = _Code(CLIENT_ID, redirect_uri, scopes, challenge, self.clock() + 600 * self.time_scale + 5)
        params = {"code": code}
        if q.get("state") is not None:
            params["state"] = q.get("state")
        sep = "&" if "?" in redirect_uri else "?"
        return RedirectResponse(f"{redirect_uri}{sep}{urlencode(params)}", status_code=302)


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
