"""``aps-usage auth login|status|logout``: the 3-legged login and what credentials are in use."""

from __future__ import annotations

import webbrowser

import click

from .. import DEFAULT_CALLBACK_URL
from ..auth import DEFAULT_SCOPE, READ_SCOPE, TOKENFLEX_LOGIN_SCOPE, WRITE_SCOPE, Auth
from ..config import Settings


@click.group("auth")
def auth_group() -> None:
    """Log in (3-legged OAuth with PKCE), show or delete the saved login.

    \b
    Credentials come from the environment:
      APS_CLIENT_ID, APS_CLIENT_SECRET  the APS app (2-legged, and the client of 'login')
      APS_PAT                           personal access token for Premium Reporting (2-legged)
      APS_CALLBACK_URL                  the app's registered Callback URL ('login'; default
                                        http://localhost:8080/api/auth/callback)
    A saved 3-legged login is used in preference to 2-legged credentials.
    """


@auth_group.command("login")
@click.option("--callback-url", envvar="APS_CALLBACK_URL", default=DEFAULT_CALLBACK_URL, show_default=True,
              metavar="URL", help="The Callback URL registered on the APS app (env APS_CALLBACK_URL); the "
                                  "one-shot listener runs on its host, port and path.")
@click.option("--tokenflex", is_flag=True,
              help=f"Also ask {WRITE_SCOPE}, which Token Flex export requests need (else {READ_SCOPE} only).")
@click.option("--scope", default=None, metavar="SCOPES",
              help=f"OAuth scopes to ask for, space-separated (default {DEFAULT_SCOPE}; "
                   f"{TOKENFLEX_LOGIN_SCOPE} with --tokenflex).")
@click.option("--no-browser", is_flag=True, help="Print the login URL instead of opening a browser.")
@click.option("--timeout", type=float, default=300.0, show_default=True, help="Seconds to wait for the redirect.")
@click.pass_obj
def login(settings: Settings, callback_url: str, tokenflex: bool, scope: str | None, no_browser: bool,
          timeout: float) -> None:
    """Log in as a team admin in the browser; the refresh token is saved (0600 file or keyring).

    \b
    On the APS app (aps.autodesk.com > My Apps > the app > General Settings),
    register exactly this Callback URL (APS redirects only to a registered one):
      http://localhost:8080/api/auth/callback
    or register another loopback URL and pass it as --callback-url / APS_CALLBACK_URL.
    The app's client id comes from APS_CLIENT_ID (and APS_CLIENT_SECRET, if any).
    """
    auth = Auth(settings)
    try:
        info = auth.login(callback_url=callback_url, open_browser=None if no_browser else webbrowser.open,
                          show_url=lambda text: click.echo(text, err=True),
                          scope=scope or (TOKENFLEX_LOGIN_SCOPE if tokenflex else DEFAULT_SCOPE), timeout=timeout)
    finally:
        auth.close()
    click.echo(f"Logged in ({info['grant']}, scope {info.get('scope')}); login saved in {info['store']}; "
               f"access token expires {info.get('expires_at')}.")


@auth_group.command("status")
@click.option("--no-check", is_flag=True, help="Do not contact the token endpoint (show the saved login only).")
@click.pass_obj
def status(settings: Settings, no_check: bool) -> None:
    """Which grant is in use, for whom, and when the token expires (never the token)."""
    auth = Auth(settings)
    try:
        info = auth.status(check=not no_check)
    finally:
        auth.close()
    if info["grant"] == "none":
        click.echo("Not logged in and no APS_CLIENT_ID/APS_CLIENT_SECRET set.")
        raise SystemExit(3)
    for key in ("grant", "user", "client_id", "scope", "expires_at", "expires_in_s", "pat", "store"):
        if key in info and info[key] not in (None, ""):
            click.echo(f"{key:13} {info[key]}")


@auth_group.command("logout")
@click.pass_obj
def logout(settings: Settings) -> None:
    """Delete the saved login (file or keyring entry)."""
    auth = Auth(settings)
    removed = auth.logout()
    click.echo("Saved login deleted." if removed else "No saved login.")


COMMANDS = [auth_group]
