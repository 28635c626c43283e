"""APS OAuth v2: 2-legged (+ personal access token), 3-legged login with PKCE, refresh, token store.

Which grant a run uses: a saved 3-legged login (``aps-usage auth login``) if there is one,
else the client-credentials grant from ``APS_CLIENT_ID`` / ``APS_CLIENT_SECRET``, with the
personal access token ``APS_PAT`` sent as ``ADSK-PAT`` on every ``insights/`` call.

Refresh tokens rotate (each refresh spends the old one), so the new one is saved before the
access token is used: in ``<data-dir>/state/token.json`` (mode 0600, atomic replace), or in
the system keyring when the ``keyring`` package has a real backend.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import os
import re
import secrets
import socket
import tempfile
import threading
import time
import webbrowser
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from . import DEFAULT_CALLBACK_URL
from .config import Settings
from .errors import AuthError
from .logs import log, redact, register_secret

try:  # POSIX advisory locks
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from .http import ApiClient

TOKEN_PATH = "/authentication/v2/token"
AUTHORIZE_PATH = "/authentication/v2/authorize"
READ_SCOPE = "data:read"
WRITE_SCOPE = "data:write"
#: least privilege: every GET, and the POSTs that only read (Insights usage queries and exports,
#: Token Flex usage queries), work with data:read, as Autodesk's Power BI connector and PAT
#: sample show; only Token Flex export requests are documented to need data:write
DEFAULT_SCOPE = READ_SCOPE
#: what `auth login --tokenflex` asks for: the login then also covers Token Flex exports
TOKENFLEX_LOGIN_SCOPE = f"{READ_SCOPE} {WRITE_SCOPE}"
#: refresh this many seconds before the access token expires
EXPIRY_MARGIN = 120.0
KEYRING_SERVICE = "aps-usage"
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


# -- token stores --------------------------------------------------------------------------
class FileTokenStore:
    """A JSON file readable by its owner only; written atomically (temp 0600 + os.replace)."""

    kind = "file"

    def __init__(self, path: Path):
        self.path = Path(path)

    def describe(self) -> str:
        return str(self.path)

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """An advisory inter-process lock held while a refresh token is spent and replaced."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def load(self) -> dict | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            data = json.loads(text)
        except ValueError:
            raise AuthError(f"{self.path}: saved login is not valid JSON; run 'aps-usage auth logout' then 'auth login'") from None
        return data if isinstance(data, dict) else None

    def save(self, data: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".token-", suffix=".tmp", dir=self.path.parent)  # created 0600
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise

    def delete(self) -> bool:
        try:
            self.path.unlink()
            return True
        except FileNotFoundError:
            return False


class KeyringTokenStore:
    """The system keyring (macOS Keychain, Windows Credential Locker, Secret Service)."""

    kind = "keyring"

    def __init__(self, account: str):
        import keyring  # noqa: F401  (checked by usable_keyring)

        self.account = account

    def describe(self) -> str:
        return f"system keyring ({KEYRING_SERVICE}/{self.account})"

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        yield  # the keyring has no lock; refreshes from one process are serialised by Auth._lock

    def load(self) -> dict | None:
        import keyring

        text = keyring.get_password(KEYRING_SERVICE, self.account)
        return json.loads(text) if text else None

    def save(self, data: dict) -> None:
        import keyring

        keyring.set_password(KEYRING_SERVICE, self.account, json.dumps(data))

    def delete(self) -> bool:
        import keyring

        try:
            keyring.delete_password(KEYRING_SERVICE, self.account)
            return True
        except Exception:  # keyring.errors.PasswordDeleteError when absent
            return False


def usable_keyring() -> bool:
    """True when ``keyring`` imports and its backend really stores secrets."""
    try:
        import keyring
        from keyring.backends import fail
    except Exception:
        return False
    backend = keyring.get_keyring()
    if isinstance(backend, fail.Keyring) or "null" in type(backend).__module__.lower():
        return False
    if getattr(backend, "backends", None) == []:  # a chainer with nothing behind it
        return False
    try:
        return float(backend.priority) > 0
    except Exception:
        return True


def default_store(settings: Settings) -> FileTokenStore | KeyringTokenStore:
    """``APS_TOKEN_STORE`` = file | keyring | auto (default: keyring when usable, else file)."""
    choice = os.environ.get("APS_TOKEN_STORE", "auto").lower()
    if choice == "keyring" or (choice == "auto" and usable_keyring()):
        if not usable_keyring():
            raise AuthError("APS_TOKEN_STORE=keyring but no usable keyring backend is installed")
        return KeyringTokenStore(str(settings.data_dir))
    return FileTokenStore(settings.state_dir / "token.json")


# -- credentials ---------------------------------------------------------------------------
@dataclass
class Credentials:
    client_id: str | None = None
    client_secret: str | None = None
    pat: str | None = None

    @classmethod
    def from_env(cls) -> Credentials:
        creds = cls(
            client_id=os.environ.get("APS_CLIENT_ID") or None,
            client_secret=os.environ.get("APS_CLIENT_SECRET") or None,
            pat=os.environ.get("APS_PAT") or None,
        )
        register_secret(creds.client_secret)
        register_secret(creds.pat)
        return creds


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge) per RFC 7636."""
    verifier = secrets.token_urlsafe(64)[:96]
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()
    return verifier, challenge


def scope_for(method: str, path: str) -> str:
    """The one scope a call needs: data:write for the Token Flex export-request calls that
    change something (POST a request, refreshUrl, retry, DELETE; POST a schedule), whose
    reference pages require it; data:read for everything else."""
    if method.upper() in ("POST", "PUT", "PATCH", "DELETE") and "/tokenflex/v1/export/" in path:
        return WRITE_SCOPE
    return READ_SCOPE


def jwt_claims(token: str) -> dict:
    """The claims of a JWT access token (unverified: only to show who is logged in)."""
    try:
        payload = token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        data = json.loads(base64.urlsafe_b64decode(payload))
        return data if isinstance(data, dict) else {}
    except Exception:
        return {}


# -- the auth flow of the HTTP client ----------------------------------------------------
class Auth(httpx.Auth):
    """The ``httpx.Auth`` of every API call: ``Authorization`` (and ``ADSK-PAT``) headers with
    a token of the least scope the call needs, refreshed before it expires, and one refresh
    and retry when the API answers 401 (a token revoked or expired early)."""

    requires_response_body = True  # a 401's body is read before the retry (the connection is freed)

    def __init__(
        self,
        settings: Settings,
        credentials: Credentials | None = None,
        store: FileTokenStore | KeyringTokenStore | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ):
        self.settings = settings
        self.credentials = credentials if credentials is not None else Credentials.from_env()
        self.store = store if store is not None else default_store(settings)
        self._clock = clock
        self._api: ApiClient | None = None
        self._own_api: ApiClient | None = None
        self._lock = threading.RLock()
        self._token: dict | None = None  # the 3-legged login's {"access_token", "expires_at", ...}
        self._client_tokens: dict[str, dict] = {}  # 2-legged: one token per scope, minted when needed
        self._saved = self.store.load()
        if self._saved:
            register_secret(self._saved.get("access_token"))
            register_secret(self._saved.get("refresh_token"))

    # wiring: ApiClient(settings, auth) calls attach(); auth then uses that client for tokens
    def attach(self, api: ApiClient) -> None:
        self._api = api

    @property
    def api(self) -> ApiClient:
        if self._api is not None:
            return self._api
        if self._own_api is None:
            from .http import ApiClient

            self._own_api = ApiClient(self.settings, None)
        return self._own_api

    @property
    def grant(self) -> str:
        if self._saved and self._saved.get("refresh_token"):
            return "3-legged"
        if self.credentials.client_id and self.credentials.client_secret:
            return "2-legged"
        return "none"

    # -- the httpx flow --------------------------------------------------------------------
    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
        path = request.url.path
        scope = scope_for(request.method, path)
        request.headers.update(self.headers_for(path, scope))
        response = yield request
        if response.status_code == 401:
            log.debug("%s %s -> 401, refreshing the token once", request.method, path)
            self.refresh_after_unauthorized(scope)
            request.headers.update(self.headers_for(path, scope))
            yield request

    def headers_for(self, path: str, scope: str = READ_SCOPE) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.access_token(scope)}"}
        if "/insights/" in path and self.grant == "2-legged":
            if not self.credentials.pat:
                raise AuthError(
                    "Premium Reporting with a 2-legged token needs a personal access token: set APS_PAT "
                    "(or log in as a team admin with 'aps-usage auth login')"
                )
            headers["ADSK-PAT"] = self.credentials.pat
        return headers

    def access_token(self, scope: str = READ_SCOPE) -> str:
        with self._lock:
            if self.grant == "3-legged":
                token = self._token = self._token or self._saved
                self._check_login_scope(scope)
                if self._expiring(token):
                    token = self._refresh()
                return token["access_token"]
            token = self._client_tokens.get(scope)
            if token is None or self._expiring(token):
                token = self._client_token(scope)
            return token["access_token"]

    def _check_login_scope(self, scope: str) -> None:
        granted = (self._saved or {}).get("scope")
        if granted and scope not in granted.split():
            raise AuthError(f"the saved login holds {granted} but this call needs {scope} (Token Flex export "
                            "requests): log in again with 'aps-usage auth login --tokenflex'")

    def _expiring(self, token: dict) -> bool:
        # a tenth of the lifetime for short-lived tokens, at most EXPIRY_MARGIN seconds
        margin = min(EXPIRY_MARGIN, 0.1 * float(token.get("expires_in", 3600)))
        return float(token.get("expires_at", 0)) - margin <= self._clock()

    def refresh_after_unauthorized(self, scope: str = READ_SCOPE) -> None:
        """A 401 on a call: the access token was revoked or expired early; get a new one."""
        with self._lock:
            if self.grant == "3-legged":
                self._refresh(force=True)
            else:
                self._client_token(scope)

    def _client_token(self, scope: str) -> dict:
        if self.grant != "2-legged":
            raise AuthError(
                "no credentials: set APS_CLIENT_ID and APS_CLIENT_SECRET (and APS_PAT for Premium Reporting), "
                "or run 'aps-usage auth login'"
            )
        token = self._token_request({"grant_type": "client_credentials", "scope": scope}, "client credentials")
        token.setdefault("scope", scope)
        self._client_tokens[scope] = token
        return token

    def _check_callback_registered(self, authorize_url: str, redirect_uri: str) -> None:
        """Ask the authorize endpoint before opening the browser: APS refuses (4xx, no redirect)
        a redirect_uri that is not the app's registered Callback URL, and the browser would
        only show that page while the listener waits in vain."""
        response = self.api.request("GET", authorize_url, authenticated=False, raise_for_status=False)
        if 400 <= response.status_code < 500:
            try:
                body = response.json()
                detail = body.get("error_description") or body.get("developerMessage") or body.get("error") or ""
            except (ValueError, AttributeError):  # APS shows an HTML error page
                detail = re.sub(r"<(script|style)\b.*?</\1>|<[^>]+>", " ", response.text, flags=re.S | re.I)
            detail = redact(" ".join(str(detail).split())[:200])
            hint = ""
            if "redirect" in detail.lower() or "callback" in detail.lower():
                hint = (f": register {redirect_uri} as the Callback URL of the APS app, or set APS_CALLBACK_URL "
                        "to the one registered")
            raise AuthError(f"login refused by {AUTHORIZE_PATH} (HTTP {response.status_code}: {detail}){hint}")

    def _refresh(self, force: bool = False) -> dict:
        # Another aps-usage process may share this login: refresh under an inter-process lock
        # and adopt a token it has just rotated instead of spending a refresh token twice.
        with self.store.exclusive():
            latest = self.store.load() or self._saved or {}
            current = (self._token or {}).get("access_token")
            if latest.get("refresh_token") and latest.get("access_token") != current and not self._expiring(latest) \
                    and not force:
                register_secret(latest.get("access_token"))
                register_secret(latest.get("refresh_token"))
                self._saved = self._token = latest
                log.debug("adopted the access token another run refreshed")
                return latest
            saved = latest if latest.get("refresh_token") else (self._saved or {})
            form = {"grant_type": "refresh_token", "refresh_token": saved["refresh_token"],
                    "scope": saved.get("scope", DEFAULT_SCOPE)}
            token = self._token_request(form, "refresh", client_id=saved.get("client_id"))
            if not token.get("refresh_token"):
                token["refresh_token"] = saved["refresh_token"]  # a server that does not rotate
            record = {**saved, **token, "refreshed_at": self._clock()}
            # saved at once: the old refresh token is already spent
            self.store.save(record)
            self._saved = record
            self._token = record
        log.debug("access token refreshed; rotated refresh token saved to %s", self.store.describe())
        return record

    def _token_request(self, form: dict, what: str, client_id: str | None = None) -> dict:
        client_id = client_id or self.credentials.client_id
        if not client_id:
            raise AuthError("APS_CLIENT_ID is not set")
        form = dict(form)
        kwargs: dict[str, Any] = {}
        if self.credentials.client_secret and client_id == self.credentials.client_id:
            kwargs["auth"] = (client_id, self.credentials.client_secret)
        else:
            form["client_id"] = client_id  # public client (PKCE): no secret
        response = self.api.request(
            "POST", TOKEN_PATH, authenticated=False, raise_for_status=False, data=form, **kwargs
        )
        if not response.is_success:
            detail = redact(response.text[:200].replace("\n", " "))
            hint = " (saved login expired or revoked: run 'aps-usage auth login')" if what == "refresh" else ""
            raise AuthError(f"token request ({what}) rejected: HTTP {response.status_code} {detail}{hint}")
        try:
            body = response.json()
            access = body["access_token"]
        except (ValueError, KeyError):
            raise AuthError(f"token request ({what}): response has no access_token") from None
        register_secret(access)
        register_secret(body.get("refresh_token"))
        token = {
            "access_token": access,
            "expires_at": self._clock() + float(body.get("expires_in", 3600)),
            "expires_in": float(body.get("expires_in", 3600)),
            "token_type": body.get("token_type", "Bearer"),
        }
        if body.get("refresh_token"):
            token["refresh_token"] = body["refresh_token"]
        if body.get("scope"):
            token["scope"] = body["scope"]
        return token

    # -- 3-legged login -------------------------------------------------------------------
    def login(
        self,
        *,
        callback_url: str | None = None,
        open_browser: Callable[[str], Any] | None = webbrowser.open,
        show_url: Callable[[str], Any] = print,
        scope: str = DEFAULT_SCOPE,
        timeout: float = 300.0,
    ) -> dict:
        """Authorization code + PKCE through a one-shot listener on the app's registered
        Callback URL (``callback_url``, else ``APS_CALLBACK_URL``, else ``DEFAULT_CALLBACK_URL``).

        ``open_browser(url)`` is called with the authorize URL (tests pass a function that
        GETs it; ``None`` prints the URL for the user to open)."""
        client_id = self.credentials.client_id
        if not client_id:
            raise AuthError("APS_CLIENT_ID is not set (the app's client id is needed to log in)")
        redirect_uri = callback_url or configured_callback_url()
        host, port, path = callback_address(redirect_uri)
        verifier, challenge = pkce_pair()
        register_secret(verifier)
        state = secrets.token_urlsafe(24)
        query = urlencode({
            "response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
            "scope": scope, "state": state, "code_challenge": challenge, "code_challenge_method": "S256",
        })
        url = f"{self.settings.base_url}{AUTHORIZE_PATH}?{query}"
        self._check_callback_registered(url, redirect_uri)
        listener = _CallbackListener(host, port, path)
        listener.start(timeout)
        try:
            if open_browser is None:
                show_url(f"Open this URL in a browser to log in:\n{url}")
            else:
                show_url(f"Opening the browser to log in (redirect to {redirect_uri}) ...")
                try:
                    opened = open_browser(url)
                except Exception as err:  # a test opener may raise when the listener closes early
                    log.debug("browser opener raised %s", type(err).__name__)
                    opened = True
                if opened is False:
                    show_url(f"Could not open a browser; open this URL:\n{url}")
            params = listener.wait(timeout)
        finally:
            listener.stop()
        if params is None:
            raise AuthError(f"login timed out after {timeout:.0f}s waiting for the redirect to {redirect_uri} "
                            "(is it the Callback URL registered on the APS app?)")
        if params.get("error"):
            raise AuthError(f"login refused: {params.get('error')} {params.get('error_description', '')}".strip())
        if params.get("state") != state:
            raise AuthError("login failed: the redirect's state does not match (possible CSRF); try again")
        code = params.get("code")
        if not code:
            raise AuthError("login failed: the redirect carried no authorization code")
        register_secret(code)
        token = self._token_request(
            {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
             "code_verifier": verifier},
            "authorization code", client_id=client_id,
        )
        if not token.get("refresh_token"):
            raise AuthError("login failed: the token response has no refresh_token")
        record = {**token, "grant": "3-legged", "client_id": client_id, "scope": token.get("scope", scope),
                  "logged_in_at": self._clock()}
        self.store.save(record)
        self._saved = record
        self._token = record
        return self.status(check=False)

    def logout(self) -> bool:
        with self._lock:
            self._saved = None
            self._token = None
            return self.store.delete()

    def status(self, check: bool = True) -> dict:
        """Who/which grant and when the token expires; never the token itself."""
        info: dict[str, Any] = {"grant": self.grant, "store": self.store.describe(),
                                "client_id": (self._saved or {}).get("client_id") or self.credentials.client_id,
                                "pat": bool(self.credentials.pat)}
        if self.grant == "none":
            return info
        if check:
            self.access_token(READ_SCOPE)
        if self.grant == "3-legged":
            token = self._token or self._saved or {}
            info["scope"] = token.get("scope") or "(not recorded)"
            if WRITE_SCOPE not in info["scope"].split():
                info["scope"] += " (Token Flex exports need data:write: 'auth login --tokenflex')"
        else:
            token = self._client_tokens.get(READ_SCOPE) or {}
            info["scope"] = f"{token.get('scope') or READ_SCOPE} (+ {WRITE_SCOPE} in a token of its own, only for " \
                            "Token Flex export requests)"
        if token.get("expires_at"):
            info["expires_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(token["expires_at"])))
            info["expires_in_s"] = int(float(token["expires_at"]) - self._clock())
        claims = jwt_claims(token.get("access_token", ""))
        for key in ("userid", "user_id", "email", "sub"):
            if claims.get(key):
                info["user"] = str(claims[key])
                break
        return info

    def close(self) -> None:
        if self._own_api is not None:
            self._own_api.close()
            self._own_api = None


def configured_callback_url() -> str:
    return os.environ.get("APS_CALLBACK_URL") or DEFAULT_CALLBACK_URL


def callback_address(url: str) -> tuple[str, int, str]:
    """(host, port, path) to listen on for a Callback URL; only a loopback http:// URL can be
    answered by a listener on this machine."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme != "http" or host not in LOOPBACK_HOSTS or parts.query or parts.fragment:
        raise AuthError(f"callback URL {url!r}: expected http://localhost:PORT/PATH (or 127.0.0.1), the address "
                        "of the listener 'auth login' starts on this machine")
    try:
        port = parts.port or 80
    except ValueError:
        raise AuthError(f"callback URL {url!r}: the port is not a number") from None
    return ("127.0.0.1" if host == "localhost" else host), port, parts.path or "/"


class _CallbackListener:
    """A one-shot HTTP listener on the Callback URL's loopback address that captures the
    authorization redirect."""

    def __init__(self, host: str, port: int, path: str):
        received: dict[str, str] = {}
        event = threading.Event()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                parts = urlsplit(self.path)
                if parts.path != path:
                    self.send_response(404)
                    self.end_headers()
                    return
                received.update({k: v[0] for k, v in parse_qs(parts.query).items()})
                ok = "code" in received and "error" not in received
                body = (b"<html><body><h3>aps-usage: login complete, you can close this window.</h3></body></html>"
                        if ok else b"<html><body><h3>aps-usage: login failed, see the terminal.</h3></body></html>")
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                event.set()

            def log_message(self, format: str, *args: Any) -> None:  # the query holds the code
                pass

        try:
            self.server = _server_class(host)((host, port), Handler)
        except OSError as err:
            raise AuthError(f"cannot listen on {host}:{port} for the login redirect: {err.strerror} (another "
                            "'auth login' running? or set APS_CALLBACK_URL to another registered URL)") from None
        self.server.timeout = 0.2
        self.port = self.server.server_address[1]
        self._received = received
        self._event = event
        self._thread: threading.Thread | None = None

    def start(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout

        def serve() -> None:
            while not self._event.is_set() and time.monotonic() < deadline:
                self.server.handle_request()

        self._thread = threading.Thread(target=serve, name="aps-usage-login", daemon=True)
        self._thread.start()

    def wait(self, timeout: float) -> dict | None:
        return dict(self._received) if self._event.wait(timeout) else None

    def stop(self) -> None:
        self._event.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self.server.server_close()


def _server_class(host: str) -> type[http.server.HTTPServer]:
    if ":" not in host:
        return http.server.HTTPServer

    class IPv6Server(http.server.HTTPServer):
        address_family = socket.AF_INET6

    return IPv6Server
