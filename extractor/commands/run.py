"""``aps-usage run``: the whole refresh (extract, import, build, publish) for a scheduler."""

from __future__ import annotations

from pathlib import Path

import click

from ..build import TARGETS
from ..config import Settings
from ..errors import UsageError
from ..publish import parse_formats
from ..run import SOURCES, parse_sources, run_all


@click.command("run")
@click.option("--sources", metavar="LIST", default=",".join(SOURCES), show_default=True,
              help="APIs to extract, comma-separated, or 'none' (only the drop folder). A source the "
                   "credentials cannot see (HTTP 403) is skipped, not a failure.")
@click.option("--drop-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Import every file in this folder (usage/users/subscriptions/Token Flex/metadata "
                   "downloads), then move them to <drop-dir>/imported/<run>/.")
@click.option("--target", type=click.Choice(TARGETS), default="duckdb", show_default=True,
              help="dbt target; publish runs for duckdb only.")
@click.option("--formats", metavar="LIST", help="Publish only these outputs (see `aps-usage publish --help`).")
@click.pass_obj
def run_command(settings: Settings | None, sources: str, drop_dir: Path | None, target: str,
                formats: str | None) -> None:
    """Refresh everything: extract, import the drop folder, build, publish.

    \b
    Prints one line per step (counts, seconds); -v shows every detail line.
    Writes <data-dir>/runs/<UTC time>.json and runs/last-run.json: steps, rows,
    durations, outcome, the failed step and the exit code. Exit codes as for every
    command (0 ok, 2 bad input, 3 authentication, 4 API, 5 locked, 6 build/publish).
    Scheduler recipes (Task Scheduler, cron, systemd, GitHub Actions): docs/scheduling.md.
    """
    settings = settings or Settings()
    wanted = parse_formats(formats)[0] if formats else None
    try:
        summary = run_all(settings, sources=parse_sources(sources), drop_dir=drop_dir, target=target, formats=wanted)
    except UsageError as err:
        summary = getattr(err, "run_summary", None)
        if summary is not None:
            click.echo(f"Run failed at step {summary.failed_step!r} (exit {summary.exit_code}); "
                       f"summary: {summary.path}", err=True)
        raise
    click.echo(f"Run ok in {summary.seconds:.1f}s; summary: {summary.path}")


COMMANDS = [run_command]
