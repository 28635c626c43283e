"""APS OAuth v2 as the sandbox plays it: client credentials, authorization code with PKCE and
the implicit grant (the authorize endpoint redirects at once, no browser needed), a registered
Callback URL matched exactly, rotating refresh tokens, the documented scopes, tokens that
expire after ``expires_in`` (scaled by time_scale), and the OIDC ``/userinfo`` of the admin."""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse

from .. import DEFAULT_CALLBACK_URL
from . import ADMIN_EMAIL, CLIENT_ID, CLIENT_SECRET

DEFAULT_SCOPE = "data:read"
#: every scope the APS OAuth v2 scope enumeration lists (SDK ``Scopes``, developer's guide "Scopes"),
#: plus ``data:read:<URN_OF_RESOURCE>`` (matched by prefix below)
KNOWN_SCOPES = frozenset({
    "user-profile:read", "user:read", "user:write", "viewables:read", "data:read", "data:write", "data:create",
    "data:search", "bucket:create", "bucket:read", "bucket:update", "bucket:delete", "code:all", "account:read",
    "account:write", "openid",
})
ERROR_DOCS = "https://aps.autodesk.com/en/docs/oauth/v2/developers_guide/error_handling/"


def _known_scope(scope: str) -> bool:
    return scope in KNOWN_SCOPES or (scope.startswith("data:read:") and len(scope) > len("data:read:"))


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
    scopes: frozenset[str]  # what the access tokens of this refresh token carry
    granted: frozenset[str]  # what the user consented to at authorize: a refresh may ask for any subset
    public: bool


def oauth_error(status: int, error: str, description: str, code: str = "AUTH-001") -> JSONResponse:
    """An OAuth error in both shapes clients read: RFC 6749 (error / error_description) and the
    APS one (developerMessage / errorCode / moreInfo, as the v2 endpoints answer)."""
    return JSONResponse({"error": error, "error_description": description, "developerMessage": description,
                         "errorCode": code, "moreInfo": ERROR_DOCS}, status_code=status)


def _callback_pattern(url: str) -> re.Pattern:
    """A registered Callback URL matches exactly; a ``*`` port (a test-only convenience, no APS
    feature) matches any port of that host."""
    return re.compile(re.escape(url).replace(r":\*", r":\d+") + r"\Z")


@dataclass
class OAuthServer:
    time_scale: float = 1.0
    token_ttl: int = 3600
    #: the Callback URLs registered on the sandbox app (APS redirects only to these, matched exactly)
    callback_urls: list[str] = field(default_factory=lambda: [DEFAULT_CALLBACK_URL])
    clock: callable = time.monotonic
    tokens: dict[str, Token] = field(default_factory=dict)
    codes: dict[str, _Code] = field(default_factory=dict)
    refresh_tokens: dict[str, _Refresh] = field(default_factory=dict)
    spent_refresh_tokens: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def expires_in(self) -> int:
        return max(1, int(round(self.token_ttl * self.time_scale)))

    def registered(self, redirect_uri: str | None) -> bool:
        return bool(redirect_uri) and any(_callback_pattern(u).match(redirect_uri) for u in self.callback_urls)

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
    def _parse_scopes(text: str | None) -> tuple[frozenset[str] | None, list[str]]:
        """(scopes, unknown ones): scopes is None when any is unknown."""
        scopes = frozenset((text or DEFAULT_SCOPE).split())
        unknown = sorted(s for s in scopes if not _known_scope(s))
        return (None if unknown else scopes), unknown

    @staticmethod
    def _scope_error(unknown: list[str]) -> JSONResponse:
        return oauth_error(400, "invalid_scope", f"The requested scope is invalid: {' '.join(unknown)}", "AUTH-003")

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
            scopes, unknown = self._parse_scopes(form.get("scope"))
            if scopes is None:
                return self._scope_error(unknown)
            token = self._issue(client_id, scopes, three_legged=False)
            return JSONResponse({"access_token": token.value, "token_type": "Bearer", "expires_in": self.expires_in})
        if grant == "authorization_code":
            code = self.codes.pop(form.get("code") or "", None)
            if code is None or self.clock() > code.expires_at or code.client_id != client_id:
                return oauth_error(400, "invalid_grant", "The authorization code is invalid or expired", "AUTH-004")
            redirect_uri = form.get("redirect_uri")
            if not redirect_uri:
                return oauth_error(400, "invalid_request", "The required parameter(s) redirect_uri not present in the "
                                   "request", "AUTH-008")
            if not self.registered(redirect_uri):
                return oauth_error(400, "invalid_request", "Invalid redirect_uri: it does not match a Callback URL "
                                   "registered on the app", "AUTH-002")
            if redirect_uri != code.redirect_uri:
                return oauth_error(400, "invalid_grant", "redirect_uri does not match the authorize request", "AUTH-004")
            verifier = form.get("code_verifier")
            if code.challenge:
                if not verifier or _s256(verifier) != code.challenge:
                    return oauth_error(400, "invalid_grant", "PKCE verification failed", "AUTH-004")
            elif client_secret is None:
                return oauth_error(401, "invalid_client", "A confidential client must send its secret")
            return self._issue_pair(client_id, code.scopes, code.scopes, public=client_secret is None)
        if grant == "refresh_token":
            value = form.get("refresh_token") or ""
            with self._lock:
                refresh = self.refresh_tokens.pop(value, None)
                if refresh is not None:
                    self.spent_refresh_tokens.add(value)
            if refresh is None or refresh.client_id != client_id:
                return oauth_error(400, "invalid_grant", "The refresh token is invalid, expired or already used",
                                   "AUTH-004")
            if client_secret is None and not refresh.public:
                return oauth_error(401, "invalid_client", "A confidential client must send its secret")
            scopes = refresh.scopes
            if form.get("scope"):
                # any subset of what the user consented to (Autodesk's aps-tokenflex sample narrows to
                # viewables:read, then refreshes that token back to its full scopes)
                asked, unknown = self._parse_scopes(form.get("scope"))
                if asked is None:
                    return self._scope_error(unknown)
                if not asked <= refresh.granted:
                    return oauth_error(400, "invalid_scope", "A refresh may only ask for scopes the user granted",
                                       "AUTH-003")
                scopes = asked
            return self._issue_pair(client_id, scopes, refresh.granted, public=refresh.public)
        return oauth_error(400, "unsupported_grant_type", f"grant_type {grant!r} is not supported", "AUTH-007")

    def _issue_pair(self, client_id: str, scopes: frozenset[str], granted: frozenset[str], public: bool) -> JSONResponse:
        token = self._issue(client_id, scopes, three_legged=True)
        refresh = secrets.token_urlsafe(40)
        with self._lock:
            self.refresh_tokens[refresh] = _Refresh(client_id, scopes, granted, public)
        return JSONResponse({
            "access_token": token.value, "token_type": "Bearer", "expires_in": self.expires_in,
            "refresh_token": refresh, "scope": " ".join(sorted(scopes)),
        })

    async def authorize_endpoint(self, request: Request):
        q = request.query_params
        if q.get("client_id") != CLIENT_ID:
            return oauth_error(400, "invalid_client", "Unknown client_id")
        redirect_uri = q.get("redirect_uri")
        if not self.registered(redirect_uri):
            # APS shows an error page here and never redirects to an unregistered URL
            return _invalid_redirect_page(redirect_uri)
        response_type = q.get("response_type")
        if response_type not in ("code", "token"):
            return oauth_error(400, "unsupported_response_type", "response_type must be code or token")
        challenge = q.get("code_challenge")
        if challenge and q.get("code_challenge_method", "plain") != "S256":
            return oauth_error(400, "invalid_request", "code_challenge_method must be S256")
        scopes, unknown = self._parse_scopes(q.get("scope"))
        if scopes is None:
            return self._scope_error(unknown)
        state = {"state": q.get("state")} if q.get("state") is not None else {}
        if response_type == "token":
            # the implicit grant of browser samples: a 3-legged token in the fragment, no refresh token
            token = self._issue(CLIENT_ID, scopes, three_legged=True)
            fragment = urlencode({"access_token": token.value, "token_type": "Bearer", "expires_in": self.expires_in,
                                  **state})
            return RedirectResponse(f"{redirect_uri}#{fragment}", status_code=302)
        code = secrets.token_urlsafe(24)
        self.codes[code] = _Code(CLIENT_ID, redirect_uri, scopes, challenge, self.clock() + 600 * self.time_scale + 5)
        sep = "&" if "?" in redirect_uri else "?"
        return RedirectResponse(f"{redirect_uri}{sep}{urlencode({'code': code, **state})}", status_code=302)

    async def userinfo_endpoint(self, request: Request):
        """OIDC user info of the signed-in admin; a 2-legged token has no user (401)."""
        header = request.headers.get("authorization", "")
        token, why = self.lookup(header[7:].strip()) if header.lower().startswith("bearer ") else (None, "")
        if token is None or not token.three_legged:
            why = why or ("The access token is not a three-legged token" if token else "A Bearer token is required")
            return JSONResponse({"developerMessage": why, "errorCode": "AUTH-001", "moreInfo": ERROR_DOCS},
                                status_code=401)
        local = ADMIN_EMAIL.split("@")[0]
        return JSONResponse({
            "sub": hashlib.sha1(ADMIN_EMAIL.encode()).hexdigest()[:12].upper(), "name": "Sandbox Admin",
            "given_name": "Sandbox", "family_name": "Admin", "preferred_username": local, "email": ADMIN_EMAIL,
            "email_verified": True, "profile": "https://profile.autodesk.com", "picture": None, "locale": "en-US",
            "updated_at": 1662583480, "is_2fa_enabled": False, "country_code": "US",
        })


def _invalid_redirect_page(redirect_uri: str | None) -> HTMLResponse:
    shown = html.escape(redirect_uri or "(none)")
    return HTMLResponse(
        "<!doctype html><html><head><title>Oops</title></head><body><h1>Oops</h1>"
        "<p>Error : 400 - Invalid redirect_uri</p>"
        f"<p>The redirect_uri {shown} does not match a Callback URL registered on the app.</p>"
        "</body></html>", status_code=400)


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
