"""Commands of the 'sandbox' area: serve the local API sandbox, or write hand-download files."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import click

from .. import DEFAULT_CALLBACK_URL
from ..errors import InputError


def _end_date(value: str | None):
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InputError(f"--end-date: {value!r} is not a date like 2026-10-31") from None


_data_options = [
    click.option("--seed", type=int, default=42, show_default=True, help="Random seed; same seed, same data."),
    click.option("--users", type=click.IntRange(12, 2_000_000), default=500, show_default=True, help="Number of people."),
    click.option("--days", type=click.IntRange(1, 1098), default=365, show_default=True, help="Days of usage history."),
    click.option("--end-date", default=None, help="Last day of usage (YYYY-MM-DD); default yesterday (UTC)."),
]


def _with_data_options(fn):
    for option in reversed(_data_options):
        fn = option(fn)
    return fn


@click.group("sandbox")
def sandbox_group() -> None:
    """A local fake of the Autodesk APIs (OAuth, insights/v1, tokenflex/v1) over synthetic data."""


@sandbox_group.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (keep it loopback).")
@click.option("--port", type=int, default=8765, show_default=True, help="Port (0 = pick a free one).")
@_with_data_options
@click.option("--hide-personal-data", is_flag=True, help="Act as a team whose admin hides personal data.")
@click.option("--time-scale", type=float, default=1.0, show_default=True,
              help="Multiply every job duration, URL lifetime and rate-limit window (0.01 = 100x faster).")
@click.option("--faults", default=None, help="Inject faults, e.g. '429:0.1,500:0.05,reset:0.02,slow:0.05'.")
@click.option("--slow-seconds", type=float, default=2.0, show_default=True, help="Delay of a 'slow' fault.")
@click.option("--callback-url", "callback_urls", multiple=True, default=[DEFAULT_CALLBACK_URL], show_default=True,
              help="A Callback URL registered on the sandbox's app (repeat for several); a 3-legged login "
                   "redirecting anywhere else is refused, as APS does.")
def serve(host, port, seed, users, days, end_date, hide_personal_data, time_scale, faults, slow_seconds,
          callback_urls) -> None:
    """Serve the sandbox API until interrupted; prints its base URL and the credentials it accepts."""
    from ..logs import log, progress
    from ..sandbox import CLIENT_ID, CLIENT_SECRET, PAT
    from ..sandbox.app import create_app
    from ..sandbox.data import generate
    from ..sandbox.faults import FaultPlan, FaultSpecError
    from ..sandbox.server import start_in_thread

    if time_scale <= 0:
        raise InputError("--time-scale must be positive")
    for url in callback_urls:
        if not url.startswith(("http://", "https://")):
            raise InputError(f"--callback-url: {url!r} is not an http(s) URL")
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("the sandbox accepts fixed, public credentials: serving on %s exposes it beyond this machine", host)
    try:
        FaultPlan.parse(faults)  # refuse a bad spec before spending time on data
    except FaultSpecError as err:
        raise InputError(f"--faults: {err}") from None
    with progress("Generating sandbox data", quiet=users < 20_000) as task:
        data = generate(seed=seed, users=users, days=days, end_date=_end_date(end_date))
        task.advance(1)
    app = create_app(data, hide_personal_data=hide_personal_data, time_scale=time_scale, faults=faults,
                     slow_seconds=slow_seconds, callback_urls=list(callback_urls))
    try:
        server = start_in_thread(app, host=host, port=port)
    except OSError as err:
        raise InputError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    click.echo(f"Sandbox listening on {server.base_url}")
    click.echo(f"  client id: {CLIENT_ID}  client secret: {CLIENT_SECRET}  PAT (ADSK-PAT header): {PAT}")
    click.echo(f"  registered Callback URL(s): {', '.join(callback_urls)}")
    click.echo(f"  data: {data.usage.num_rows} usage rows, {data.start_date} .. {data.end_date}, "
               f"Token Flex contract {data.contract_number}")
    click.echo(f"  try: APS_BASE_URL={server.base_url} aps-usage ...   (Ctrl-C to stop)", nl=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


@sandbox_group.command("generate")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder to write the files into (created if missing).")
@_with_data_options
@click.option("--naming", type=click.Choice(["old", "2026"]), default="old", show_default=True,
              help="Column names: the older snake_case ones, or the 2026 display headers.")
def generate_files(out_dir, seed, users, days, end_date, naming) -> None:
    """Write the files an admin downloads by hand (usage/users/subscriptions CSV, XLSX, Token Flex CSV, metadata)."""
    from ..logs import progress
    from ..sandbox.data import generate
    from ..sandbox.files import write_files

    with progress("Generating sandbox data") as task:
        data = generate(seed=seed, users=users, days=days, end_date=_end_date(end_date))
        task.advance(1)
    with progress("Writing files") as task:
        paths = write_files(data, out_dir, naming=naming)
        task.advance(len(paths))
    for path in paths:
        click.echo(str(path))


COMMANDS = [sandbox_group]
