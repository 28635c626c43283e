"""``aps-usage auth login|status|logout``: the 3-legged login and what credentials are in use."""

from __future__ import annotations

import webbrowser

import click

from ..auth import DEFAULT_SCOPE, Auth
from ..config import Settings


@click.group("auth")
def auth_group() -> None:
    """Log in (3-legged OAuth with PKCE), show or delete the saved login.

    \b
    Credentials come from the environment:
      APS_CLIENT_ID, APS_CLIENT_SECRET  the APS app (2-legged, and the client of 'login')
      APS_PAT                           personal access token for Premium Reporting (2-legged)
    A saved 3-legged login is used in preference to 2-legged credentials.
    """


@auth_group.command("login")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="Port of the one-shot redirect listener on 127.0.0.1 (0 = a free port). "
                   "Register http://127.0.0.1:PORT/callback as the app's callback URL.")
@click.option("--no-browser", is_flag=True, help="Print the login URL instead of opening a browser.")
@click.option("--scope", default=DEFAULT_SCOPE, show_default=True, help="OAuth scopes to ask for.")
@click.option("--timeout", type=float, default=300.0, show_default=True, help="Seconds to wait for the redirect.")
@click.pass_obj
def login(settings: Settings, port: int, no_browser: bool, scope: str, timeout: float) -> None:
    """Log in as a team admin in the browser; the refresh token is saved (0600 file or keyring)."""
    auth = Auth(settings)
    try:
        info = auth.login(port=port, open_browser=None if no_browser else webbrowser.open,
                          show_url=lambda text: click.echo(text, err=True), scope=scope, timeout=timeout)
    finally:
        auth.close()
    click.echo(f"Logged in ({info['grant']}); login saved in {info['store']}; access token expires {info.get('expires_at')}.")


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
